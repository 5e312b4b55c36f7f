"""When to stop federated rounds: converged, diverged, or out of rounds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RUNNING, CONVERGED, DIVERGED, MAX_ROUNDS = "running", "converged", "diverged", "max_rounds"


@dataclass
class Convergence:
    """Watches the norm of the global model's change, round by round.

    Parameters
    ----------
    tol : float, default 1e-2
        Converged once the update norm, relative to the largest seen so far,
        stays below ``tol`` for ``patience`` rounds in a row.
    patience : int, default 3
    divergence_sigmas : float or None, default 3.0
        Diverged when an update norm is not finite, or exceeds the mean of
        the earlier norms by this many of their standard deviations (after
        ``min_history`` rounds); None never declares divergence.
    min_history : int, default 5
    """

    tol: float = 1e-2
    patience: int = 3
    divergence_sigmas: float | None = 3.0
    min_history: int = 5
    norms: list[float] = field(default_factory=list)
    calm_rounds: int = 0

    def update(self, norm: float) -> tuple[str, float]:
        """Record one round's update norm; return the state and the relative norm."""
        earlier = np.asarray(self.norms)
        self.norms.append(float(norm))
        if not np.isfinite(norm):
            return DIVERGED, float("nan")
        if self.divergence_sigmas is not None and earlier.size >= self.min_history:
            spread = earlier.std()
            if spread > 0 and norm > earlier.mean() + self.divergence_sigmas * spread:
                return DIVERGED, norm / max(earlier.max(), 1e-300)
        relative = norm / max(max(self.norms), 1e-300)
        self.calm_rounds = self.calm_rounds + 1 if relative < self.tol else 0
        return (CONVERGED if self.calm_rounds >= self.patience else RUNNING), relative
