"""Fill values a file does not declare: found in a few time steps, treated as missing lazily, said once.

Real files often hold a fill value that is not declared as ``_FillValue`` or
``missing_value``, so xarray does not mask it: 1e20 (CMIP), netCDF's default
float fill 9.969209968386869e36 (where a variable was never written), -9999,
-999, -32768, ±1e30, ±3.4028235e38. Left in, land at 1e20 wrecks the
climatology and every score without a word.

The rule (:func:`find_fill`). A value is taken for fill only when it is

- exactly one of :data:`CONVENTIONS` (compared in the variable's dtype, and
  as a float32 fill widened to float64), never a range or a magnitude; or,
  in a packed integer variable (``scale_factor``/``add_offset``) declaring
  no fill, one of its integer type's sentinels (-32768, -32767 and 32767
  for int16; 255 for uint8) unpacked exactly as its values were
  (:mod:`geoanom.io.packed`): land at -32768 in OSTIA-like packing (0.01 K
  from 273.15 K) reads as -54.53 K, which no convention matches;
- repeated: at least :data:`MIN_REPEATS` values of the steps looked at;
- far outside the other values: its gap to their range is wider than that
  range itself. A real -999 m depth among -1000..0 lies inside the range,
  -9999 below depths of -5000..0 is nearer than their range is wide, a 1e15
  column density is not a convention: none of them is taken. Land at 1e20
  against 270..305 K is, and so is -999 below rain of 0..30 mm. Dry cells
  packed at -32768 (0 mm) are rain's least value, not fill; and packing
  over the type's whole range (ERA5's) puts its fill next to the values,
  where no rule tells it from them (such files declare it).

Only a few time steps are read (the first, the middle and the last): a
land or never-written mask is mostly the same at every step, so three
steps find it without reading the cube. A fill in other steps only (a
month never written) is missed by them; so every convention the steps show
to be far outside the variable's values, but which they do not hold, is
also treated as missing wherever it is met later, with a warning from the
task that meets it (on a distributed cluster, in the worker's log). Fit and
score say nothing of 1e20 themselves: without this, 1e20 in 100 cells of
one training year of the A1B sample silently changed 9,186 flags of other
steps. The fill found is kept in the variable's ``geoanom_fill_value``; a
model fitted on it records it (:func:`undeclared_fills`), and a result's
anomalies carry the scored file's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

import dask
import numpy as np
import pandas as pd
import xarray as xr

from geoanom.errors import CorruptDataError, GeoanomWarning

from .packed import PackedFill

# The undeclared fills met in real files: CMIP's, netCDF-C's default for float and double (NC_FILL_FLOAT/DOUBLE),
# the usual sentinels, and float32's largest value.
CONVENTIONS = (1e20, 9.969209968386869e36, -9999.0, -999.0, -32768.0, -32767.0, 1e30, -1e30,
               3.4028235e38, -3.4028235e38)
MIN_REPEATS = 3  # an exact repeat, not one value that happens to equal a convention
FILL_ATTR = "geoanom_fill_value"  # variable attrs: the undeclared fill open_cube treated as missing


class FillFinding(NamedTuple):
    """What :func:`find_fill` saw in one variable's sampled values.

    ``found``: fill values held by the sample (as the variable's dtype holds
    them), with their counts; ``unseen``: conventions far outside the values
    but not in the sample (treated as missing if met later); ``low``/``high``:
    the range of the other values (NaN if none); ``size``: how many finite
    values the sample holds; ``conventions``: each value found or unseen to
    the convention it stands for (1e20 for float32's 1.0000000200408773e20;
    the packed integer, -32768, for a packed sentinel); ``packed``: the
    packed sentinels among them.
    """

    found: dict[float, int]
    unseen: tuple[float, ...]
    low: float
    high: float
    size: int
    conventions: dict[float, float]
    packed: dict[float, PackedFill]

    def label(self, value: float) -> str:
        """How messages name a value found or unseen: ``1e+20``, or ``the packed int16 -32768 (-54.53 unpacked)``."""
        return self.packed[value].label(value) if value in self.packed else f"{self.conventions[value]:g}"


def undeclared_fills(cube: xr.Dataset | xr.DataArray, variables: Sequence[Hashable]) -> dict[str, float]:
    """The undeclared fill :func:`geoanom.open_cube` treated as missing in each of `variables` that held one.

    A model records them at fit, and a result's anomalies carry them, so a
    reader knows which values of the file were taken for missing.

    Examples
    --------
    >>> cube = xr.Dataset({"tas": ("x", [280.0], {FILL_ATTR: 1e20}), "pr": ("x", [0.0])})
    >>> undeclared_fills(cube, ["tas", "pr"])
    {'tas': 1e+20}
    """
    held = {cube.name: cube} if isinstance(cube, xr.DataArray) else cube.data_vars
    return {str(name): float(held[name].attrs[FILL_ATTR]) for name in variables
            if name in held and FILL_ATTR in held[name].attrs}


def find_fill(sample: np.ndarray, packed: Mapping[float, PackedFill] | None = None) -> FillFinding:
    """The conventional fill values `sample` holds far outside its other values (the rule of the module).

    Parameters
    ----------
    sample : numpy.ndarray
        A few time steps of one float variable, NaN where missing.
    packed : mapping, optional
        For a packed integer variable declaring no fill, its type's sentinels
        unpacked (:func:`geoanom.io.packed.packed_sentinels`), also candidates.

    Returns
    -------
    FillFinding

    Examples
    --------
    >>> land = np.r_[np.full(50, 1e20), np.linspace(271.0, 305.0, 50)].astype("float32")
    >>> finding = find_fill(land)
    >>> {finding.conventions[value]: count for value, count in finding.found.items()}
    {1e+20: 50}
    >>> depth = np.r_[np.full(50, -999.0), np.linspace(-1000.0, 0.0, 50)]
    >>> find_fill(depth).found  # a real depth among others: not fill
    {}
    """
    values = sample[np.isfinite(sample)]
    packed = {np.asarray(value, values.dtype).item(): fill for value, fill in (packed or {}).items()}
    candidates = {value: fill.raw for value, fill in packed.items()} | _candidates(values.dtype, packed)
    is_candidate = np.isin(values, list(candidates))
    rest = values[~is_candidate]
    low, high = (float(rest.min()), float(rest.max())) if rest.size else (math.nan, math.nan)
    found, unseen = {}, []
    for value in candidates:
        gap = max(low - value, value - high)
        if rest.size and not gap > high - low:  # inside or near the other values: may be real
            continue
        count = int(np.count_nonzero(values[is_candidate] == value))
        if count >= MIN_REPEATS:
            found[value] = count
        elif count == 0 and rest.size:
            unseen.append(value)
    kept = {value: packed[value] for value in (*found, *unseen) if value in packed}
    return FillFinding(found, tuple(unseen), low, high, int(values.size), candidates, kept)


def mask_undeclared_fill(ds: xr.Dataset, sources: Sequence[tuple[str, pd.Index] | tuple[str, pd.Index, tuple]],
                         packed: Mapping[Hashable, Mapping[float, PackedFill]] | None = None) -> xr.Dataset:
    """Treat undeclared fill values as missing, lazily, warning once per variable (see the module's rule).

    Reads the first, middle and last time steps of every variable once.
    The values found are recorded in each variable's ``attrs["geoanom_fill_value"]``.

    Parameters
    ----------
    ds : xarray.Dataset
        Dask-backed float variables with dims ``(time, ...)``, as `open_cube` builds them.
    sources : sequence of (str, pandas.Index) or (str, pandas.Index, tuple)
        Each file with its times (and the variables it holds, when files
        hold different ones), to name the files a fill was found in (for
        data given in memory, "the dataset" and its times).
    packed : mapping, optional
        The packed integer variables declaring no fill, each with its
        sentinels unpacked (of every file: files may pack differently).

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> cube = mask_undeclared_fill(cube, [("tas.nc", cube.indexes["time"])])  # doctest: +SKIP
    """
    if not ds.sizes["time"]:
        return ds
    steps = sorted({0, ds.sizes["time"] // 2, ds.sizes["time"] - 1})
    names = list(ds.data_vars)
    try:
        samples = dask.compute(*(ds[name].isel(time=steps).data for name in names))
    except CorruptDataError:  # the damaged chunk is named when the data are computed, as without this check
        return ds
    out = ds.copy()
    for name, sample in zip(names, samples):
        finding = find_fill(sample, (packed or {}).get(name))
        if not (finding.found or finding.unseen):
            continue
        held = [(path, index) for path, index, *holding in sources if not holding or name in holding[0]]
        # The step each file starts at, so that a task meeting an unseen fill names its file.
        first_steps = tuple(sorted((int(ds.indexes["time"].get_indexer(index).min()), path) for path, index in held))
        if finding.found:
            where = ", ".join(map(_shown, _files_holding(sample, finding, steps, ds, held)))
            warnings.warn(_message(name, where, finding, len(steps)), GeoanomWarning, stacklevel=3)
        var = ds[name]
        unseen = tuple((value, finding.label(value)) for value in finding.unseen)
        data = var.data.map_blocks(_mask_block, tuple(finding.found), unseen, name, first_steps,
                                   meta=np.array((), dtype=var.dtype))
        out[name] = var.copy(data=data)
        out[name].encoding = dict(var.encoding)
        if finding.found:  # the conventions, as the file's documentation would name them
            values = list(dict.fromkeys(finding.conventions[value] for value in finding.found))  # files may pack apart
            out[name].attrs[FILL_ATTR] = values[0] if len(values) == 1 else values
    return out


def _candidates(dtype: np.dtype, packed: Mapping[float, PackedFill]) -> dict[float, float]:
    """The conventions as `dtype` holds them, and as float32 fills widened to `dtype`: each to its convention.

    A value a packed sentinel unpacks to stays the sentinel's (the more telling name).
    """
    held: dict[float, float] = {}
    with np.errstate(over="ignore"):
        for kind in (dtype, np.float32):
            for value, convention in zip(np.asarray(CONVENTIONS, dtype=kind).astype(dtype).tolist(), CONVENTIONS):
                if math.isfinite(value) and value not in packed:
                    held.setdefault(value, convention)
    return held


def _files_holding(sample: np.ndarray, finding: FillFinding, steps: list[int], ds: xr.Dataset, sources) -> list[str]:
    """The files whose sampled steps hold a fill found."""
    holding = np.isin(sample, list(finding.found)).reshape(len(steps), -1).any(axis=1)
    times = [ds.indexes["time"][step] for step, hit in zip(steps, holding) if hit]
    return list(dict.fromkeys(path for time in times for path, index in sources if time in index))


def _shown(source: str) -> str:
    """A file quoted; data given in memory ("the dataset", see :func:`geoanom.io.read.as_cube`) as it is."""
    return source if source.startswith("the ") else f"'{source}'"


def _message(name: Hashable, where: str, finding: FillFinding, steps: int) -> str:
    shares = " and ".join(f"{finding.label(value)} in {100 * count / finding.size:.3g}%"
                          for value, count in finding.found.items())
    others = f"{finding.low:g} to {finding.high:g}" if math.isfinite(finding.low) else "none"
    return (f"{name} in {where} holds {shares} of the values of the {steps} time steps looked at, far outside "
            f"the others ({others}), not declared as _FillValue: it is treated as missing (declare _FillValue "
            "in the file to silence this).")


def _mask_block(block: np.ndarray, found: tuple[float, ...], unseen: tuple[tuple[float, str], ...], name: Hashable,
                first_steps: tuple[tuple[int, str], ...], block_info: dict | None = None) -> np.ndarray:
    # Only values between the block's least and greatest can be in it: most blocks hold none and are passed on
    # without a copy, for two fast reductions (NaN-ignoring; 4 times faster than the comparisons others need).
    if not block.size:
        return block
    low, high = np.fmin.reduce(block, axis=None), np.fmax.reduce(block, axis=None)
    found = tuple(value for value in found if low <= value <= high)
    labels = {value: label for value, label in unseen if low <= value <= high}
    if not (found or labels):
        return block
    hit = np.isin(block, found)
    if labels and (met := np.isin(block, list(labels))).any():
        start = block_info[0]["array-location"][0][0] if block_info else 0
        path = next((p for first, p in reversed(first_steps) if first <= start), first_steps[0][1])
        for value in np.unique(block[met]).tolist():
            warnings.warn(f"{name} in {_shown(path)} holds {labels[value]}, not declared as _FillValue, in time steps "
                          "open_cube did not look at (it looks at the first, middle and last), far outside the "
                          "values of those: it is treated as missing (declare _FillValue in the file to silence "
                          "this).", GeoanomWarning, stacklevel=2)
        hit |= met
    return np.where(hit, np.array(np.nan, block.dtype), block) if hit.any() else block
