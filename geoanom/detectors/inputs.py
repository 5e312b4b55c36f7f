"""The rows a detector reads: checked, constant columns read as constant, standardised.

Every family takes its training and scored rows through these helpers
(:class:`~geoanom.detectors.base.Detector` calls them for the contract's
``fit``, ``fit_many`` and scoring paths; the mixtures and K-Means
standardise their training rows with :func:`standardised_sample`).

Constant features
-----------------
A tile of sea ice held at the freezing point, or of land filled with one
value, has feature columns that do not vary: their training spread is
rounding noise (1e-21 to 1e-6 of a spread), and the scored rows' noise
differs from the training rows' (leave-one-out anomalies). Standardised by
that spread, the noise became distances of 1e13 standard deviations
(irregularity inf in float32, every step flagged). ``fit_many`` takes each
column's unit (``feature_units``: 1 for standardised anomalies, a typical
spread for raw values; ``geoanom.fit`` passes them): a column whose
training spread is at most ``CONSTANT_SHARE`` of its unit is constant.
Its values within that resolution of the column's median are read as the
median itself, in fitting and in scoring (every family sees the same
rows), and the mixtures and K-Means standardise it by its unit. So a
constant tile's own values are normal, and a departure from the constant
is measured in the column's unit: anomalous, and finite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils import check_array

if TYPE_CHECKING:  # annotations only: base imports this module
    from .base import Detector

__all__ = ["CONSTANT_SHARE", "ROUNDING_SHARE", "check_features", "check_samples", "checked_constant",
           "constant_columns", "read_as_constant", "standardised_sample"]

# A feature column whose training spread is at most this share of its unit is constant (see the module docstring):
# a thousandth of a spread for the anomaly features, three orders above the rounding noise of a constant cell's.
CONSTANT_SHARE = 1e-3
# A spread this small relative to the column's magnitude is the rounding of its mean, not variation.
ROUNDING_SHARE = 1e-9


def check_features(X: Any, n_features: int | None = None, owner: str = "the detector") -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, refusing what scikit-learn refuses.

    The light check of the scoring paths (called once per batch of rows):
    a 1-D array, a wrong number of features, NaN or infinity raise
    ``ValueError`` with scikit-learn's messages; nothing is reshaped.

    Examples
    --------
    >>> check_features([[1.0, 2.0]], 2).shape
    (1, 2)
    """
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"Expected 2D array, got {array.ndim}D array instead. Reshape your data "
                         "either using array.reshape(-1, 1) if your data has a single feature or "
                         "array.reshape(1, -1) if it contains a single sample.")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"X has {array.shape[1]} features, but {owner} is expecting {n_features} features as input.")
    if not np.isfinite(array).all():
        raise ValueError("Input X contains NaN or infinity.")
    return array


def check_samples(X: Any) -> np.ndarray:
    """A training sample as a finite 2-D float64 array of at least 2 rows (scikit-learn's check).

    Examples
    --------
    >>> check_samples([[0.0], [1.0]]).dtype
    dtype('float64')
    """
    if (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2 and X.shape[0] >= 2 and X.shape[1] >= 1
            and np.isfinite(X).all()):
        return X  # what check_array returns for these, without its 0.1 ms a call (twice per tile and family in fit)
    return check_array(X, dtype=np.float64, ensure_min_samples=2)


def constant_columns(X: np.ndarray, units: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Median and resolution of each column of ``X`` that is constant at its unit; None when no column is.

    A column is constant when its spread is at most ``CONSTANT_SHARE`` of its
    unit (``units``, one per column); its resolution is that share of the
    unit. Other columns get resolution 0 (only their median itself is read
    as it).

    Examples
    --------
    >>> X = np.c_[np.full(4, 271.35) + [0.0, 1e-9, -1e-9, 0.0], np.arange(4.0)]
    >>> median, resolution = constant_columns(X, [1.0, 1.0])
    >>> median.round(2).tolist(), resolution.tolist()
    ([271.35, 1.5], [0.001, 0.0])
    >>> constant_columns(X[:, 1:], [1.0]) is None
    True
    """
    units = np.asarray(units, dtype=np.float64)
    if units.shape != (X.shape[1],) or not (np.isfinite(units) & (units > 0)).all():
        raise ValueError(f"feature_units must be {X.shape[1]} positive numbers, one per feature, got {units.tolist()}")
    resolution = CONSTANT_SHARE * units
    # Two values d apart make the spread at least d / sqrt(2 n): the first rows rule out nearly every column
    # of a varying tile (8 us against the spread's 180 for 4096 x 2 rows, once per tile and family).
    head = X[:64]
    candidates = np.flatnonzero(head.max(axis=0) - head.min(axis=0) <= resolution * np.sqrt(2.0 * len(X)))
    if not candidates.size:
        return None
    constant = np.zeros(X.shape[1], dtype=bool)
    constant[candidates] = X[:, candidates].std(axis=0) <= resolution[candidates]
    if not constant.any():
        return None
    return np.median(X, axis=0), np.where(constant, resolution, 0.0)


def read_as_constant(X: np.ndarray, constant: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``X`` with each constant column's values within its resolution read as its median (a copy if any is).

    ``constant`` is :func:`constant_columns`' (median, resolution), or None
    (``X`` is returned as it is).

    Examples
    --------
    >>> X = np.array([[2.0005, 1.0], [2.5, 2.0]])
    >>> read_as_constant(X, (np.array([2.0, 1.5]), np.array([0.001, 0.0]))).tolist()
    [[2.0, 1.0], [2.5, 2.0]]
    """
    if constant is None:
        return X
    median, resolution = constant
    columns = np.flatnonzero(resolution > 0)
    near = np.abs(X[:, columns] - median[columns]) <= resolution[columns]
    if not near.any():
        return X
    X = X.copy()
    X[:, columns] = np.where(near, median[columns], X[:, columns])
    return X


def checked_constant(constant: tuple[Any, Any], n_features: int, family: str) -> tuple[np.ndarray, np.ndarray]:
    """A saved state's constant columns as arrays, or ValueError in one sentence when they disagree with its width.

    Examples
    --------
    >>> median, resolution = checked_constant(([2.0, 0.5], [0.001, 0.0]), 2, "gmm")
    >>> median.dtype, resolution.tolist()
    (dtype('float64'), [0.001, 0.0])
    >>> checked_constant(([2.0], [0.001]), 2, "gmm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: gmm detector: constant_median_ (1,) and constant_resolution_ (1,) must be finite, one per feature (2)...
    """
    median, resolution = (np.asarray(value, dtype=np.float64) for value in constant)
    if median.shape != (n_features,) or resolution.shape != (n_features,) or not np.isfinite(median).all() \
            or not (resolution >= 0).all():
        raise ValueError(f"{family} detector: constant_median_ {median.shape} and constant_resolution_ "
                         f"{resolution.shape} must be finite, one per feature ({n_features}), resolutions not negative")
    return median, resolution


def standardised_sample(
    detector: Detector, X: np.ndarray, max_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Set the detector's ``center_``, ``scale_`` and ``n_samples_`` from all of ``X``.

    Returns ``X`` standardised, subsampled uniformly to at most ``max_samples``
    rows (in their original order) for the iterative fit. A constant column
    (the detector's ``constant_features``, see :func:`constant_columns`) is
    centred on its median and scaled by its unit; a spread at the rounding of
    the mean counts as none.

    Examples
    --------
    >>> from geoanom.detectors import GMMDetector
    >>> detector = GMMDetector()
    >>> Z = standardised_sample(detector, np.c_[np.full(3, 2.0), [0.0, 1.0, 2.0]], 10, np.random.default_rng(0))
    >>> detector.scale_.round(3).tolist(), Z[:, 0].tolist()
    ([1.0, 0.816], [0.0, 0.0, 0.0])
    """
    detector.center_ = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > ROUNDING_SHARE * np.maximum(np.abs(detector.center_), 1.0), scale, 1.0)
    if detector.constant_features is not None:  # measured in their unit, not their rounding noise
        median, resolution = detector.constant_features
        constant = resolution > 0
        detector.center_ = np.where(constant, median, detector.center_)
        scale = np.where(constant, resolution / CONSTANT_SHARE, scale)
    detector.scale_ = scale
    detector.n_samples_ = float(len(X))
    if len(X) > max_samples:
        X = X[np.sort(rng.choice(len(X), max_samples, replace=False))]
    return (X - detector.center_) / detector.scale_
