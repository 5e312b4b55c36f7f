"""Anomalous regions of each time step, found with scipy.ndimage, exact across chunks.

Each time step of a field is an image. Its standardised anomaly is smoothed
(a Gaussian, then a median filter: the reference paper's stand-in for
anisotropic diffusion), thresholded, cleaned by a binary opening and closing,
and cut into connected regions. Cells that are NaN (land, gaps) are missing
throughout: they enter no filter and join no region.

Chunked cubes give exactly the labels of the same cube in memory. The
filters and morphology run in one :func:`dask.array.map_overlap` whose halo
is the sum of every step's reach, so each kept cell saw all the input it
depends on; regions are stitched across chunk edges by
:mod:`geoanom.features.stitching` (across the antimeridian too, on a
global grid) and numbered in raster order per time step, as
:func:`scipy.ndimage.label` numbers them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage

from ..errors import GeoanomError, TrainingPeriodError
from ..grid import spatial_dims, wraps_in_longitude
from ..io.read import as_cube
from .climatology import Climatology
from .filters import gaussian_radius, nan_gaussian, nan_median
from .stitching import label_regions

TAILS = ("both", "upper", "lower")


@dataclass(frozen=True)
class RegionParams:
    """How regions are found in each time step.

    Parameters
    ----------
    sigma : float, default 1.0
        Standard deviation of the Gaussian smoothing, in grid cells (0: none).
    median_size : int, default 3
        Width of the median filter's square window, in cells (1: none).
    threshold : float, default 1.5
        A cell is anomalous where its smoothed standardised anomaly is beyond
        this many standard deviations. Smoothing shrinks cell noise, so a
        smaller value than for single cells is right.
    tail : {"both", "upper", "lower"}, default "both"
        Which side of the threshold: |z| > t, z > t or z < -t.
    structure : int, default 1
        Connectivity. 1: cells touching by an edge are connected (scipy's
        default); 2: by a corner too. The same structuring element cleans
        the mask.
    cleaning : int, default 1
        Iterations of the binary opening (removes specks thinner than the
        element) and of the closing (fills pinholes); 0 skips both.
    """

    sigma: float = 1.0
    median_size: int = 3
    threshold: float = 1.5
    tail: str = "both"
    structure: int = 1
    cleaning: int = 1

    def __post_init__(self) -> None:
        if self.sigma < 0 or self.threshold < 0 or self.cleaning < 0:
            raise GeoanomError("region parameters sigma, threshold and cleaning must not be negative.")
        if int(self.median_size) < 1 or int(self.median_size) % 2 == 0:
            raise GeoanomError(f"median_size must be a positive odd number of cells, got {self.median_size}.")
        if self.tail not in TAILS:
            raise GeoanomError(f"tail must be one of {', '.join(TAILS)}, got '{self.tail}'.")
        if self.structure not in (1, 2):
            raise GeoanomError(f"structure must be 1 (edges) or 2 (edges and corners), got {self.structure}.")

    @property
    def element(self) -> np.ndarray:
        """The 3-D structuring element: the 2-D one in the middle time plane, none across time."""
        element = np.zeros((3, 3, 3), dtype=bool)
        element[1] = ndimage.generate_binary_structure(2, self.structure)
        return element

    @property
    def halo(self) -> int:
        """Cells of context each chunk needs from its neighbours for an exact result."""
        return gaussian_radius(self.sigma) + int(self.median_size) // 2 + 4 * int(self.cleaning)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready parameters, also the keywords of :func:`region_features`."""
        return asdict(self)


def connectivity_of(structure: int | np.ndarray) -> int:
    """1 or 2 from a connectivity or its 3 x 3 structuring element."""
    if np.ndim(structure) == 0:
        return int(structure)
    element = np.asarray(structure, dtype=bool)
    for connectivity in (1, 2):
        if np.array_equal(element, ndimage.generate_binary_structure(2, connectivity)):
            return connectivity
    raise GeoanomError("structure must be 1, 2 or scipy.ndimage.generate_binary_structure(2, 1 or 2).")


def as_field(data: xr.DataArray | xr.Dataset, variable: str | None = None) -> xr.DataArray:
    """One variable as a dask-backed (time, y, x) DataArray, float64, after open_cube's names, checks and fills.

    Data not from :func:`geoanom.open_cube` go through its normalisation
    (:func:`geoanom.io.read.as_cube`), as for a fit.
    """
    data = as_cube(data, variable)
    if isinstance(data, xr.Dataset):
        names = [name for name, var in data.data_vars.items() if var.ndim == 3] if variable is None else [variable]
        if len(names) != 1 or names[0] not in data:
            raise GeoanomError("pass one variable: region features are computed per field, "
                               f"and the data set has {', '.join(map(str, data.data_vars)) or 'none'}.")
        data = data[names[0]]
    if "time" not in data.dims:
        raise GeoanomError(f"the field '{data.name}' has no time dimension.")
    field = data.transpose("time", *spatial_dims(data)).astype(np.float64)
    return field if isinstance(field.data, da.Array) else field.chunk()


def standardised_anomaly(field: xr.DataArray, baseline: Any = None, trend: str | None = None) -> xr.DataArray:
    """Each cell's departure from its expected value, in units of its own spread.

    The expected value and spread are those of the one climatology
    (:class:`~geoanom.features.climatology.Climatology`), fitted robustly on
    the baseline, so an event inside the baseline moves neither. Steps inside
    the baseline get leave-one-out anomalies. The result is the same,
    bit for bit, for any chunking.

    Parameters
    ----------
    field : DataArray (time, y, x)
    baseline : slice, (start, stop) or DataArray, optional
        The period (or a separate field) the climatology comes from; the
        field's own record when None.
    trend : {None, "linear"}
        See :meth:`Climatology.fit`.

    Examples
    --------
    >>> z = standardised_anomaly(as_field(cube["sst"]), baseline=("2006", "2008"))  # doctest: +SKIP
    """
    reference, in_baseline = _baseline_field(field, baseline)
    name = str(field.name or "field")
    climatology = Climatology.fit(reference.expand_dims(variable=[name]), trend=trend,
                                  source=_source_of(field))
    anomaly = climatology.standardise(field.expand_dims(variable=[name]), training=in_baseline)
    return anomaly.isel(variable=0, drop=True).rename(f"{field.name}_anomaly" if field.name else "anomaly")


def _source_of(field: xr.DataArray) -> str:
    source = field.attrs.get("geoanom_source") or field.encoding.get("source")
    return f"'{source}'" if source else "the field"


def _baseline_field(field: xr.DataArray, baseline: Any) -> tuple[xr.DataArray, Any]:
    """The baseline field, and which steps of ``field`` are part of it (True, False or a mask)."""
    if baseline is None:
        return field, True
    if isinstance(baseline, xr.DataArray):
        return as_field(baseline), False
    period = baseline if isinstance(baseline, slice) else slice(*baseline)
    reference = field.sel(time=period)
    if reference.sizes["time"] < 2:
        raise TrainingPeriodError(f"the baseline period selects fewer than two time steps of '{field.name}'.")
    return reference, np.isin(field["time"].values, reference["time"].values)


def denoise(anomaly: da.Array, params: RegionParams, wrap: bool) -> da.Array:
    """Smoothed standardised anomaly (time, y, x): Gaussian then median, NaN-aware."""
    return _overlap(_denoise_block, anomaly, params, wrap, gaussian_radius(params.sigma) + params.median_size // 2)


def region_mask(anomaly: da.Array, params: RegionParams, wrap: bool) -> da.Array:
    """Boolean (time, y, x): the cleaned cells of anomalous regions."""
    return _overlap(_mask_block, anomaly, params, wrap, params.halo, dtype=bool)


def _overlap(function, anomaly: da.Array, params: RegionParams, wrap: bool, halo: int, dtype=np.float64) -> da.Array:
    # A halo wider than the grid reaches nothing more (a periodic axis that
    # narrow would wrap more than once): dask refuses it, so clip it.
    depth = {0: 0, **{axis: min(halo, anomaly.shape[axis]) for axis in (1, 2)}}
    boundary = {0: "none", 1: "none", 2: "periodic" if wrap else "none"}
    # map_overlap needs every chunk at least as wide as the halo
    minimum = {axis: max(depth[axis], 1) for axis in (1, 2)}
    if any(min(anomaly.chunks[axis]) < minimum[axis] for axis in (1, 2)) and halo:
        anomaly = anomaly.rechunk({axis: max(minimum[axis], max(anomaly.chunks[axis])) for axis in (1, 2)})
    return anomaly.map_overlap(function, depth=depth, boundary=boundary, dtype=dtype, params=params,
                               meta=np.empty((0, 0, 0), dtype=dtype))


def _denoise_block(block: np.ndarray, params: RegionParams) -> np.ndarray:
    return nan_median(nan_gaussian(block, params.sigma), params.median_size)


def _mask_block(block: np.ndarray, params: RegionParams) -> np.ndarray:
    smooth = _denoise_block(block, params)
    with np.errstate(invalid="ignore"):
        if params.tail == "upper":
            mask = smooth > params.threshold
        elif params.tail == "lower":
            mask = smooth < -params.threshold
        else:
            mask = np.abs(smooth) > params.threshold
    element, steps = params.element, int(params.cleaning)
    if steps:
        mask = ndimage.binary_opening(mask, element, iterations=steps)
        # Dilate then erode with the outside counted as region, so the closing
        # never eats cells along the domain's edge.
        mask = ndimage.binary_erosion(ndimage.binary_dilation(mask, element, iterations=steps), element,
                                      iterations=steps, border_value=1)
    return mask & np.isfinite(block)


def region_labels(
    data: xr.DataArray | xr.Dataset,
    *,
    variable: str | None = None,
    sigma: float = RegionParams.sigma,
    median_size: int = RegionParams.median_size,
    threshold: float = RegionParams.threshold,
    tail: str = RegionParams.tail,
    structure: int | np.ndarray = RegionParams.structure,
    cleaning: int = RegionParams.cleaning,
    baseline: Any = None,
    wrap: bool | None = None,
) -> xr.DataArray:
    """Label the anomalous regions of every time step, lazily.

    Parameters
    ----------
    data : DataArray (time, lat, lon) or Dataset
        The field; a Dataset needs ``variable`` unless it has just one.
    variable : str, optional
    sigma, median_size, threshold, tail, cleaning
        See :class:`RegionParams`.
    structure : {1, 2} or 3 x 3 array of bool, default 1
        Connectivity: 1 joins cells sharing an edge, 2 also a corner (or the
        equivalent :func:`scipy.ndimage.generate_binary_structure`).
    baseline : slice, (start, stop) or DataArray, optional
        Period whose per-cell climatology standardises the field; by default
        the field's own record.
    wrap : bool, optional
        Join regions across the antimeridian; by default when the longitude
        axis closes the globe.

    Returns
    -------
    DataArray of int32 (time, lat, lon)
        0 outside regions; regions numbered 1, 2, ... in each time step in
        raster order, as :func:`scipy.ndimage.label` numbers them, for any
        chunking of ``data``.

    Examples
    --------
    >>> labels = geoanom.features.region_labels(cube["sst"], threshold=2.0)  # doctest: +SKIP
    """
    params = RegionParams(sigma, median_size, threshold, tail, connectivity_of(structure), cleaning)
    field = as_field(data, variable)
    wrap = wraps_in_longitude(field) if wrap is None else bool(wrap)
    anomaly = standardised_anomaly(field, baseline)
    labels = label_regions(region_mask(anomaly.data, params, wrap), params.structure, wrap)
    return xr.DataArray(
        labels, dims=field.dims, coords=field.coords, name="region",
        attrs={"long_name": f"anomalous region of {field.name or 'the field'}", "units": "1",
               "flag_meaning": "0 is no region", **{f"geoanom_{k}": str(v) for k, v in params.to_dict().items()}},
    )
