"""Curves of a federated run: how it learned, and the privacy it spent."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd


def learning_curve(history: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write a PNG of a federated run: loss and update norm per round, and the privacy spent.

    Parameters
    ----------
    history : pandas.DataFrame
        ``FederatedResult.history``.
    path : str or path-like

    Returns
    -------
    str
        The path written.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), layout="constrained")
    learning, privacy = fig.subplots(1, 2)
    rounds = history.index.to_numpy()
    learning.plot(rounds, history["update_norm"], label="update norm")
    if history["loss"].notna().any():
        learning.plot(rounds, history["loss"], label="loss (global model, clients' data)")
    learning.set(xlabel="round", title="learning", yscale="log")
    learning.legend()
    epsilon = history["epsilon"] if "epsilon" in history else pd.Series(np.nan, index=history.index)
    if epsilon.notna().any():
        privacy.plot(rounds, epsilon, color="tab:red")
        privacy.set(xlabel="round", ylabel="epsilon", title="privacy spent")
    else:
        privacy.text(0.5, 0.5, "no differential privacy", ha="center", va="center", transform=privacy.transAxes)
        privacy.set_axis_off()
    fig.savefig(path, dpi=100)
    return str(path)
