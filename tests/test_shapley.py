"""Tests of geoanom.federated.shapley: Shapley values and score fusion."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from geoanom.errors import GeoanomError
from geoanom.federated.shapley import (
    ShapleyFusion,
    fuse_scores,
    fusion_value,
    shapley_values,
    shapley_weights,
)


def glove_game(coalition: frozenset[str]) -> float:
    """One left glove, two right ones: a coalition is worth its pairs."""
    return float(min(len(coalition & {"L"}), len(coalition & {"R1", "R2"})))


def saturating_game(weights: dict[str, float]):
    """A smooth superadditive-then-saturating game, for the sampling test."""
    total = sum(weights.values())

    def value(coalition: frozenset[str]) -> float:
        share = sum(weights[p] for p in coalition) / total
        return float(np.sqrt(share) + 0.5 * share**2)

    return value


# --------------------------------------------------------------------------
# exact Shapley values
# --------------------------------------------------------------------------


def test_additive_game_gives_each_player_its_own_contribution():
    contribution = {"a": 1.0, "b": -2.5, "c": 4.0}
    values = shapley_values(list(contribution), lambda s: sum(contribution[p] for p in s))
    assert values == pytest.approx(contribution)
    assert list(values) == ["a", "b", "c"]


def test_glove_game_has_its_known_values():
    values = shapley_values(["L", "R1", "R2"], glove_game)
    assert values == pytest.approx({"L": 2 / 3, "R1": 1 / 6, "R2": 1 / 6})


def test_majority_game_splits_equally():
    values = shapley_values(["x", "y", "z"], lambda s: float(len(s) >= 2))
    assert values == pytest.approx({"x": 1 / 3, "y": 1 / 3, "z": 1 / 3})


def test_efficiency_with_a_nonzero_empty_coalition():
    def value(s: frozenset[str]) -> float:
        return 3.0 + glove_game(s) + 0.7 * len(s) ** 2

    values = shapley_values(["L", "R1", "R2", "k"], value)
    everyone = frozenset(["L", "R1", "R2", "k"])
    assert sum(values.values()) == pytest.approx(value(everyone) - value(frozenset()))


def test_symmetric_players_get_equal_values():
    def value(s: frozenset[str]) -> float:
        pair = len(s & {"a", "b"})
        return pair**2 + 3.0 * pair * ("c" in s) + 0.5 * ("d" in s)

    values = shapley_values(["a", "b", "c", "d"], value)
    assert values["a"] == pytest.approx(values["b"])
    assert values["a"] != pytest.approx(values["c"])


def test_null_player_gets_zero_and_changes_nothing():
    values = shapley_values(["L", "R1", "null", "R2"], glove_game)
    assert values["null"] == pytest.approx(0.0, abs=1e-12)
    assert values == pytest.approx({"L": 2 / 3, "R1": 1 / 6, "null": 0.0, "R2": 1 / 6})


def test_exact_values_evaluate_each_coalition_once():
    calls: list[frozenset[str]] = []

    def value(s: frozenset[str]) -> float:
        calls.append(s)
        return float(len(s))

    shapley_values(list("abcde"), value)
    assert len(calls) == 2**5 and len(set(calls)) == 2**5


def test_argument_errors():
    with pytest.raises(ValueError, match="distinct"):
        shapley_values(["a", "a"], glove_game)
    with pytest.raises(ValueError, match="n_permutations"):
        shapley_values(["a"], glove_game, n_permutations=0)
    assert shapley_values([], glove_game) == {}


# --------------------------------------------------------------------------
# permutation sampling
# --------------------------------------------------------------------------


EIGHT = {f"p{i}": w for i, w in enumerate([0.2, 0.5, 1.0, 1.0, 1.5, 2.0, 3.0, 4.0])}


def test_sampling_is_close_to_exact_for_eight_players():
    game = saturating_game(EIGHT)
    exact = shapley_values(list(EIGHT), game)
    sampled = shapley_values(list(EIGHT), game, exact_limit=0, n_permutations=2000, seed=3)
    for player in EIGHT:
        assert sampled[player] == pytest.approx(exact[player], abs=0.02)
    # Every sampled order credits exactly v(all) - v(empty).
    assert sum(sampled.values()) == pytest.approx(game(frozenset(EIGHT)) - game(frozenset()))


def test_sampling_is_deterministic_for_a_seed():
    game = saturating_game(EIGHT)
    first = shapley_values(list(EIGHT), game, exact_limit=0, n_permutations=50, seed=7)
    again = shapley_values(list(EIGHT), game, exact_limit=0, n_permutations=50, seed=7)
    other = shapley_values(list(EIGHT), game, exact_limit=0, n_permutations=50, seed=8)
    assert first == again
    assert first != other


# --------------------------------------------------------------------------
# fusion
# --------------------------------------------------------------------------


def fusion_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three informative players (on different scales) and three pure-noise ones."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.1
    scores = {
        "gmm": 100.0 * (1.5 * truth + rng.normal(size=n)),
        "kmeans": np.exp(1.0 * truth + 0.5 * rng.normal(size=n)),
        "iforest": 0.4 + 0.01 * (1.2 * truth + rng.normal(size=n)),
        "noise_a": rng.normal(size=n),
        "noise_b": 1e3 * rng.random(n),
        "noise_c": rng.standard_exponential(n),
    }
    return scores, truth.astype(int)


def test_shapley_weights_favour_informative_players():
    scores, truth = fusion_data(2000, seed=0)
    weights = shapley_weights(scores, truth)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert min(weights.values()) >= 0.0
    assert weights["gmm"] + weights["kmeans"] + weights["iforest"] > 0.8


def test_fused_auc_beats_plain_mean_on_held_out_data():
    validation, validation_truth = fusion_data(2000, seed=0)
    held_out, held_out_truth = fusion_data(2000, seed=1)
    fusion = ShapleyFusion().fit(validation, validation_truth)
    result = fusion.compare(held_out, held_out_truth)
    assert result["shapley_auc"] > result["mean_auc"] + 0.02
    assert result["mean_auc"] == pytest.approx(
        roc_auc_score(held_out_truth, fuse_scores(held_out)), abs=0.01
    )
    fused = fusion.transform(held_out)
    assert result["shapley_auc"] == pytest.approx(roc_auc_score(held_out_truth, fused))
    assert fusion.weights_ == pytest.approx(shapley_weights(validation, validation_truth))


def test_fusion_value_of_coalitions():
    scores, truth = fusion_data(500, seed=2)
    value = fusion_value(scores, truth)
    assert value(frozenset()) == 0.5
    assert value(frozenset(["gmm"])) == pytest.approx(roc_auc_score(truth, scores["gmm"]))
    assert value(frozenset(["gmm", "kmeans"])) > value(frozenset(["gmm", "noise_b"]))


def test_fuse_scores_ranks_each_player():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=50), rng.normal(size=50)
    plain = fuse_scores({"a": a, "b": b})
    # Ranks ignore each player's scale.
    assert fuse_scores({"a": 1e6 * a - 3, "b": np.exp(b)}) == pytest.approx(plain)
    assert plain.min() >= 0.0 and plain.max() <= 1.0
    # A zero weight leaves the player out; only ratios of weights matter.
    assert fuse_scores({"a": a, "b": b}, {"a": 2.0, "b": 0.0}) == pytest.approx(
        fuse_scores({"a": a})
    )
    assert fuse_scores({"a": a, "b": b}, {"a": 3.0, "b": 1.0}) == pytest.approx(
        fuse_scores({"a": a, "b": b}, {"a": 0.75, "b": 0.25})
    )


def test_nan_stays_nan():
    a = np.array([0.1, np.nan, 0.3, 0.2])
    b = np.array([1.0, 2.0, 3.0, 4.0])
    fused = fuse_scores({"a": a, "b": b})
    assert np.isnan(fused[1]) and np.isfinite(fused[[0, 2, 3]]).all()
    assert np.isfinite(fuse_scores({"a": a, "b": b}, {"a": 0.0, "b": 1.0})).all()


def test_transform_ranks_new_data_against_validation():
    validation = {"a": np.arange(10.0), "b": np.arange(10.0)[::-1]}
    truth = np.array([0] * 7 + [1] * 3)
    fusion = ShapleyFusion().fit(validation, truth)
    assert fusion.weights_ == pytest.approx({"a": 1.0, "b": 0.0})
    fused = fusion.transform({"a": np.array([-5.0, 4.5, 100.0, np.nan]), "b": np.zeros(4)})
    assert fused[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert np.isnan(fused[3])


def test_fusion_errors():
    scores, truth = fusion_data(100, seed=5)
    with pytest.raises(GeoanomError, match="both"):
        shapley_weights(scores, np.zeros(100))
    with pytest.raises(GeoanomError, match="shape"):
        fuse_scores({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(GeoanomError, match=">= 0"):
        fuse_scores(scores, {"gmm": 1.0, "kmeans": -1.0})
    with pytest.raises(GeoanomError, match="no scores"):
        fuse_scores(scores, {"other": 1.0})
    with pytest.raises(GeoanomError, match="not fitted"):
        ShapleyFusion().transform(scores)
    fusion = ShapleyFusion().fit(scores, truth)
    with pytest.raises(GeoanomError, match="players"):
        fusion.transform({"gmm": scores["gmm"]})
