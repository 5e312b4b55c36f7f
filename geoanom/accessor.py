"""The ``.geoanom`` accessor on xarray objects: geoanom's entry points as methods of a cube or a result.

>>> import geoanom as ga
>>> cube = ga.sample_cube("north_america")
>>> model = cube.sel(time=slice(None, "1959")).geoanom.fit(detectors="gmm")
>>> result = cube.sel(time=slice("2090", None)).geoanom.score(model)
>>> figure = result.geoanom.plot()

Each method calls the public function of the same idea (`geoanom.fit`,
`AnomalyModel.score`, `geoanom.plot.irregularity_figure`, ...), so the
accessor adds no behaviour of its own: data not opened by `geoanom.open_cube`
get its names, checks and fill handling there (`geoanom.io.read.as_cube`). geoanom's heavy modules are imported
when a method is first called, not when the accessor is registered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .model import AnomalyModel


class GeoanomAccessor:
    """``obj.geoanom``: fit, score, tile, find regions in, and draw a cube or a result.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The cube (as from `geoanom.open_cube`) or a result of `AnomalyModel.score`.

    Examples
    --------
    >>> import geoanom as ga
    >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
    >>> cube.geoanom.tiles(precision=2).attrs["precision"]
    2
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def fit(self, **options: Any) -> "AnomalyModel":
        """Fit a model on this cube: `geoanom.fit` with the same options.

        Examples
        --------
        >>> import geoanom as ga
        >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
        >>> cube.geoanom.fit(precision=2, detectors="gmm").precision
        2
        """
        from .model import fit

        return fit(self._obj, **options)

    def score(self, model: "AnomalyModel", **options: Any) -> xr.Dataset:
        """Score this cube with `model`: ``model.score(cube, **options)``.

        Examples
        --------
        >>> import geoanom as ga
        >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
        >>> model = cube.geoanom.fit(precision=2, detectors="gmm")
        >>> "fused_irregularity" in cube.geoanom.score(model)
        True
        """
        return model.score(self._obj, **options)

    def tiles(self, precision: int | None = None) -> xr.DataArray:
        """The geohash tile of every cell (`geoanom.tile_labels`); of a result, its stored tiles as text.

        Examples
        --------
        >>> import geoanom as ga
        >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
        >>> str(cube.geoanom.tiles(precision=1).values.flat[0])
        '9'
        """
        if isinstance(self._obj, xr.Dataset) and "tile" in self._obj and precision is None:
            from .model.result import tile_names

            return tile_names(self._obj)
        from .tiling import tile_labels

        return tile_labels(self._obj, precision)

    def regions(self, variable: str | None = None, **options: Any) -> "pd.DataFrame":
        """Region features of each time step (`geoanom.region_features`).

        Examples
        --------
        >>> import geoanom as ga
        >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
        >>> len(cube.geoanom.regions("tas")) == cube.sizes["time"]
        True
        """
        from .features import region_features
        from .io.read import as_cube

        # as fit and score do: names, checks and fill handling of open_cube for data not opened by it
        return region_features(as_cube(self._obj, variable), variable=variable, **options)

    def plot(self, path: str | os.PathLike | None = None, time: int | str | None = None) -> "Figure":
        """Map of a result at one time step (by default the last with scores): irregularity beside the signed
        anomaly; also saved to `path` if given.

        Examples
        --------
        >>> import geoanom as ga
        >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
        >>> result = cube.geoanom.score(cube.geoanom.fit(precision=2, detectors="gmm"))
        >>> len(result.geoanom.plot().axes) >= 2
        True
        """
        from .plot import irregularity_figure

        return irregularity_figure(self._obj, time, path=path)

    def top_tiles(self, n: int = 10) -> "pd.DataFrame":
        """The `n` tiles of a result with the highest mean fused irregularity (`geoanom.plot.top_tiles`).

        Examples
        --------
        >>> import geoanom as ga
        >>> cube, _ = ga.testing.synthetic_cube(n_years=3)
        >>> result = cube.geoanom.score(cube.geoanom.fit(precision=2, detectors="gmm"))
        >>> len(result.geoanom.top_tiles(n=3))
        3
        """
        from .plot import top_tiles

        return top_tiles(self._obj, n)


xr.register_dataset_accessor("geoanom")(GeoanomAccessor)
xr.register_dataarray_accessor("geoanom")(GeoanomAccessor)
