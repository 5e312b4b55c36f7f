"""Krum's median fallback in rounds with too few updates is warned of once and recorded per round."""

import json
import warnings

import numpy as np
import pytest

from geoanom.errors import GeoanomWarning
from geoanom.federated import FederatedResult, RoundOptions, Security, train

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def rows():
    """Ten clients' rows, a rare class that depends on two features."""
    rng = np.random.default_rng(0)
    owner = np.array(list("abcdefghij"))[rng.integers(0, 10, 2000)]
    features = rng.normal(size=(2000, 3))
    return features, (features[:, 0] + features[:, 1] > 2).astype(float), owner


def test_krum_rounds_with_too_few_updates_warn_once_and_name_the_median(rows, tmp_path):
    features, labels, owner = rows
    # Seed 0 with 70 % sampling draws 6, 6, 8 and 7 of ten clients: Krum(f=2) needs 2f + 3 = 7.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(features, labels, clients=owner, aggregator="krum(2)",
                       schedule=RoundOptions(rounds=4, client_fraction=0.7, seed=0),
                       security=Security(audit_log=tmp_path / "audit.jsonl"))
    assert list(result.history["participants"]) == [6, 6, 8, 7]
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, GeoanomWarning)]
    assert len(fallbacks) == 1, fallbacks  # the first time in a run only
    assert "round 1 received 6 updates" in fallbacks[0] and "krum(f=2)" in fallbacks[0]
    assert "n >= 2f + 3 = 7" in fallbacks[0] and "median" in fallbacks[0]
    assert list(result.history["aggregated_by"]) == ["median", "median", "krum", "krum"]
    assert result.fallback_rounds == [1, 2]
    logged = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["aggregator"] for r in logged if r["event"] == "aggregation"] == ["median", "median", "krum", "krum"]
    result.save(tmp_path / "model.npz")
    assert FederatedResult.load(tmp_path / "model.npz").fallback_rounds == [1, 2]


def test_krum_with_enough_updates_every_round_does_not_warn(rows):
    features, labels, owner = rows
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoanomWarning)
        result = train(features, labels, clients=owner, aggregator="krum(2)", schedule=RoundOptions(rounds=2, seed=0))
    assert list(result.history["aggregated_by"]) == ["krum", "krum"] and result.fallback_rounds == []
