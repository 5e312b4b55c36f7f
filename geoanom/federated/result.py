"""The outcome of federated training: a model as plain arrays, its history, and persistence without pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelFileError
from ..io.npz import read_npz, write_npz
from ..jsonable import to_jsonable
from .mlp import LayerShapes, predict_logits, sigmoid

FORMAT = "geoanom-federated-mlp/1"


@dataclass
class FederatedResult:
    """A federated classifier and how it was trained.

    Attributes
    ----------
    parameters : ndarray
        The network's flat parameter vector (see :class:`~geoanom.federated.mlp.LayerShapes`).
    mean, scale : ndarray
        The global feature scaler, from moments the clients reported.
    sizes : tuple of int
        Layer sizes: features, hidden, hidden, 1.
    history : pandas.DataFrame
        One row per round: participants, loss, update norm, convergence
        state, stale and dropped updates (async), Moran's I of the per-tile
        residuals (geohash clients), seconds, and ``aggregated_by``: the rule
        that aggregated the round (Krum's rounds with fewer than ``2f + 3``
        updates say "median"; None where no update arrived).
    config : dict
        How it was trained.
    rejected : list of dict
        Updates the server refused (round, client, reason).
    epsilon : float or None
        Privacy spent, (epsilon, ``config["privacy"]["delta"]``)-DP at the
        client level, when trained with differential privacy.
    lost_workers : list of dict
        Each time clients' rows were lost with their worker during a round
        (round, clients, action: "retry" or "skip"); empty in an undisturbed run.
    """

    parameters: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    sizes: tuple[int, ...]
    history: pd.DataFrame
    config: dict[str, Any]
    rejected: list[dict[str, Any]] = field(default_factory=list)
    epsilon: float | None = None
    lost_workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> dict[str, Any]:
        """The model as plain arrays: weights and biases by layer, and the scaler."""
        layers = LayerShapes(tuple(self.sizes)).unflatten(self.parameters)
        return {"weights": layers[0::2], "biases": layers[1::2], "mean": self.mean, "scale": self.scale}

    @property
    def audit_head(self) -> str | None:
        """The audit log's last hash when training ended (None without ``audit_log``).

        Keep it apart from the log: ``verify_audit(log, result.audit_head)``
        then also finds lines cut off the log's end.

        Examples
        --------
        >>> ga.federated.verify_audit("audit.jsonl", result.audit_head)  # doctest: +SKIP
        True
        """
        head = self.config.get("audit_head")
        return str(head) if head else None

    @property
    def fallback_rounds(self) -> list[int]:
        """The rounds aggregated by another rule than the one asked for (Krum's median with too few updates).

        Examples
        --------
        >>> result.fallback_rounds  # doctest: +SKIP
        [2, 5]
        """
        if "aggregated_by" not in self.history:  # saved before the column existed
            return []
        asked = self.config.get("aggregator", {}).get("name")
        used = self.history["aggregated_by"]
        return [int(number) for number in used.index[used.notna() & (used != asked)]]

    @property
    def state(self) -> str:
        """How training ended: converged, diverged or max_rounds."""
        return str(self.history["state"].iloc[-1]) if len(self.history) else "not_run"

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's logit for each row (higher is more anomalous)."""
        features = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return predict_logits(LayerShapes(tuple(self.sizes)), self.parameters, features)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (n_rows, 2) of normal and anomalous, as scikit-learn's classifiers give."""
        anomalous = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - anomalous, anomalous])

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        """1 where the probability of an anomaly exceeds ``threshold``."""
        return (self.predict_proba(X)[:, 1] > threshold).astype(np.int8)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` of arrays and JSON (history, config); loadable without pickle."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ModelFileError(f"cannot save to '{path}': a federated model is saved as .npz.")
        meta = {"format": FORMAT, "sizes": list(self.sizes), "config": self.config, "rejected": self.rejected,
                "epsilon": self.epsilon, "lost_workers": self.lost_workers,
                "history": json.loads(self.history.reset_index().to_json(orient="split"))}
        text = np.frombuffer(json.dumps(to_jsonable(meta)).encode(), dtype=np.uint8)
        write_npz(path, {"parameters": self.parameters, "mean": self.mean, "scale": self.scale, "meta": text})

    @classmethod
    def load(cls, path: str | Path) -> "FederatedResult":
        """Read a result written by :meth:`save`: plain arrays only, checked for shape and finiteness.

        Raises
        ------
        ModelFileError
            In one sentence naming the file, for anything else.

        Examples
        --------
        >>> result = FederatedResult.load("fed/model.npz")  # doctest: +SKIP
        """
        if not Path(path).is_file():
            raise ModelFileError(f"federated model file '{path}' does not exist.")
        arrays = read_npz(path, "federated model")
        try:
            meta = json.loads(arrays["meta"].tobytes().decode())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ModelFileError(f"'{path}' is not a geoanom federated model file.")
            history = pd.DataFrame(**{k: meta["history"][k] for k in ("columns", "data")}).set_index("round")
            numeric = [name for name in history.columns if name not in ("state", "aggregated_by")]
            history[numeric] = history[numeric].apply(pd.to_numeric)  # JSON null back to NaN
            result = cls(arrays["parameters"], arrays["mean"], arrays["scale"], tuple(int(n) for n in meta["sizes"]),
                         history, dict(meta["config"]), list(meta["rejected"]), meta.get("epsilon"),
                         list(meta.get("lost_workers", [])))  # absent from files saved before it existed
        except ModelFileError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:  # edited or foreign
            what = f"missing entry {error.args[0]!r}" if isinstance(error, KeyError) else str(error).rstrip(".")[:200]
            raise ModelFileError(f"federated model file '{path}' is malformed ({what}).") from None
        if problem := result._problem():
            raise ModelFileError(f"federated model file '{path}' is malformed: {problem}.")
        return result

    def _problem(self) -> str | None:
        """What makes the arrays unusable (wrong shapes, NaN or infinite values, zero scales), or None."""
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            return f"layer sizes {self.sizes} do not describe a network"
        expected = {"parameters": (LayerShapes(tuple(self.sizes)).size,), "mean": (self.sizes[0],),
                    "scale": (self.sizes[0],)}
        for name, shape in expected.items():
            values = getattr(self, name)
            if values.shape != shape or values.dtype.kind != "f":
                return f"{name} has shape {values.shape} and dtype {values.dtype}, not float {shape}"
            if not np.isfinite(values).all():
                return f"{name} holds NaN or infinite values"
        if (self.scale <= 0).any():
            return "scale holds values that are not positive"
        return None
