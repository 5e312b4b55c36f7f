"""What a scientist would write without geoanom: a loop over geohash tiles with scikit-learn.

Both loops load the cube into memory with xarray, select each tile's cells
(stack + isel), fit on the tile's training values (one feature: the raw
value) and score every observation of the tile, then write the scores to Zarr.

* ``run_naive_gmm``: ``GaussianMixture(n_components=2, random_state=0)`` per
  tile, every tile.
* ``run_naive_four``: per tile, ``GaussianMixture(2)``, ``KMeans(3)``,
  ``BayesianGaussianMixture(6, dirichlet_process, 0.01)`` and
  ``IsolationForest(100)`` (geoanom's four families, with scikit-learn's
  defaults otherwise) on a subset of tiles spread over the grid; the loop's
  time is extrapolated to every tile from the subset's mean time per tile
  (load and write are measured on the whole cube).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

FOUR_FAMILY_SUBSET = 24  # tiles timed by the four-family loop


def _load(store: Path, precision: int):
    """The cube in memory, its values as (time, cell), each cell's tile, and the load time."""
    import xarray as xr

    from geoanom.tiling import tile_labels  # the same geohash tiles as geoanom's

    start = time.perf_counter()
    ds = xr.open_zarr(store, consolidated=True).load()
    load_s = time.perf_counter() - start
    stacked = ds["tas"].stack(cell=("lat", "lon"))
    cell_labels = tile_labels(ds, precision).stack(cell=("lat", "lon")).values
    return ds, stacked, cell_labels, load_s


def _write(stacked, arrays: dict[str, np.ndarray], out: Path) -> float:
    import xarray as xr

    start = time.perf_counter()
    variables = {name: xr.DataArray(values, coords=stacked.coords, dims=stacked.dims) for name, values in arrays.items()}
    result = xr.Dataset(variables).unstack("cell").transpose("time", "lat", "lon")
    result.to_zarr(out, mode="w", zarr_format=2, consolidated=True)
    return time.perf_counter() - start


def run_naive_gmm(store: Path, out: Path, precision: int) -> dict:
    """Every tile: GaussianMixture(2) on its raw training values, score_samples of all its observations."""
    from sklearn.mixture import GaussianMixture

    ds, stacked, cell_labels, load_s = _load(store, precision)
    n_train = stacked.sizes["time"] // 2
    scores = np.full(stacked.shape, np.nan, dtype=np.float32)
    fit_s = score_s = 0.0
    tiles = np.unique(cell_labels)
    for tile in tiles:
        start = time.perf_counter()
        cells = np.flatnonzero(cell_labels == tile)
        sub = stacked.isel(cell=cells)
        mixture = GaussianMixture(n_components=2, random_state=0).fit(
            sub.isel(time=slice(0, n_train)).values.reshape(-1, 1))
        middle = time.perf_counter()
        scores[:, cells] = mixture.score_samples(sub.values.reshape(-1, 1)).reshape(sub.shape)
        fit_s += middle - start
        score_s += time.perf_counter() - middle
    write_s = _write(stacked, {"log_likelihood": scores}, out)
    return {
        "observations": int(ds["tas"].size), "tiles": int(len(tiles)),
        "fit_seconds": load_s + fit_s, "score_write_seconds": score_s + write_s,
        "parts": {"load (open_zarr + load)": load_s, "fit loop": fit_s, "score loop": score_s, "write": write_s},
    }


def _four_families(train: np.ndarray, values: np.ndarray) -> tuple[list[np.ndarray], float, float]:
    """Fit the four scikit-learn models on one tile's training values and score all its values."""
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

    start = time.perf_counter()
    models = [
        GaussianMixture(n_components=2, random_state=0).fit(train),
        KMeans(n_clusters=3, n_init=1, random_state=0).fit(train),
        BayesianGaussianMixture(n_components=6, weight_concentration_prior_type="dirichlet_process",
                                weight_concentration_prior=0.01, random_state=0).fit(train),
        IsolationForest(n_estimators=100, random_state=0).fit(train),
    ]
    middle = time.perf_counter()
    scores = [models[0].score_samples(values), models[1].transform(values).min(axis=1),
              models[2].score_samples(values), models[3].score_samples(values)]
    return scores, middle - start, time.perf_counter() - middle


def run_naive_four(store: Path, out: Path, precision: int) -> dict:
    """The four families per tile on a subset of tiles, extrapolated to every tile."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    ds, stacked, cell_labels, load_s = _load(store, precision)
    n_train = stacked.sizes["time"] // 2
    tiles = np.unique(cell_labels)
    subset = tiles[np.linspace(0, len(tiles) - 1, min(FOUR_FAMILY_SUBSET, len(tiles))).astype(int)]
    names = ("gmm", "kmeans", "dpmm", "iforest")
    scores = {name: np.full(stacked.shape, np.nan, dtype=np.float32) for name in names}
    fit_s = score_s = 0.0
    for tile in subset:
        cells = np.flatnonzero(cell_labels == tile)
        sub = stacked.isel(cell=cells)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            parts, fit, score = _four_families(sub.isel(time=slice(0, n_train)).values.reshape(-1, 1),
                                               sub.values.reshape(-1, 1))
        for name, part in zip(names, parts):
            scores[name][:, cells] = part.reshape(sub.shape)
        fit_s, score_s = fit_s + fit, score_s + score
    scale = len(tiles) / len(subset)  # the extrapolation to every tile
    write_s = _write(stacked, scores, out)
    return {
        "observations": int(ds["tas"].size), "tiles": int(len(tiles)), "tiles_timed": int(len(subset)),
        "extrapolated": True,
        "fit_seconds": load_s + fit_s * scale, "score_write_seconds": score_s * scale + write_s,
        "parts": {"load (open_zarr + load)": load_s, f"fit loop x {scale:.1f} (extrapolated)": fit_s * scale,
                  f"score loop x {scale:.1f} (extrapolated)": score_s * scale, "write": write_s},
    }
