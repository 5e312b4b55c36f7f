"""The least tile sizes the detector families support, and the checks of ``geoanom.fit``'s size and seed parameters.

A tile's thresholds are chosen from out-of-fold scores from
``MIN_TILE_ROWS`` rows on (:mod:`.crossfit`), with the tail extrapolated
where the rows are too few for the contamination's quantile
(:func:`.thresholds.tail_quantile`): tiles of 12-98 rows of clean
synthetic data flag 0.8-1.1% of new normal rows by the majority of the
five default families, 0.8-3% by one family (``tests/test_small_tiles.py``).
Fewer rows than that keep in-sample thresholds, which flag many times the
contamination (24 rows: 10.7% by the majority, 24% by kmeans), so
``min_observations`` and ``sample_size`` (the rows a tile's iterative models
are fitted on) below ``MIN_TILE_ROWS`` are refused.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from ..errors import ParameterError
from .crossfit import CROSSFIT_ABOVE

# The fewest rows a tile's families are fitted on: the fewest with out-of-fold thresholds.
MIN_TILE_ROWS = CROSSFIT_ABOVE


def _whole(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _at_least_tile_rows(name: str, value: Any, why: str) -> int:
    """``value`` as an int, or a ParameterError naming ``name``, the value, ``MIN_TILE_ROWS`` and ``why``."""
    if not _whole(value) or value < MIN_TILE_ROWS:
        raise ParameterError(f"{name} must be a whole number of at least {MIN_TILE_ROWS}, got {value!r}: {why}.")
    return int(value)


def check_min_observations(value: Any) -> int:
    """``min_observations`` as an int, or a :class:`~geoanom.errors.ParameterError` below ``MIN_TILE_ROWS``.

    Examples
    --------
    >>> check_min_observations(100)
    100
    >>> check_min_observations(5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geoanom.errors.ParameterError: min_observations must be a whole number of at least 12, got 5: a tile of fewer...
    """
    return _at_least_tile_rows("min_observations", value,
                               "a tile of fewer observations cannot have thresholds that hold on new data")


def check_sample_size(value: Any) -> int:
    """``sample_size`` as an int, or a :class:`~geoanom.errors.ParameterError` below ``MIN_TILE_ROWS``.

    Examples
    --------
    >>> check_sample_size(4096)
    4096
    >>> check_sample_size(2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geoanom.errors.ParameterError: sample_size must be a whole number of at least 12, got 2: each tile's models...
    """
    return _at_least_tile_rows("sample_size", value,
                               "each tile's models are fitted on that many of its observations (4096 by default)")


def check_seed(value: Any) -> int:
    """``seed`` as an int, or a :class:`~geoanom.errors.ParameterError` unless a whole number of 0 or more.

    Examples
    --------
    >>> check_seed(7)
    7
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    geoanom.errors.ParameterError: seed must be a whole number of 0 or more, got -1.
    """
    if value is None:  # scikit-learn's random_state=None; geoanom.fit draws one with resolve_seed
        raise ParameterError("seed must be a whole number of 0 or more, got None: a model records the seed that "
                             "reproduces it, so pass one (any, say 0).")
    if not _whole(value) or value < 0:
        raise ParameterError(f"seed must be a whole number of 0 or more, got {value!r}.")
    return int(value)


def resolve_seed(value: Any) -> int:
    """The seed to use: ``value`` checked, or a fresh one drawn from the operating system's entropy when None.

    scikit-learn's ``random_state=None`` habit: None means fresh randomness;
    the seed drawn is returned so the caller records it (a model states the
    seed that reproduces it).

    Examples
    --------
    >>> resolve_seed(3)
    3
    >>> 0 <= resolve_seed(None) < 2**32
    True
    """
    if value is None:
        return int(np.random.SeedSequence().entropy % 2**32)
    return check_seed(value)
