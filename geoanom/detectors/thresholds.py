"""How a detector's threshold on its native score is chosen, and merged.

The reference paper's constants (-1, 4, 0.6) are kept where plausible for
the training data, else a threshold is estimated from the contamination.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The paper's constant is kept when it flags between these multiples of the
# expected contamination of the training data,
PLAUSIBLE_RATE_FACTORS = (0.1, 2.0)
# and at most this far from it (a share): the paper's constants suit rare
# anomalies, and a user asking 5% or 20% wants that share, not the constant's
# (at 20% the constants flagged 4.2-8.5%: 7.2% by the majority). From 1.1% down
# the factors are the narrower bound, so the default 1% is unaffected.
PLAUSIBLE_RATE_GAP = 0.01


def contamination_quantile(scores: np.ndarray, contamination: float, anomalous_above: bool,
                           held_out: bool = False) -> float:
    """The score that flags a share ``contamination`` of ``scores``, or of new observations.

    ``held_out=False``: the sample quantile of training scores.
    ``held_out=True``: the scores are of rows their model did not see (see
    :mod:`~geoanom.detectors.crossfit`), so they are exchangeable with a
    new observation's, and the split-conformal quantile, the
    ``ceil((n + 1) (1 - contamination))``-th smallest of the ``n`` scores
    (mirrored for families anomalous below), flags at most a share
    ``contamination`` of new normal observations. The sample quantile
    flags up to ``1 / n`` more, which matters on a small tile (144 rows:
    1.7% instead of 1%). Where that rank is beyond the largest score (fewer
    than ``1 / contamination - 1`` scores: 99 at 1%) the tail is
    extrapolated (:func:`tail_quantile`).

    Examples
    --------
    >>> contamination_quantile(np.arange(101.0), 0.1, anomalous_above=True)
    90.0
    >>> contamination_quantile(np.arange(100.0), 0.1, anomalous_above=True, held_out=True)
    90.0
    >>> contamination_quantile(np.arange(100.0), 0.1, anomalous_above=False, held_out=True)
    9.0
    """
    if not held_out:
        return float(np.quantile(scores, 1.0 - contamination if anomalous_above else contamination))
    n = len(scores)
    if np.ceil((n + 1) * (1.0 - contamination)) > n:  # beyond the largest score: extrapolate its tail
        return tail_quantile(scores, contamination, anomalous_above)
    rank = min(int(np.ceil((n + 1) * (1.0 - contamination))), n)  # 1-based, from the normal end
    ordered = np.partition(np.asarray(scores), (rank - 1, n - rank))
    return float(ordered[rank - 1] if anomalous_above else ordered[n - rank])


def tail_quantile(scores: np.ndarray, contamination: float, anomalous_above: bool) -> float:
    """The score that flags a share ``contamination`` of new observations, beyond the largest of few ``scores``.

    With ``n`` held-out scores the conformal quantile can flag no fewer
    than ``1 / (n + 1)`` of new normal observations (the largest score): 4%
    on a tile of 24 rows, against a contamination of 1%. Beyond it the tail
    is extrapolated: an exponential tail is fitted to the excesses of the
    ``k`` largest scores over the next one (``k`` a quarter of the scores,
    at least ``TAIL_ROWS``), ``P(S > u + x) = k / (n + 1) exp(-x / mean excess)``,
    and solved for the contamination. An exponential tail is heavier than a
    Gaussian distance's, so on such scores it errs towards fewer flags; the
    threshold is never below the largest score. Mirrored for families
    anomalous below.

    Examples
    --------
    >>> scores = np.random.default_rng(0).exponential(size=24)
    >>> bool(tail_quantile(scores, 0.01, anomalous_above=True) > scores.max())
    True
    >>> round(tail_quantile(np.arange(24.0), 0.01, anomalous_above=False), 2)
    -5.12
    """
    oriented = np.sort(np.asarray(scores, dtype=np.float64) * (1.0 if anomalous_above else -1.0))[::-1]
    n = len(oriented)
    k = min(max(TAIL_ROWS, n // 4), n - 1)
    base = oriented[k]
    excess = float(np.mean(oriented[:k] - base))
    threshold = max(base + excess * np.log(k / ((n + 1) * contamination)), oriented[0])
    return float(threshold if anomalous_above else -threshold)


# The fewest scores an extrapolated tail is fitted to (see tail_quantile).
TAIL_ROWS = 5


def choose_threshold(
    train_scores: np.ndarray,
    constant: float,
    *,
    anomalous_above: bool,
    contamination: float,
    held_out: bool = False,
) -> tuple[float, str]:
    """Pick the family's constant threshold, or estimate one when it is implausible.

    The constant (the reference paper's -1, 4 or 0.6) is kept when the share
    of training observations it flags lies between a tenth and twice the
    expected ``contamination``, and within one percentage point of it
    (:data:`PLAUSIBLE_RATE_GAP`, the narrower bound above 1.1%): a constant
    that flags far more is too lenient for these data (a false-alarm
    factory), one that flags far less is blind to them (an isolation forest
    at 0.6 on some data sets), and a contamination of 5% or 20% asks for
    that share, not the constant's.
    Otherwise the threshold is the training scores' quantile that flags the
    share ``contamination`` (the paper's "contamination estimate"); a
    quantile ignores the scale and the skew of the score, which differ
    between families and tiles. ``held_out``: the scores are of rows the
    model did not see (see :func:`contamination_quantile`).

    Scores without a tail keep the constant even when it flags none: when
    the quantile is the median itself (more than half the scores tie at
    it), the scores are a point mass, as a tile of constant features gives,
    and a threshold on it would flag every new observation that differs
    from it by rounding.

    Returns
    -------
    threshold : float
    source : {"paper", "estimated"}

    Examples
    --------
    >>> scores = np.r_[np.zeros(990), np.ones(10)]
    >>> choose_threshold(scores, 0.6, anomalous_above=True, contamination=0.01)
    (0.6, 'paper')
    >>> choose_threshold(np.full(1000, 0.5), 0.6, anomalous_above=True, contamination=0.01)
    (0.6, 'paper')
    >>> normal = np.random.default_rng(0).normal(size=1000)  # 1.645 flags 5% of them
    >>> choose_threshold(normal, 1.645, anomalous_above=True, contamination=0.05)[1]
    'paper'
    >>> choose_threshold(normal, 1.645, anomalous_above=True, contamination=0.2)[1]  # 5% is no answer to 20%
    'estimated'
    """
    low, high = plausible_shares(contamination)
    share = _flagged_share(train_scores, constant, anomalous_above)
    if low <= share <= high:
        return float(constant), "paper"
    estimate = contamination_quantile(train_scores, contamination, anomalous_above, held_out)
    if share < low and estimate == float(np.median(train_scores)):
        return float(constant), "paper"  # a point mass: no tail to estimate from (see above)
    return estimate, "estimated"


def plausible_shares(contamination: float) -> tuple[float, float]:
    """The least and most shares of training data the paper's constant may flag and be kept (see :func:`choose_threshold`).

    Examples
    --------
    >>> plausible_shares(0.01)
    (0.001, 0.02)
    >>> tuple(round(share, 3) for share in plausible_shares(0.2))
    (0.19, 0.21)
    """
    low, high = (factor * contamination for factor in PLAUSIBLE_RATE_FACTORS)
    return max(low, contamination - PLAUSIBLE_RATE_GAP), min(high, contamination + PLAUSIBLE_RATE_GAP)


def _flagged_share(scores: np.ndarray, threshold: float, anomalous_above: bool) -> float:
    """Share of ``scores`` beyond ``threshold`` on the anomalous side."""
    return float(np.mean(scores > threshold if anomalous_above else scores < threshold))


def merged_threshold(a: Any, b: Any, merged_count_a: float, merged_count_b: float) -> tuple[float, str]:
    """Sample-weighted native threshold of two partial models (used by ``merge``).

    Examples
    --------
    >>> import numpy as np
    >>> from geoanom.detectors import KMeansDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> a, b = KMeansDetector(random_state=0).fit(X), KMeansDetector(random_state=1).fit(X)
    >>> merged_threshold(a, b, 1.0, 1.0)[1] in {"paper", "estimated"}
    True
    """
    total = merged_count_a + merged_count_b
    threshold = (a.native_threshold_ * merged_count_a + b.native_threshold_ * merged_count_b) / total
    source = a.threshold_source_ if a.threshold_source_ == b.threshold_source_ else "estimated"
    return float(threshold), source
