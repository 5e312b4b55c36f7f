"""Rough edges of the federated path a new user found: one-class labels, its model given to score, the curves."""

import numpy as np
import pandas as pd
import pytest

import geoanom as ga
from geoanom.errors import GeoanomError, ModelFileError
from geoanom.plot.curves import learning_curve


def test_labels_of_one_class_are_refused_before_any_round():
    X, clients = np.random.default_rng(0).normal(size=(400, 4)), np.repeat(["inst-a", "inst-b"], 200)
    # was: trained silently, a classifier that says "no event" of every row (P = 6e-131 at 50 sigma)
    with pytest.raises(GeoanomError, match=r"^y holds only 0s \(400 rows\): the classifier needs rows of both"):
        ga.federated.train(X, np.zeros(400), clients=clients)


@pytest.mark.parametrize("labels, message", [
    (lambda y: 2 * y - 1, r"^y must hold 0 or 1 in each row \(1: an event\), but also holds -1; map the labels"),
    (lambda y: y * 0.5, r"^y must hold 0 or 1 in each row \(1: an event\), but also holds 0\.5; "),
    (lambda y: y[:300], r"^y must hold one label per row \(400\), got shape \(300,\)\.$"),
])
def test_labels_that_are_not_0_and_1_are_named_by_their_values(labels, message):
    X, clients = np.random.default_rng(0).normal(size=(400, 3)), np.repeat(["a", "b"], 200)
    y = (X[:, 0] > 1.5).astype(int)
    # was: "y must hold one 0 or 1 per row (400), got shape (400,)": the shape named was right, the values wrong
    with pytest.raises(GeoanomError, match=message):
        ga.federated.train(X, labels(y), clients=clients)


def test_a_nan_in_the_rows_is_named_by_its_place():
    X, clients = np.random.default_rng(0).normal(size=(400, 3)), np.repeat(["a", "b"], 200)
    X[1, 2] = np.nan
    with pytest.raises(GeoanomError, match=r"^X must be finite, but 1 of its 1200 values is NaN or infinite "
                                           r"\(the first at row 1, column 2\); drop or fill those rows\.$"):
        ga.federated.train(X, (X[:, 0] > 1.5).astype(int), clients=clients)
    with pytest.raises(GeoanomError, match=r"^X must be a 2-D array of rows \(observations by features\), got shape"):
        ga.federated.train(X[0], None, clients=clients[:1])


def test_a_federated_classifier_given_as_a_detector_model_is_named(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, meta=np.zeros(3, np.uint8), parameters=np.zeros(5))  # the arrays geoanom federate writes
    with pytest.raises(ModelFileError, match=r"is a federated anomaly classifier \(geoanom federate\), not a "
                                             r"detector model: .*geoanom\.federated\.load\(path\)\.predict_proba"):
        ga.load_model(path)  # was: "is not a geoanom model file"


def test_learning_curve_has_no_empty_panel_and_whole_rounds(tmp_path):
    history = pd.DataFrame({"participants": [475, 475], "loss": [1.34, 0.80], "update_norm": [0.45, 0.29],
                            "dropped": [0, 0], "epsilon": [np.nan, np.nan]}, index=pd.Index([1, 2], name="round"))
    figure = learning_curve(history)
    assert [axes.get_title() for axes in figure.axes] == ["learning", "clients per round"]  # was: "no differential privacy"
    for axes in figure.axes:
        ticks = [t for t in axes.get_xticks() if 1 <= t <= 2]
        assert ticks == [1.0, 2.0]  # was 1.0, 1.25, 1.5, ...: rounds between rounds
        assert axes.lines  # something drawn on every panel
    assert len(learning_curve(history.assign(epsilon=[0.5, 0.9])).axes) == 3  # privacy spent, when private
    learning_curve(history, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, r"^epochs must be a whole number of at least 1 \(0 trains nothing\), got 0\.$"),
    ({"batch_size": 0}, r"^batch_size must be a whole number of at least 1, got 0\.$"),
    ({"hidden": (0, 0)}, r"^hidden must be two layer sizes of at least 1, got \(0, 0\)\.$"),
    ({"hidden": 32}, r"^hidden must be two layer sizes of at least 1, got 32\.$"),
    ({"lr": -0.1}, r"^lr must be a positive learning rate, got -0\.1\.$"),
    ({"lr": float("nan")}, r"^lr must be a positive learning rate, got nan\.$"),
])
def test_local_training_that_cannot_train_is_refused_in_one_sentence(options, message):
    # was: epochs=0 returned an untrained model (AUC 0.46), batch_size=0 and hidden=(0, 0) ended in a worker's
    # traceback, and a negative learning rate was reported as "client 0 sent NaN"
    with pytest.raises(GeoanomError, match=message):
        ga.federated.LocalTraining(**options)


def test_an_attack_on_no_client_is_refused_before_any_round():
    X, clients = np.random.default_rng(0).normal(size=(400, 3)), np.repeat(["a", "b"], 200)
    y = (X[:, 0] > 1.5).astype(int)
    # was: silently ignored, so a robustness evaluation measured no attack at all
    with pytest.raises(GeoanomError, match=r"^the attack of client 'zz' names no client; the clients are 'a', 'b'\.$"):
        ga.federated.train(X, y, clients=clients, simulation=ga.federated.Simulation(attacks={"zz": "sign_flip"}))


def test_a_client_without_a_placement_is_named_as_the_user_wrote_it():
    X, clients = np.random.default_rng(0).normal(size=(400, 3)), np.repeat(["a", "b"], 200)
    y = (X[:, 0] > 1.5).astype(int)
    with pytest.raises(GeoanomError, match=r"^client 'b' has no entry in placement; "):  # was np.str_('b')
        ga.federated.train(X, y, clients=clients, security=ga.federated.Security(placement={"a": "inst-a"}))
