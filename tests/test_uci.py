"""The reference paper's Table II protocol on the Wisconsin breast-cancer data (see benchmarks/uci.py).

Two seeds of: train on 70% of benign, test on the other 30% and all malignant,
every detector with its defaults.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location("uci_benchmark", Path(__file__).parents[1] / "benchmarks" / "uci.py")
uci = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(uci)

# Measured (benchmarks/uci.py, 2026-11-25): four-family ensemble majority-flag
# balanced accuracy 0.852 (seed 0) and 0.920 (seed 1), mean 0.886; over seeds
# 0..4 the mean is 0.893 +- 0.022. Floor = the lower seed's value - 0.03.
ENSEMBLE_BALANCED_ACCURACY_FLOOR = 0.82
# Measured ROC AUC over seeds 0..4: gmm 0.971, kmeans 0.905, dpmm 0.945, iforest 0.959.
MIN_ROC_AUC = 0.85


@pytest.fixture(scope="module")
def runs():
    return [uci.run_seed(seed, default_ensemble=False) for seed in (0, 1)]


def test_split_follows_protocol():
    train, normal, anomalous = uci.load_split(0)
    assert (len(train), len(normal), len(anomalous)) == (250, 107, 212)
    # the benign test share is disjoint from the training share
    assert not (train[:, None, :] == normal[None, :, :]).all(axis=2).any()


def test_every_family_ranks_malignant_above_benign(runs):
    for run in runs:
        for name in uci.ALL_FAMILIES:
            assert run["rows"][name]["roc_auc"] > MIN_ROC_AUC, (run["seed"], name, run["rows"][name])


def test_ensemble_balanced_accuracy_above_floor(runs):
    for run in runs:
        row = run["rows"]["ensemble (majority)"]
        assert row["balanced_accuracy"] > ENSEMBLE_BALANCED_ACCURACY_FLOOR, (run["seed"], row)
        # a flag rule that calls everything anomalous (or nothing) has balanced accuracy 0.5
        assert 0.0 < row["sensitivity"] < 1.0 and 0.0 < row["specificity"] <= 1.0


def test_no_family_needed_a_user_threshold(runs):
    for run in runs:
        assert set(run["threshold_source"]) == set(uci.ALL_FAMILIES)
        for name, source in run["threshold_source"].items():
            assert source in ("paper", "estimated"), (name, source)
        assert all(np.isfinite(t) for t in run["threshold"].values())
