"""Score fusion weighted by Shapley values on validation data.

A *player* (a client, or a detector family) scores every observation. A
coalition of players is worth the ROC AUC of the mean of its members' scores
on labelled validation data; a player's weight is its Shapley value, its mean
marginal gain over all join orders, clipped at zero. Players score on
different scales, so scores are first ranked: mapped to their empirical CDF
on the validation data, which :class:`ShapleyFusion` keeps to rank new data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from geoanom.errors import GeoanomError

__all__ = ["ShapleyFusion", "fuse_scores", "fusion_value", "shapley_values", "shapley_weights"]

Value = Callable[[frozenset[str]], float]


def shapley_values(
    players: Sequence[str],
    value: Value,
    *,
    exact_limit: int = 10,
    n_permutations: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Return the Shapley value of every player of a cooperative game.

    Parameters
    ----------
    players : sequence of str
        Distinct player names.
    value : callable
        The characteristic function: maps a coalition (a frozenset of player
        names) to its worth. ``value(frozenset())`` is the empty coalition's.
    exact_limit : int, optional
        Up to this many players the values are exact, from all ``2**n``
        coalitions (each evaluated once); beyond it they are estimated by
        permutation sampling. Default 10.
    n_permutations : int, optional
        Number of random join orders sampled when estimating. Default 200.
    seed : int, optional
        Seed of the permutation sampling; the estimate is deterministic for a
        seed. Default 0.

    Returns
    -------
    dict of str to float
        Each player's value, in the order of ``players``. The values sum to
        ``value(all players) - value(frozenset())``, exactly when computed and
        also (up to rounding) when estimated.

    Raises
    ------
    ValueError
        If a player is named twice, or ``exact_limit`` or ``n_permutations``
        is out of range.

    Notes
    -----
    The estimate is the permutation sampling of Castro, Gómez and Tejada
    (2009): a player's value is its mean marginal gain over sampled join
    orders. Coalitions already seen are not re-evaluated.
    """
    players = list(players)
    if len(set(players)) != len(players):
        raise ValueError(f"players must be distinct, got {players!r}")
    if exact_limit < 0:
        raise ValueError(f"exact_limit must be >= 0, got {exact_limit}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    if not players:
        return {}
    if len(players) <= exact_limit:
        return _exact_shapley(players, value)
    return _sampled_shapley(players, value, n_permutations, seed)


def _exact_shapley(players: list[str], value: Value) -> dict[str, float]:
    """Shapley values from every coalition, each evaluated once."""
    n = len(players)
    worth = {
        frozenset(c): float(value(frozenset(c)))
        for size in range(n + 1)
        for c in combinations(players, size)
    }
    # Weight of a coalition of s others in i's average: s! (n - s - 1)! / n!.
    weight = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    return {
        p: sum(weight[len(c)] * (worth[c | {p}] - v) for c, v in worth.items() if p not in c)
        for p in players
    }


def _sampled_shapley(
    players: list[str], value: Value, n_permutations: int, seed: int
) -> dict[str, float]:
    """Shapley values estimated from random join orders (Castro et al. 2009)."""
    rng = np.random.default_rng(seed)
    worth = functools.cache(lambda coalition: float(value(coalition)))
    totals = dict.fromkeys(players, 0.0)
    empty = worth(frozenset())
    for _ in range(n_permutations):
        coalition: frozenset[str] = frozenset()
        before = empty
        for index in rng.permutation(len(players)):
            coalition = coalition | {players[index]}
            after = worth(coalition)
            totals[players[index]] += after - before
            before = after
    return {p: totals[p] / n_permutations for p in players}


def _reference(scores: np.ndarray) -> np.ndarray:
    """Return the sorted finite scores: the reference of the empirical CDF."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.sort(scores[np.isfinite(scores)])


def _ecdf(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Map scores to the fraction of ``reference`` at or below them; NaN stays NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    if reference.size == 0:
        return np.full(scores.shape, np.nan)
    ranks = np.searchsorted(reference, scores, side="right") / reference.size
    return np.where(np.isnan(scores), np.nan, ranks)


def _weighted_mean(
    ranked: Mapping[str, np.ndarray], weights: Mapping[str, float]
) -> np.ndarray:
    """Weighted mean of ranked scores over the players of positive weight.

    A NaN from any player with positive weight makes the result NaN, so an
    observation is never judged by a different mix of players than the rest.
    """
    bad = [p for p, w in weights.items() if not w >= 0]  # also catches NaN
    if bad:
        raise GeoanomError(f"fusion weights must be >= 0; not so for players {bad}")
    used = {p: float(w) for p, w in weights.items() if w > 0}
    if not used:
        raise GeoanomError("fusion weights must include at least one positive weight")
    total = sum(used.values())
    return sum(ranked[p] * (w / total) for p, w in used.items())


def _check_scores(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the scores as 1-D float arrays of one length, or raise GeoanomError."""
    if not scores:
        raise GeoanomError("no scores to fuse: the mapping of players to scores is empty")
    arrays = {p: np.asarray(s, dtype=np.float64) for p, s in scores.items()}
    length = next(iter(arrays.values())).size
    for player, array in arrays.items():
        if array.shape != (length,):
            raise GeoanomError(
                f"scores of player '{player}' have shape {array.shape}, expected ({length},)"
            )
    return arrays


def _labels(truth: np.ndarray, length: int, keep: np.ndarray) -> np.ndarray:
    """Return the 0/1 labels of the kept rows as bools, or raise GeoanomError."""
    truth = np.asarray(truth)
    if truth.shape != (length,) or not np.isin(truth, (0, 1)).all():
        raise GeoanomError(
            f"truth must be {length} labels of 0/1 (or bool), got shape {truth.shape}"
        )
    labels = truth[keep].astype(bool)
    if labels.all() or not labels.any():
        raise GeoanomError("truth must hold both anomalies and normal observations")
    return labels


def _complete(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Return the mask of rows where every player's score is finite."""
    return np.logical_and.reduce([np.isfinite(a) for a in arrays.values()])


def fuse_scores(
    scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """Fuse players' scores into one: the weighted mean of their ranks.

    Parameters
    ----------
    scores : mapping of str to numpy.ndarray
        Each player's 1-D scores (higher is more anomalous) of the same
        observations.
    weights : mapping of str to float, optional
        Each player's weight (only their ratios matter); players with zero
        weight, or absent from ``weights``, are left out. Default: equal
        weights, a plain mean.

    Returns
    -------
    numpy.ndarray
        The fused score of every observation, in [0, 1]. Each player's scores
        are first mapped to their own empirical CDF, so players on different
        scales count alike. NaN where any player with positive weight is NaN.

    Raises
    ------
    GeoanomError
        If ``scores`` is empty, the arrays differ in length or are not 1-D,
        a weighted player has no scores, or a weight is negative or NaN, or
        none is positive.
    """
    arrays = _check_scores(scores)
    if weights is None:
        weights = dict.fromkeys(arrays, 1.0)
    missing = [p for p, w in weights.items() if w > 0 and p not in arrays]
    if missing:
        raise GeoanomError(f"no scores for weighted players {missing}")
    ranked = {p: _ecdf(_reference(a), a) for p, a in arrays.items()}
    return _weighted_mean(ranked, weights)


def fusion_value(scores: Mapping[str, np.ndarray], truth: np.ndarray) -> Value:
    """Return the characteristic function of score fusion.

    Parameters
    ----------
    scores : mapping of str to numpy.ndarray
        Each player's 1-D validation scores (higher is more anomalous).
    truth : numpy.ndarray
        1-D 0/1 labels of the same observations, 1 for an anomaly.

    Returns
    -------
    callable
        Maps a coalition (frozenset of player names) to the ROC AUC of the
        plain mean of its members' rank-normalised scores; 0.5 (chance) for
        the empty coalition. Rows where any player is NaN are left out, so
        every coalition is judged on the same observations.

    Raises
    ------
    GeoanomError
        If the scores are malformed, or ``truth`` is not 0/1 with both
        classes among the complete rows.
    """
    arrays = _check_scores(scores)
    complete = _complete(arrays)
    truth = _labels(truth, complete.size, complete)
    ranked = {p: _ecdf(_reference(a[complete]), a[complete]) for p, a in arrays.items()}

    def value(coalition: frozenset[str]) -> float:
        if not coalition:
            return 0.5
        # Sorted, so the sum and hence tied AUCs do not depend on set order.
        fused = np.mean([ranked[p] for p in sorted(coalition)], axis=0)
        return float(roc_auc_score(truth, fused))

    return value


def shapley_weights(
    scores: Mapping[str, np.ndarray], truth: np.ndarray, **kwargs
) -> dict[str, float]:
    """Return fusion weights from the players' Shapley values.

    Parameters
    ----------
    scores : mapping of str to numpy.ndarray
        Each player's 1-D validation scores (higher is more anomalous).
    truth : numpy.ndarray
        1-D 0/1 labels of the same observations, 1 for an anomaly.
    **kwargs
        ``exact_limit``, ``n_permutations``, ``seed`` of :func:`shapley_values`.

    Returns
    -------
    dict of str to float
        Each player's Shapley value of :func:`fusion_value`, negative values
        clipped to 0, normalised to sum to 1; uniform if every value is 0.
    """
    values = shapley_values(list(scores), fusion_value(scores, truth), **kwargs)
    return _normalise(values)


def _normalise(values: Mapping[str, float]) -> dict[str, float]:
    """Clip values at 0 and scale them to sum to 1 (uniform if all are 0)."""
    clipped = {p: max(float(v), 0.0) for p, v in values.items()}
    total = sum(clipped.values())
    if total == 0:
        return {p: 1.0 / len(clipped) for p in clipped}
    return {p: v / total for p, v in clipped.items()}


@dataclass
class ShapleyFusion:
    """Fuse players' scores with weights learnt from labelled validation data.

    Parameters
    ----------
    exact_limit, n_permutations, seed
        Passed to :func:`shapley_values`.

    Attributes
    ----------
    values_ : dict of str to float
        Each player's Shapley value (gain in validation AUC), after :meth:`fit`.
    weights_ : dict of str to float
        The fusion weights: values clipped at 0 and normalised to sum to 1.
    references_ : dict of str to numpy.ndarray
        Each player's sorted validation scores, to rank new scores against.
    """

    exact_limit: int = 10
    n_permutations: int = 200
    seed: int = 0
    values_: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    weights_: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    references_: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def fit(self, scores: Mapping[str, np.ndarray], truth: np.ndarray) -> ShapleyFusion:
        """Learn the weights and rank references from validation data.

        Parameters
        ----------
        scores : mapping of str to numpy.ndarray
            Each player's 1-D validation scores (higher is more anomalous).
        truth : numpy.ndarray
            1-D 0/1 labels of the same observations, 1 for an anomaly.

        Returns
        -------
        ShapleyFusion
            ``self``, fitted.
        """
        arrays = _check_scores(scores)
        self.values_ = shapley_values(
            list(arrays),
            fusion_value(arrays, truth),
            exact_limit=self.exact_limit,
            n_permutations=self.n_permutations,
            seed=self.seed,
        )
        self.weights_ = _normalise(self.values_)
        # The same rows fusion_value ranked on, so new data are ranked alike.
        complete = _complete(arrays)
        self.references_ = {p: _reference(a[complete]) for p, a in arrays.items()}
        return self

    def transform(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the fused score of new data, in [0, 1].

        Parameters
        ----------
        scores : mapping of str to numpy.ndarray
            The fitted players' 1-D scores of new observations.

        Returns
        -------
        numpy.ndarray
            The weighted mean of the scores ranked against the validation
            scores; NaN where a player of positive weight is NaN.
        """
        return _weighted_mean(self._ranked(scores), self.weights_)

    def compare(self, scores: Mapping[str, np.ndarray], truth: np.ndarray) -> dict[str, float]:
        """Compare the Shapley-weighted fusion with a plain mean on held-out data.

        Parameters
        ----------
        scores : mapping of str to numpy.ndarray
            The fitted players' 1-D scores of held-out observations.
        truth : numpy.ndarray
            1-D 0/1 labels of the same observations, 1 for an anomaly.

        Returns
        -------
        dict of str to float
            ``"shapley_auc"`` and ``"mean_auc"``: the ROC AUC of the weighted
            and the equally weighted fusion (both ranked against the
            validation scores) on the rows where both are finite.
        """
        ranked = self._ranked(scores)
        weighted = _weighted_mean(ranked, self.weights_)
        mean = _weighted_mean(ranked, dict.fromkeys(ranked, 1.0))
        keep = np.isfinite(weighted) & np.isfinite(mean)
        labels = _labels(truth, keep.size, keep)
        return {
            "shapley_auc": float(roc_auc_score(labels, weighted[keep])),
            "mean_auc": float(roc_auc_score(labels, mean[keep])),
        }

    def _ranked(self, scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rank new scores against the fitted references; players must match."""
        if not self.references_:
            raise GeoanomError("ShapleyFusion is not fitted: call fit(scores, truth) first")
        arrays = _check_scores(scores)
        if set(arrays) != set(self.references_):
            fitted = sorted(self.references_)
            raise GeoanomError(f"scores are for players {sorted(arrays)}, fitted on {fitted}")
        return {p: _ecdf(self.references_[p], a) for p, a in arrays.items()}
