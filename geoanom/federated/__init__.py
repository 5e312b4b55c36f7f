"""Federated learning across tiles and institutions, on Dask: raw data stay where they are.

>>> result = geoanom.federated.train(X, y, clients=tiles, aggregator="median")  # doctest: +SKIP
>>> result.predict_proba(X_new)[:, 1]                                            # doctest: +SKIP
"""

from .aggregators import AGGREGATORS, Aggregator, make_aggregator
from .audit import AuditLog, check_audit, verify_audit
from .convergence import Convergence
from .cube import CubeRows, cube_rows
from .engine import train
from .privacy import GaussianDP, PrivacyAccountant, calibrate_noise, epsilons
from .signing import ClientKeys, SignedUpdate, UpdateVerifier
from .result import FederatedResult
from .shapley import ShapleyFusion, fuse_scores, shapley_values, shapley_weights
from .spatial import geohash_weights, morans_i, tile_morans_i

load = FederatedResult.load

__all__ = [
    "AGGREGATORS", "Aggregator", "AuditLog", "ClientKeys", "Convergence", "CubeRows", "FederatedResult",
    "GaussianDP", "PrivacyAccountant", "ShapleyFusion", "SignedUpdate", "UpdateVerifier", "calibrate_noise",
    "check_audit", "cube_rows",
    "epsilons", "fuse_scores", "geohash_weights", "load", "make_aggregator", "morans_i", "shapley_values",
    "shapley_weights", "tile_morans_i", "train", "verify_audit",
]
