"""Federated learning across tiles and institutions, on Dask: raw data stay where they are.

>>> result = geoanom.federated.train(X, y, clients=tiles, aggregator="median",
...                                  schedule=RoundOptions(rounds=30))         # doctest: +SKIP
>>> result.predict_proba(X_new)[:, 1]                                            # doctest: +SKIP
"""

from .audit import AuditLog, check_audit, verify_audit
from .convergence import Convergence
from .cube import CubeRows, cube_rows
from .engine import train
from .options import LocalTraining, RoundOptions, Security, Simulation
from .privacy import GaussianDP, PrivacyAccountant, calibrate_noise, epsilons
from .result import FederatedResult
from .rules import AGGREGATORS, Aggregator, FedAvg, FedProx, Krum, Median, MultiKrum, TrimmedMean, make_aggregator
from .shapley import ShapleyFusion, fuse_scores, shapley_values, shapley_weights
from .signing import ClientKeys, SignedUpdate, UpdateVerifier
from .spatial import geohash_weights, morans_i, tile_morans_i

load = FederatedResult.load

__all__ = [
    "AGGREGATORS", "Aggregator", "AuditLog", "ClientKeys", "Convergence", "CubeRows", "FedAvg", "FedProx",
    "FederatedResult", "GaussianDP", "Krum", "LocalTraining", "Median", "MultiKrum", "PrivacyAccountant",
    "RoundOptions", "Security", "ShapleyFusion", "SignedUpdate", "Simulation", "TrimmedMean", "UpdateVerifier",
    "calibrate_noise", "check_audit", "cube_rows",
    "epsilons", "fuse_scores", "geohash_weights", "load", "make_aggregator", "morans_i", "shapley_values",
    "shapley_weights", "tile_morans_i", "train", "verify_audit",
]
