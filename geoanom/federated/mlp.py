"""The federated classifier: a multi-layer perceptron with two hidden ReLU layers, in numpy.

Written by hand rather than taken from scikit-learn: federated training needs
the model's parameters as plain arrays that a server can average, a local
step that starts from given parameters, and the FedProx proximal term, none of
which ``MLPClassifier`` exposes. The network is small (the paper's "shallow
neural network"), so numpy is fast enough and adds no dependency.

Parameters travel as one flat float64 vector; :class:`LayerShapes` maps it
to the weight matrices and biases and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIDDEN = (32, 16)


@dataclass(frozen=True)
class LayerShapes:
    """Shapes of the network's weights and biases, in the flat vector's order."""

    sizes: tuple[int, ...]  # n_features, hidden..., 1

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            out += [(fan_in, fan_out), (fan_out,)]
        return out

    @property
    def size(self) -> int:
        """Length of the flat parameter vector."""
        return int(sum(np.prod(shape) for shape in self.shapes))

    def unflatten(self, vector: np.ndarray) -> list[np.ndarray]:
        """Weights and biases (views of ``vector``), layer by layer."""
        out, start = [], 0
        for shape in self.shapes:
            stop = start + int(np.prod(shape))
            out.append(vector[start:stop].reshape(shape))
            start = stop
        return out


def init_parameters(shapes: LayerShapes, seed: int) -> np.ndarray:
    """He-initialised weights and zero biases, as a flat vector."""
    rng = np.random.default_rng(seed)
    parts = []
    for shape in shapes.shapes:
        if len(shape) == 2:
            parts.append(rng.normal(0.0, np.sqrt(2.0 / shape[0]), size=shape).ravel())
        else:
            parts.append(np.zeros(shape))
    return np.concatenate(parts)


def predict_logits(shapes: LayerShapes, vector: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The network's output before the sigmoid, one per row."""
    layers = shapes.unflatten(vector)
    hidden = features
    for weight, bias in zip(layers[:-2:2], layers[1:-2:2]):
        hidden = np.maximum(hidden @ weight + bias, 0.0)
    return (hidden @ layers[-2] + layers[-1])[:, 0]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -logits))


def loss_and_gradient(shapes: LayerShapes, vector: np.ndarray, features: np.ndarray, labels: np.ndarray,
                      positive_weight: float = 1.0) -> tuple[float, np.ndarray]:
    """Mean weighted binary cross-entropy and its gradient (backpropagation)."""
    layers = shapes.unflatten(vector)
    activations = [features]
    for weight, bias in zip(layers[:-2:2], layers[1:-2:2]):
        activations.append(np.maximum(activations[-1] @ weight + bias, 0.0))
    logits = (activations[-1] @ layers[-2] + layers[-1])[:, 0]
    sample_weight = np.where(labels > 0.5, positive_weight, 1.0)
    total = sample_weight.sum()
    # BCE with logits: log(1 + e^z) - y z, stable for any z
    loss = float(np.sum(sample_weight * (np.logaddexp(0.0, logits) - labels * logits)) / total)
    delta = ((sigmoid(logits) - labels) * sample_weight / total)[:, None]
    gradients: list[np.ndarray] = []
    for index in range(len(activations) - 1, -1, -1):
        weight = layers[2 * index]
        gradients = [activations[index].T @ delta, delta.sum(axis=0)] + gradients
        if index:
            delta = (delta @ weight.T) * (activations[index] > 0)
    return loss, np.concatenate([g.ravel() for g in gradients])


def local_sgd(shapes: LayerShapes, start: np.ndarray, features: np.ndarray, labels: np.ndarray, *,
              epochs: int, lr: float, batch_size: int, mu: float, positive_weight: float,
              seed: int) -> tuple[np.ndarray, float]:
    """Minibatch SGD from ``start`` on one client's data; FedProx when ``mu`` > 0.

    The proximal term (mu / 2) ||w - start||^2 keeps a client with unusual
    data from drifting far from the global model (Li et al., 2020).

    Returns
    -------
    parameters : ndarray
        The client's parameters after training.
    loss : float
        The mean loss of the global model on the client's data, before training.
    """
    rng = np.random.default_rng(seed)
    vector = start.copy()
    initial_loss, _ = loss_and_gradient(shapes, vector, features, labels, positive_weight)
    n_rows = len(features)
    for _ in range(int(epochs)):
        order = rng.permutation(n_rows)
        for begin in range(0, n_rows, batch_size):
            batch = order[begin : begin + batch_size]
            _, gradient = loss_and_gradient(shapes, vector, features[batch], labels[batch], positive_weight)
            if mu:
                gradient = gradient + mu * (vector - start)
            vector -= lr * gradient
    return vector, initial_loss
