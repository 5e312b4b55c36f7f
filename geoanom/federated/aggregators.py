"""Robust aggregation of client model updates for federated learning.

Every client sends its model parameters as a flat float64 vector; a round
stacks the ``n`` vectors into ``updates`` of shape ``(n, p)``, with
``weights`` of shape ``(n,)`` holding the clients' sample counts.

* ``fedavg`` / ``fedprox``: the weighted mean ``sum_i w_i x_i / sum_i w_i``
  (FedProx differs only in local training, through its proximal weight ``mu``).
* ``median``: the coordinate-wise median, unweighted.
* ``trimmed_mean``: per coordinate, drop the ``floor(beta n)`` lowest and
  highest values and average the rest, unweighted.
* ``krum``: the update whose summed squared distance to its ``n - f - 2``
  nearest other updates is smallest (Blanchard et al. 2017).
* ``multi_krum``: the weighted mean of the ``m`` updates of lowest Krum score.

fedavg/fedprox partial sums are merged by a dask tree reduction
(`split_every`); median, trimmed mean, Krum and multi-Krum need every update
at once, so they gather at the root. ``weighted_partial``,
``combine_partials`` and ``finish_partial`` are the map, combine and finalise
steps of that tree reduction (see ``geoanom.reduction``).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from ..errors import GeoanomError

__all__ = [
    "check_count", "check_real", "combine_partials", "coordinate_median", "fedavg", "finish_partial", "krum",
    "krum_scores", "multi_krum", "trimmed_mean", "weighted_partial",
]  # fmt: skip




def _check_updates(updates: np.ndarray) -> np.ndarray:
    """``updates`` as a finite float64 array of shape (n >= 1, p >= 1)."""
    arr = np.asarray(updates)
    if arr.dtype.kind not in "iuf":
        raise GeoanomError(f"updates must be real numbers, got dtype {arr.dtype}.")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise GeoanomError(f"updates must have shape (n_clients >= 1, n_params >= 1), got shape {arr.shape}.")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise GeoanomError(f"updates must be finite, but client {int(np.argmin(finite))} sent NaN or infinity.")
    return arr


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """``weights`` as non-negative float64 of length ``n`` with a positive sum; None is all ones."""
    if weights is None:
        return np.ones(n)
    arr = np.asarray(weights)
    if arr.dtype.kind not in "iuf" or arr.shape != (n,):
        raise GeoanomError(f"weights must be a 1-D array of {n} real numbers, got {arr.dtype} of shape {arr.shape}.")
    arr = arr.astype(np.float64, copy=False)
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise GeoanomError(f"weights must be finite and non-negative, but client {i} has weight {arr[i]}.")
    if arr.sum() <= 0:
        raise GeoanomError(f"weights must have a positive sum, but all {n} are zero.")
    return arr


def check_real(value: float, name: str, low: float, high: float = math.inf) -> float:
    """``value`` as a float in ``[low, high)``; NaN, infinity and non-numbers are refused.

    Examples
    --------
    >>> check_real("0.5", "beta", 0.0, 0.5 + 1e-9)
    0.5
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and low <= x < high):
        interval = f"in [{low}, {high})" if math.isfinite(high) else f">= {low}"
        raise GeoanomError(f"{name} must be a finite number {interval}, got {value!r}.")
    return x


def check_count(value: int, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; bools and floats are refused.

    Examples
    --------
    >>> check_count(np.int64(2), "Krum f", 0)
    2
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise GeoanomError(f"{name} must be an integer, got {value!r}.") from None
    if value < minimum:
        raise GeoanomError(f"{name} must be at least {minimum}, got {value}.")
    return value


def weighted_partial(update: np.ndarray, weight: float) -> tuple[np.ndarray, float]:
    """The map step of the FedAvg tree reduction: ``(weight * update, weight)``.

    Parameters
    ----------
    update : numpy.ndarray, shape (n_params,)
        One client's flat parameter vector.
    weight : float
        The client's sample count, ``>= 0``.

    Returns
    -------
    tuple of (numpy.ndarray, float)
        This one client's weighted sum and total weight.
    """
    arr = np.asarray(update)
    if arr.ndim != 1:
        raise GeoanomError(f"update must be a 1-D parameter vector, got shape {arr.shape}.")
    w = check_real(weight, "weight", 0.0)
    return w * _check_updates(arr[None, :])[0], w


def combine_partials(*partials: tuple[np.ndarray, float]) -> tuple[np.ndarray, float]:
    """Merge partial sums: ``(sum_k s_k, sum_k W_k)`` for ``partials = (s_k, W_k)``.

    Addition is associative and commutative, so every grouping and order of a
    dask tree reduction (fan-in ``split_every``) gives the same result up to
    rounding. The inputs are not modified.

    Parameters
    ----------
    *partials : tuple of (numpy.ndarray, float)
        Outputs of ``weighted_partial`` or of earlier ``combine_partials``.

    Returns
    -------
    tuple of (numpy.ndarray, float)
    """
    if not partials:
        raise GeoanomError("combine_partials needs at least one partial sum.")
    shapes = {np.shape(vec) for vec, _ in partials}
    if len(shapes) != 1:
        raise GeoanomError(f"partial sums must all have the same shape, got {sorted(shapes)}.")
    total = np.array(partials[0][0], dtype=np.float64)  # a copy, so no input is mutated
    for vec, _ in partials[1:]:
        total += vec
    return total, float(sum(w for _, w in partials))


def finish_partial(partial: tuple[np.ndarray, float]) -> np.ndarray:
    """The finalise step: ``s / W``, i.e. ``sum_i w_i x_i / sum_i w_i``.

    Parameters
    ----------
    partial : tuple of (numpy.ndarray, float)
        The root ``(s, W)`` of the tree reduction.

    Returns
    -------
    numpy.ndarray, shape (n_params,)
        The weighted mean.
    """
    vec, weight = partial
    if not weight > 0:
        raise GeoanomError(f"the clients' weights must have a positive sum, got {weight!r}.")
    return np.asarray(vec, dtype=np.float64) / weight


# Each takes updates of shape (n_clients, n_params), finite, and returns (n_params,).
# The robust rules validate but ignore weights: a Byzantine client could claim any count.


def fedavg(updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """FedAvg: the sample-count-weighted mean ``sum_i w_i x_i / sum_i w_i``.

    Associative: equal (up to rounding) to ``finish_partial`` of any tree
    reduction of the clients' ``weighted_partial`` with ``combine_partials``.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n_clients, n_params)
    weights : numpy.ndarray, shape (n_clients,)
        Sample counts, non-negative with a positive sum.

    Returns
    -------
    numpy.ndarray, shape (n_params,)
    """
    x = _check_updates(updates)
    w = _check_weights(weights, x.shape[0])
    return w @ x / w.sum()


def coordinate_median(updates: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The coordinate-wise median ``y_j = median_i x_ij``, unweighted; not associative.

    With an even number of clients it is the mean of the two middle values.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n_clients, n_params)
    weights : numpy.ndarray, shape (n_clients,), optional
        Validated, then ignored.

    Returns
    -------
    numpy.ndarray, shape (n_params,)
    """
    x = _check_updates(updates)
    _check_weights(weights, x.shape[0])
    return np.median(x, axis=0)


def trimmed_mean(updates: np.ndarray, beta: float = 0.2, weights: np.ndarray | None = None) -> np.ndarray:
    """The coordinate-wise trimmed mean, unweighted; not associative.

    Per coordinate the ``n`` values are sorted, the ``k = floor(beta n)``
    lowest and ``k`` highest dropped and the other ``n - 2k`` averaged.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n_clients, n_params)
    beta : float, default 0.2
        Fraction trimmed from each end, in ``[0, 0.5)`` so that ``n - 2k >= 1``;
        0.2 as Flower's FedTrimmedAvg (with 10 clients 0.1 trims one value a
        side, too few against two sign-flipping clients).
    weights : numpy.ndarray, shape (n_clients,), optional
        Validated, then ignored.

    Returns
    -------
    numpy.ndarray, shape (n_params,)
    """
    x = _check_updates(updates)
    _check_weights(weights, x.shape[0])
    n = x.shape[0]
    # The tolerance keeps 0.29 * 100 = 28.999999999999996 from trimming 28.
    k = math.floor(check_real(beta, "trimmed_mean beta", 0.0, 0.5) * n + 1e-9)
    return np.sort(x, axis=0)[k : n - k].mean(axis=0)


def _squared_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances, shape ``(n, n)``, via the Gram matrix."""
    # Centring on the median keeps the honest updates near the origin, so
    # |a|^2 + |b|^2 - 2 a.b does not cancel catastrophically between them.
    c = x - np.median(x, axis=0)
    sq = np.einsum("ij,ij->i", c, c)
    d = sq[:, None] + sq[None, :] - 2.0 * (c @ c.T)
    np.maximum(d, 0.0, out=d)
    return d


def krum_scores(updates: np.ndarray, f: int) -> np.ndarray:
    """Krum scores ``s_i = sum_{j in N_i} |x_i - x_j|^2`` (Blanchard et al. 2017).

    ``N_i`` holds the ``n - f - 2`` updates nearest to ``x_i``, other than
    ``x_i`` itself. Needs ``n >= 2f + 3``.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n_clients, n_params)
    f : int
        Number of Byzantine clients tolerated, ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (n_clients,)
    """
    x = _check_updates(updates)
    f = check_count(f, "Krum f", 0)
    n = x.shape[0]
    if n < 2 * f + 3:
        raise GeoanomError(f"Krum needs n >= 2f + 3 clients, got n={n} and f={f}.")
    d = _squared_distances(x)
    np.fill_diagonal(d, np.inf)  # a client is not its own neighbour
    k = n - f - 2
    return np.partition(d, k - 1, axis=1)[:, :k].sum(axis=1)


def krum(updates: np.ndarray, f: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Krum: the update ``x_i`` of lowest score ``s_i`` (see ``krum_scores``); not associative.

    Ties go to the lowest client index. Needs ``n >= 2f + 3``.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n_clients, n_params)
    f : int
        Number of Byzantine clients tolerated, ``>= 0``.
    weights : numpy.ndarray, shape (n_clients,), optional
        Validated, then ignored.

    Returns
    -------
    numpy.ndarray, shape (n_params,)
        A copy of the selected update.
    """
    x = _check_updates(updates)
    _check_weights(weights, x.shape[0])
    return x[int(np.argmin(krum_scores(x, f)))].copy()


def multi_krum(updates: np.ndarray, f: int, m: int | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Multi-Krum: ``sum_{i in S} w_i x_i / sum_{i in S} w_i``; not associative.

    ``S`` holds the ``m`` clients of lowest Krum score (ties to the lowest
    index), so this is FedAvg over the selection. Needs ``n >= 2f + 3``.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n_clients, n_params)
    f : int
        Number of Byzantine clients tolerated, ``>= 0``.
    m : int, optional
        How many updates are averaged, ``1 <= m <= n - f``; default ``n - f``.
    weights : numpy.ndarray, shape (n_clients,), optional
        Sample counts; default all equal.

    Returns
    -------
    numpy.ndarray, shape (n_params,)
    """
    x = _check_updates(updates)
    n = x.shape[0]
    w = _check_weights(weights, n)
    scores = krum_scores(x, f)
    m = n - f if m is None else check_count(m, "multi-Krum m", 1)
    if m > n - f:
        raise GeoanomError(f"multi-Krum m must be at most n - f = {n - f}, got m={m}.")
    chosen = np.argsort(scores, kind="stable")[:m]
    if w[chosen].sum() <= 0:
        raise GeoanomError(f"the {m} updates multi-Krum selected all have zero weight.")
    return fedavg(x[chosen], w[chosen])
