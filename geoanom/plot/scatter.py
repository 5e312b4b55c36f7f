"""A tile's feature vectors with its fitted model drawn over them: components, centroids, thresholds.

:func:`feature_scatter` plots two features of a tile's observations (from
:func:`geoanom.model.trajectory.feature_trajectory`, the vectors scoring
sees) and over them what the tile's ensemble learned: the Gaussian mixture's
and the Dirichlet-process mixture's components as ellipses, the K-Means
centroids, and where each family's irregularity, and the ensemble's majority
decision, cross 1 (the threshold), evaluated on a grid over the two
features with the others held at their medians.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import GeoanomError, TileError
from .layout import fit_title, saved

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..detectors import Detector, Ensemble
    from ..model import AnomalyModel

ELLIPSE_SIGMAS = 2.0  # component ellipses hold about 86% of a 2-D Gaussian's mass
MIXTURES = ("gmm", "dpmm")
FAMILY_COLOURS = {"gmm": "tab:blue", "dpmm": "tab:purple", "kmeans": "tab:green", "iforest": "tab:orange"}
GRID_SIZE = 120  # points per axis of the grid the threshold contours are evaluated on
MARGIN = 0.15  # the plot reaches this share of the data's range beyond it


@dataclass(frozen=True)
class Component:
    """One mixture component projected on two features: its ellipse and weight."""

    centre: np.ndarray  # (2,)
    width: float
    height: float
    angle: float  # degrees, of the width's axis from the x axis
    weight: float


def component_ellipses(detector: "Detector", i: int, j: int, sigmas: float = ELLIPSE_SIGMAS) -> list[Component]:
    """The components of a fitted mixture (gmm or dpmm) on features ``i`` and ``j``, in data units.

    A Gaussian's marginal on two features is the Gaussian of their means
    and 2 x 2 block of the covariance; the ellipse is its ``sigmas``
    contour (axes ``2 sigmas sqrt(eigenvalue)`` along the eigenvectors).
    The detector stores its components in standardised units
    (``(x - center_) / scale_``); they are brought back to the data's.

    Examples
    --------
    >>> import numpy as np
    >>> from geoanom.detectors import GMMDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 3.0, 1.0]
    >>> [c] = component_ellipses(GMMDetector(n_components=1).fit(X), 0, 1)
    >>> round(c.width / c.height), round(abs(c.angle) / 10) * 10  # long axis 3x the short one, along the second
    (3, 90)
    """
    scale = detector.scale_[[i, j]]
    means = detector.center_[[i, j]] + detector.means_[:, [i, j]] * scale
    covariances = detector.covariances_[:, [i, j]][:, :, [i, j]] * np.outer(scale, scale)
    out = []
    for mean, covariance, weight in zip(means, covariances, detector.weights_):
        values, vectors = np.linalg.eigh(covariance)  # ascending: the last is the long axis
        angle = float(np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1])))
        width, height = (2 * sigmas * np.sqrt(np.clip(values[::-1], 0.0, None))).tolist()
        out.append(Component(mean, width, height, angle, float(weight)))
    return out


def centroids(detector: "Detector", i: int, j: int) -> np.ndarray:
    """A K-Means detector's centroids (k, 2) on features ``i`` and ``j``, in data units.

    Examples
    --------
    >>> import numpy as np
    >>> from geoanom.detectors import KMeansDetector
    >>> X = np.random.default_rng(0).normal(size=(300, 2)) + [10.0, -5.0]
    >>> np.round(centroids(KMeansDetector(random_state=0).fit(X), 0, 1).mean(axis=0)).tolist()
    [10.0, -5.0]
    """
    return detector.center_[[i, j]] + detector.means_[:, [i, j]] * detector.scale_[[i, j]]


def threshold_fields(ensemble: "Ensemble", base: np.ndarray, i: int, j: int, xs: np.ndarray,
                     ys: np.ndarray) -> dict[str, np.ndarray]:
    """Irregularity over a grid of features ``i`` (``xs``) and ``j`` (``ys``), the others at ``base``.

    Returns each family's irregularity (len(ys), len(xs)) and, as
    ``"ensemble"``, the m-th largest of them, m the majority: the ensemble
    flags an observation exactly when at least m families exceed 1, that
    is when this field exceeds 1, so its contour at 1 is the ensemble's
    decision boundary.

    Examples
    --------
    >>> import numpy as np
    >>> from geoanom.detectors import Ensemble
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> fields = threshold_fields(Ensemble(("gmm", "kmeans"), random_state=0).fit(X), np.zeros(2), 0, 1,
    ...                           np.linspace(-6, 6, 5), np.linspace(-6, 6, 5))
    >>> sorted(fields), fields["ensemble"].shape, bool(fields["ensemble"][2, 2] < 1 < fields["ensemble"][0, 0])
    (['ensemble', 'gmm', 'kmeans'], (5, 5), True)
    """
    gx, gy = np.meshgrid(xs, ys)
    rows = np.repeat(base[None, :], gx.size, axis=0)
    rows[:, i], rows[:, j] = gx.ravel(), gy.ravel()
    irregularity = ensemble.irregularity(rows)
    majority = len(ensemble.names) // 2 + 1  # strict majority (see detectors.fusion.majority)
    fields = {name: irregularity[k].reshape(gx.shape) for k, name in enumerate(ensemble.names)}
    fields["ensemble"] = np.sort(irregularity, axis=0)[-majority].reshape(gx.shape)
    return fields


def feature_scatter(model: "AnomalyModel", cube: "xr.Dataset", tile: str, *, x: str | None = None, y: str | None = None,
                    time: Any = None, ax: "Axes | None" = None, max_points: int = 20_000,
                    seed: int = 0, path: str | os.PathLike | None = None) -> "Figure":
    """A scatter of a tile's feature vectors with its fitted model over them.

    Points are the tile's observations (grey; red those the ensemble
    flags); over them the mixtures' components as ellipses of two standard
    deviations (gmm blue, dpmm purple; their line width grows with the
    component's weight), the K-Means centroids (green crosses), each
    family's threshold (its irregularity = 1; dashed, in its colour) and the
    ensemble's decision boundary (black, thick: where its majority's
    irregularity crosses 1). Contours are computed on a grid over the two
    features with every other feature at its median over the tile's
    observations, so they are a slice of the decision, exact only for
    points near those medians.

    Parameters
    ----------
    model : AnomalyModel
    cube : xarray.Dataset
        On the model's grid, with its variables (the features are those
        ``model.score(cube)`` uses).
    tile : str
        A tile of the model (a geohash of its precision).
    x, y : str, optional
        Feature names (see :func:`geoanom.features.feature_names`); by
        default the first two of the model's.
    time : slice or label, optional
        The observations' time range, as for ``cube.sel(time=...)``.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.
    max_points : int, default 20000
        At most this many points are drawn (a random sample, ``seed``);
        medians and flags use every observation.
    seed : int, default 0
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GeoanomError
        A tile the model does not have or without a fitted model, an
        unknown feature, the same feature twice, a model of one feature, or
        no observation in the time range.

    Examples
    --------
    >>> import geoanom as ga
    >>> cube = ga.sample_cube("north_america")
    >>> model = ga.fit(cube.sel(time=slice(None, "1959")), precision=2)  # doctest: +SKIP
    >>> fig = feature_scatter(model, cube, model.tiles[0], path="tile.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    ensemble = _tile_ensemble(model, tile)
    table = _observations(model, cube, tile, time)
    names = _feature_names(model)
    i, j = _axes_of(names, x, y)
    vectors = table[names].to_numpy(dtype=float)
    if ax is None:
        fig = Figure(figsize=(8, 7), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    shown = _sample(len(table), max_points, seed)
    flags = table["ensemble"].to_numpy(dtype=bool)
    for flagged, style in ((False, {"color": "0.55", "s": 6}), (True, {"color": "red", "s": 14})):
        pick = shown[flags[shown] == flagged]
        ax.scatter(vectors[pick, i], vectors[pick, j], alpha=0.6, linewidths=0, zorder=1, gid=f"points-{flagged}",
                   label=f"{'flagged by the ensemble' if flagged else 'observations'} ({int((flags == flagged).sum())})",
                   **style)
    _draw_model(ax, ensemble, i, j)
    xs, ys = _grid_axes(vectors[:, i]), _grid_axes(vectors[:, j])
    _draw_thresholds(ax, threshold_fields(ensemble, np.median(vectors, axis=0), i, j, xs, ys), xs, ys)
    ax.set(xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]), xlabel=names[i], ylabel=names[j])
    others = [name for k, name in enumerate(names) if k not in (i, j)]
    held = f"\n{', '.join(others)} held at the tile's median" if others else ""
    fit_title(ax, f"tile {tile}: {len(table)} observations, {int(flags.sum())} flagged by the ensemble{held}")
    ax.legend(loc="best", fontsize="small")
    return saved(fig, path)


def _feature_names(model: "AnomalyModel") -> list[str]:
    from ..features.vectors import feature_names
    from ..model.score import feature_sets

    return feature_names(model.variables, feature_sets(model))


def _tile_ensemble(model: "AnomalyModel", tile: str) -> "Ensemble":
    """The ensemble that scores ``tile``; raise for an unknown tile or one without a model."""
    if tile not in set(np.unique(np.asarray(model.labels.values)).tolist()):
        raise TileError(f"tile '{tile}' is not a tile of the model (precision {model.precision}); its tiles "
                        f"include {', '.join(model.tiles[:8])}.")
    ensemble = model.scoring_ensemble(tile)
    if ensemble is None:
        reason = model.skipped.get(tile, "no model was fitted")
        raise GeoanomError(f"tile '{tile}' has no fitted model to draw: {reason}.")
    return ensemble


def _observations(model: "AnomalyModel", cube: "xr.Dataset", tile: str, time: Any) -> pd.DataFrame:
    """The tile's observations with every feature, as scoring computes them, and the ensemble's flags."""
    from ..model.trajectory import feature_trajectory

    table = feature_trajectory(model, cube, tile=tile, time=time)
    table = table[table[_feature_names(model)].notna().all(axis=1)]
    if table.empty:
        raise GeoanomError(f"tile '{tile}' has no observation with every feature in the time range given.")
    return table.reset_index(drop=True)


def _axes_of(names: list[str], x: str | None, y: str | None) -> tuple[int, int]:
    """Positions of the two plotted features."""
    if len(names) < 2:
        raise GeoanomError(f"the model has one feature ({names[0]}); a scatter needs two (fit it with "
                           "features such as 'anomalies,neighbours').")
    x = x or next(n for n in names if n != y)
    chosen = [x, y or next(n for n in names if n != x)]
    for name in chosen:
        if name not in names:
            raise GeoanomError(f"the model has no feature '{name}'; its features: {', '.join(names)}.")
    if chosen[0] == chosen[1]:
        raise GeoanomError(f"x and y are the same feature '{chosen[0]}'; choose two of {', '.join(names)}.")
    return names.index(chosen[0]), names.index(chosen[1])


def _sample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Indices of the points drawn: all of them, or a sorted random sample of ``max_points``."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _grid_axes(values: np.ndarray) -> np.ndarray:
    """Grid points over the data's range and a margin beyond it (thresholds lie outside most data)."""
    low, high = float(values.min()), float(values.max())
    pad = max(MARGIN * (high - low), 1e-6 * max(abs(low), abs(high), 1.0), 0.5 * (high == low))
    return np.linspace(low - pad, high + pad, GRID_SIZE)


def _draw_model(ax: "Axes", ensemble: "Ensemble", i: int, j: int) -> None:
    """The mixtures' component ellipses and the K-Means centroids."""
    from matplotlib.patches import Ellipse

    for name, detector in ensemble.detectors_.items():
        colour = FAMILY_COLOURS.get(name, "black")
        axes = _family_axes(ensemble.family_columns(name), i, j)
        if axes is None:  # the family does not read one of the two features
            continue
        if name in MIXTURES:
            for k, part in enumerate(component_ellipses(detector, *axes)):
                ax.add_patch(Ellipse(part.centre, part.width, part.height, angle=part.angle, fill=False,
                                     edgecolor=colour, linewidth=0.8 + 2.5 * part.weight, zorder=3,
                                     gid=f"{name}-component-{k}",
                                     label=f"{name} components ({ELLIPSE_SIGMAS:g} sd)" if k == 0 else None))
        elif name == "kmeans":
            centres = centroids(detector, *axes)
            ax.plot(centres[:, 0], centres[:, 1], linestyle="none", marker="X", markersize=10, color=colour,
                    markeredgecolor="black", zorder=4, gid="kmeans-centroids", label="kmeans centroids")


def _family_axes(columns: np.ndarray | None, i: int, j: int) -> tuple[int, int] | None:
    """Features i and j as a family that reads ``columns`` numbers them; None if it reads only one or neither."""
    if columns is None:
        return i, j
    where = {int(column): k for k, column in enumerate(columns)}
    return (where[i], where[j]) if i in where and j in where else None


def _draw_thresholds(ax: "Axes", fields: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray) -> None:
    """Each family's irregularity = 1 (dashed) and the ensemble's decision boundary (black)."""
    from matplotlib.lines import Line2D

    handles = []
    for name, field in fields.items():
        if not np.nanmin(field) < 1.0 < np.nanmax(field):
            continue  # no threshold within the plotted range
        ensemble = name == "ensemble"
        colour = "black" if ensemble else FAMILY_COLOURS.get(name, "0.3")
        style = {"linewidths": 2.2 if ensemble else 1.0, "linestyles": "solid" if ensemble else "dashed"}
        contour = ax.contour(xs, ys, field, levels=[1.0], colors=[colour], zorder=5 if ensemble else 2, **style)
        contour.set_gid(f"threshold-{name}")
        label = "ensemble decision boundary" if ensemble else f"{name} threshold"
        handles.append(Line2D([], [], color=colour, linewidth=style["linewidths"],
                              linestyle=style["linestyles"], label=label))
    if handles:  # a legend of its own: the points' and components' legend is added after it
        ax.add_artist(ax.legend(handles=handles, loc="lower right", fontsize="small"))
