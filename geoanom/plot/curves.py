"""Curves of a federated run: how it learned, who took part, and the privacy it spent."""

from __future__ import annotations

import os

import pandas as pd

from .layout import saved


def learning_curve(history: pd.DataFrame, path: str | os.PathLike | None = None):
    """A matplotlib Figure of a federated run, one panel per thing it measured, rounds on whole-number ticks.

    Panels: learning (update norm, and the loss when measured); the
    clients taking part in each round (and those dropped, when any were);
    the privacy spent (epsilon), only for a run with differential privacy.

    Parameters
    ----------
    history : pandas.DataFrame
        ``FederatedResult.history``, indexed by round.
    path : str or path-like, optional
        Also write the figure there (PNG).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> history = pd.DataFrame({"update_norm": [0.4, 0.3], "loss": [1.3, 0.8], "participants": [5, 5]},
    ...                        index=pd.Index([1, 2], name="round"))
    >>> [axes.get_title() for axes in learning_curve(history).axes]
    ['learning', 'clients per round']
    >>> figure = learning_curve(result.history, path="learning_curve.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rounds = history.index.to_numpy()
    private = "epsilon" in history and history["epsilon"].notna().any()
    clients = "participants" in history and history["participants"].notna().any()
    fig = Figure(figsize=(4.5 * (1 + clients + private), 4), layout="constrained")
    panels = list(fig.subplots(1, 1 + clients + private, squeeze=False)[0])
    learning = panels.pop(0)
    learning.plot(rounds, history["update_norm"], marker=".", label="update norm")
    if "loss" in history and history["loss"].notna().any():
        learning.plot(rounds, history["loss"], marker=".", label="loss (global model, clients' data)")
    learning.set(title="learning", yscale="log")
    learning.legend()
    if clients:
        taking_part = panels.pop(0)
        taking_part.plot(rounds, history["participants"], marker=".", label="taking part")
        if "dropped" in history and history["dropped"].fillna(0).any():
            taking_part.plot(rounds, history["dropped"], marker=".", label="dropped")
            taking_part.legend()
        taking_part.set(title="clients per round", ylabel="clients", ylim=(0, None))
        taking_part.yaxis.set_major_locator(MaxNLocator(integer=True))
    if private:
        spent = panels.pop(0)
        spent.plot(rounds, history["epsilon"], marker=".", color="tab:red")
        spent.set(ylabel="epsilon", title="privacy spent")
    for axes in fig.axes:  # rounds are whole numbers: no tick at 1.5
        axes.set_xlabel("round")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return saved(fig, path)
