"""``geoanom info``: a cube described as geoanom opens it, or a result or model geoanom wrote."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..formatting import calendar_of, iso_date
from ..model.record import level_text

if TYPE_CHECKING:
    import numpy as np

SKIPPED_SHOWN = 10  # skipped tiles listed by name; the rest counted
# Time steps read, spread over the record, to find the cells holding data: a land
# mask shows in any of them, and info reads a few steps, not a whole long record.
SAMPLED_STEPS = 12


def describe(inputs: Sequence[str]) -> None:
    """Print what the input is: a cube (source, dims, time, grid, variables, tile sizes), a result or a model.

    A result (written by ``geoanom detect`` / ``model.score``) is described
    by its variables, per-detector ones included, and the model that scored
    it; a saved model (``.npz`` or ``.zarr`` from ``--model-out`` /
    ``model.save``) by its variables, detectors, tiles, training period and
    precision.

    Examples
    --------
    >>> describe(["tas.nc"])  # doctest: +SKIP
    source:     tas.nc
    dims:       {'time': 144, 'lat': 12, 'lon': 16}
    time:       2000-01-01 to 2011-12-01 (144 steps, calendar gregorian)
    ...
    """
    kind = kind_of(inputs)
    if kind == "model":
        describe_model(inputs[0])
    elif kind == "federated":
        describe_federated(inputs[0])
    elif kind == "result":
        describe_result(inputs[0])
    else:
        describe_cube(inputs)


def kind_of(inputs: Sequence[str]) -> str:
    """``model``, ``federated``, ``result`` or ``cube``: what one local input holds, read from its metadata only.

    Examples
    --------
    >>> kind_of(["tas_*.nc"])
    'cube'
    """
    import numpy as np
    import xarray as xr

    from ..model.store import JSON_KEY

    path = Path(inputs[0]) if len(inputs) == 1 else None
    if path is None or not path.exists():
        return "cube"
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as arrays:
                names = set(arrays.files)
        except (OSError, ValueError):
            return "model"  # load_model refuses it in one sentence
        return "federated" if {"meta", "parameters"} <= names and JSON_KEY not in names else "model"
    try:
        opened = xr.open_zarr(path) if path.is_dir() else xr.open_dataset(path, chunks={})
    except Exception:  # noqa: BLE001 -- anything unreadable here is open_cube's to refuse, in its words
        return "cube"
    with opened:
        if JSON_KEY in opened.attrs:
            return "model"
        return "result" if "fused_irregularity" in opened.data_vars and "tile" in opened.data_vars else "cube"


def describe_cube(inputs: Sequence[str]) -> None:
    """Print a cube's source, dims, time span and calendar, grid, variables and tile sizes."""
    from ..io.fill_values import FILL_ATTR

    cube, levels = open_described(inputs)
    print(f"source:     {cube.attrs.get('geoanom_source')}")
    print(f"dims:       {dict(cube.sizes)}")
    print(f"time:       {_time_span(cube['time'])}")
    print(f"grid:       {grid_text(cube)}")
    for name, var in cube.data_vars.items():
        chunks = "x".join(str(c[0]) for c in var.chunks) if var.chunks else "in memory"
        axis = levels.get(name)
        shown = f"; on levels {axis}, shown at the first (choose one with --level VALUE)" if axis else ""
        units = var.attrs.get("units")
        fill = var.attrs.get(FILL_ATTR)
        taken = f"; {fill:g}, not declared as a fill value, taken for missing" if fill is not None else ""
        print(f"variable:   {name} {var.dims} {var.dtype}, chunks {chunks}, "
              f"{f'units {units}' if units not in (None, '') else 'no units given'}" + taken + shown)
    for name, axis in levels.items():
        if axis is not None and name not in cube.data_vars:
            print(f"variable:   {name} on levels {axis} (choose one with --level VALUE)")
    for line in tile_lines(cube):
        print(line)


def tile_lines(cube) -> list[str]:
    """The precision ``fit`` chooses and its neighbours' tiles, each counted in cells with data per tile.

    One count for every line, the one a tile's model sees: cells holding a
    value (:func:`cells_with_data`), averaged over the tiles that hold any.
    ``choose_precision`` chooses from the tile's size on the grid, land and
    the grid's edges included; when its tiles hold fewer observations than
    the target, the line says so and names a coarser precision that holds them.

    Examples
    --------
    >>> tile_lines(ga.sample_cube("sst"))[1]  # doctest: +SKIP
    '  precision 1: 16 tiles, 16 with data, 357.6 cells with data per tile'
    """
    from .. import geohash
    from ..tiling import TARGET_TILE_OBSERVATIONS, choose_precision, tile_fill, tile_labels

    chosen, _ = choose_precision(cube)
    precisions = range(1, min(chosen + 2, geohash.MAX_PRECISION) + 1)
    labels = {p: tile_labels(cube, p) for p in precisions}
    has_data = cells_with_data(cube, labels[chosen])
    fill = {p: tile_fill(labels[p], has_data) for p in precisions}
    steps = int(cube.sizes.get("time", 1))
    per_tile = fill[chosen][2]
    tile_lat, tile_lon = geohash.cell_size(chosen)
    head = (f"tiles:      chosen precision {chosen} ({tile_lat:g} x {tile_lon:g} degree tiles): {per_tile:.1f} cells "
            f"with data per tile x {steps} time steps = {per_tile * steps:.0f} observations "
            f"(target {TARGET_TILE_OBSERVATIONS})")
    if per_tile * steps < TARGET_TILE_OBSERVATIONS:
        enough = [p for p in precisions if p < chosen and fill[p][2] * steps >= TARGET_TILE_OBSERVATIONS]
        head += ("; fewer, as land or the grid's edges leave tiles part empty"
                 + (f": precision {enough[-1]}'s tiles hold enough (--precision {enough[-1]})" if enough else ""))
    return [head] + [f"  precision {p}: {n} tiles, {filled} with data, {cells:.1f} cells with data per tile"
                     for p, (n, filled, cells) in fill.items()]


def cells_with_data(cube, labels) -> np.ndarray:
    """Each cell of ``labels``'s grid: whether any variable holds a value in one of ``SAMPLED_STEPS`` steps.

    The steps are spread evenly over the record (all of a short one).

    Examples
    --------
    >>> cells_with_data(cube, ga.tile_labels(cube, 2)).sum()  # doctest: +SKIP
    5721
    """
    import numpy as np

    steps = int(cube.sizes.get("time", 1))
    picked = np.unique(np.linspace(0, steps - 1, min(steps, SAMPLED_STEPS)).round().astype(int))
    has_data = np.zeros(labels.shape, dtype=bool)
    for var in cube.data_vars.values():
        if not set(labels.dims) <= set(var.dims):
            continue
        sample = var.isel(time=picked) if "time" in var.dims else var
        others = [dim for dim in sample.dims if dim not in labels.dims]
        has_data |= sample.notnull().any(others).transpose(*labels.dims).values
    return has_data


def describe_result(path: str) -> None:
    """Print a result's dims, time, grid, what scored it, and each variable (per-detector ones say so)."""
    from .queries import open_result

    with open_result(path) as result:
        fused = result["fused_irregularity"].attrs
        print(f"source:     {path}: a geoanom result ({result.attrs.get('title', 'anomaly scores')}, "
              f"written by {result.attrs.get('geoanom_written_by', 'geoanom')})")
        print(f"dims:       {dict(result.sizes)}")
        print(f"time:       {_time_span(result['time'])}")
        print(f"grid:       {grid_text(result)}")
        detectors = [str(d) for d in result["detector"].values] if "detector" in result.coords else []
        tiles = len(str(result["tile"].attrs.get("flag_meanings", "")).split()) or "?"
        print(f"scored:     {_scored_variables(result, fused.get('geoanom_variables'))} by "
              f"{', '.join(detectors) or 'the ensemble'}, "
              f"{tiles} tiles at precision {fused.get('geoanom_precision', '?')}, model trained "
              f"{_period(fused.get('geoanom_training_period'))}")
        for name, var in result.data_vars.items():
            each = ", one per detector" if "detector" in var.dims else ""
            meaning = var.attrs.get("long_name", "")
            print(f"variable:   {name} {var.dims} {var.dtype}{each}{f': {meaning}' if meaning else ''}")
        print(f"next:       geoanom events {path} --out events.csv (the event catalogue)")


def describe_model(path: str) -> None:
    """Print a saved model's variables, training period, detectors, features, grid and tiles (skipped: why)."""
    from .. import load_model

    model = load_model(path)
    attrs = model.attrs
    print(f"source:     {path}: a geoanom model (fitted on {attrs.get('source') or 'an unnamed cube'})")
    units = attrs.get("units")  # absent from models saved before units were recorded
    print(f"variables:  {', '.join(_in_units(name, units) for name in model.variables)}")
    for name, fill in (attrs.get("undeclared_fills") or {}).items():
        print(f"  {name}: {fill:g}, not declared as a fill value, was taken for missing in the training files")
    if attrs.get("level"):  # scoring data at another level is refused
        print(f"level:      {level_text(attrs['level'])}")
    steps = f"{attrs['training_time_steps']} steps, " if attrs.get("training_time_steps") else ""
    print(f"training:   {iso_date(attrs.get('training_start', '?'))} to {iso_date(attrs.get('training_end', '?'))} "
          f"({steps}calendar {attrs.get('calendar', '?')})")
    print(f"detectors:  {', '.join(model.detectors)}")
    print(f"features:   {', '.join(attrs.get('feature_names') or attrs.get('features') or ['?'])}")
    print(f"expected:   {expected_text(model)}")
    print(f"grid:       {grid_text(model.labels)}")
    print(f"tiles:      precision {model.precision}: {len(model.ensembles)} fitted, {len(model.skipped)} skipped"
          + (f" (a tile needs {attrs['min_observations']} valid observations)" if model.skipped
             and attrs.get("min_observations") else ""))
    for tile in sorted(model.skipped)[:SKIPPED_SHOWN]:
        print(f"  skipped {tile}: {model.skipped[tile]}")
    if len(model.skipped) > SKIPPED_SHOWN:
        print(f"  ... and {len(model.skipped) - SKIPPED_SHOWN} more skipped")
    if attrs.get("federated_rounds"):
        print(f"federated:  {attrs['federated_rounds']} rounds, relevance {attrs.get('federated_relevance', '?')}")


def expected_text(model) -> str:
    """What the model's expected values are: a robust fit, but the mean in its zero-inflated cells, counted.

    Examples
    --------
    >>> print(expected_text(rain_model))  # doctest: +SKIP
    a robust fit (Huber, then bisquare) of each cell's level and seasonal cycle in the training period,
                but the mean and seasonal cycle (least squares) in zero-inflated cells
                (on their lowest value, dry or frozen, much of the time): pr 510 of 600 cells
    """
    import numpy as np

    from ..plot.explain import design_terms, zero_inflated

    text = f"a robust fit (Huber, then bisquare) of each cell's {design_terms(model, 'level')} in the training period"
    counts = {name: (int(zero_inflated(model, name).sum()),
                     int(np.isfinite(model.climatology.coefficients[:, i]).all(axis=0).sum()))
              for i, name in enumerate(model.variables)}
    if not any(n for n, _ in counts.values()):
        return text
    cells = ", ".join(f"{name} {n:,} of {total:,} cells" for name, (n, total) in counts.items() if n)
    return (f"{text},\n            but the {design_terms(model, 'mean')} (least squares) in zero-inflated cells\n"
            f"            (on their lowest value, dry or frozen, much of the time): {cells}")


def describe_federated(path: str) -> None:
    """Print a federated classifier's layers, rounds and privacy (``geoanom federate``'s ``model.npz``)."""
    from ..federated.result import FederatedResult

    model = FederatedResult.load(path)
    print(f"source:     {path}: a federated anomaly classifier (geoanom federate), not a detector model")
    print(f"layers:     {' -> '.join(str(n) for n in model.sizes)}")
    print(f"rounds:     {len(model.history)}")
    if model.epsilon is not None:
        print(f"privacy:    epsilon {model.epsilon:g}")


def grid_text(data) -> str:
    """``18 x 432 cells (lat, lon), lat -5 to 4.444, lon -180 to 179.2``; a curvilinear grid says so.

    Examples
    --------
    >>> import xarray as xr
    >>> grid_text(xr.Dataset(coords={"lat": [10.0, 11.0], "lon": [20.0, 21.0, 22.0]}))
    '2 x 3 cells (lat, lon), lat 10 to 11, lon 20 to 22'
    """
    from ..grid import spatial_dims

    dims = spatial_dims(data)
    shape = " x ".join(str(data.sizes[dim]) for dim in dims)
    kind = ", curvilinear: 2-D lat and lon" if data["lat"].ndim == 2 else ""
    return (f"{shape} cells ({', '.join(dims)}{kind}), lat {float(data.lat.min()):.4g} to "
            f"{float(data.lat.max()):.4g}, lon {_longitude_range(data)}")


def open_described(inputs: Sequence[str]):
    """The cube of the variables without levels, and every variable's levels.

    A variable with several levels cannot join the cube without a level
    chosen; ``info`` lists it with its levels instead of refusing the file.
    When every variable has levels, the first is opened at its first level,
    so time and grid can still be described.
    """
    from ..io import describe_levels, open_cube

    levels = describe_levels(inputs)
    flat = [name for name, axis in levels.items() if axis is None]
    if flat or not levels:
        return open_cube(inputs, variables=flat or None), levels
    name, axis = next(iter(levels.items()))
    return open_cube(inputs, variables=[name], level=axis.values[0]), levels


def _in_units(name: str, units: dict[str, str] | None) -> str:
    """``pr (kg m-2 s-1)``: a variable with the units it was fitted or scored in; the name alone when unknown.

    Examples
    --------
    >>> _in_units("pr", {"pr": "kg m-2 s-1"}), _in_units("pr", {"pr": ""}), _in_units("pr", None)
    ('pr (kg m-2 s-1)', 'pr (no units given)', 'pr')
    """
    if units is None:
        return name
    return f"{name} ({units[name]})" if units.get(name) else f"{name} (no units given)"


def _scored_variables(result, names: str | None) -> str:
    """The scored variables, each in the units its ``<name>_anomaly`` records (its spreads are in them)."""
    if not names:
        return "?"
    units = {name: str(result[f"{name}_anomaly"].attrs.get("geoanom_variable_units", ""))
             for name in names.split(",") if f"{name}_anomaly" in result}
    return ", ".join(_in_units(name, units if name in units else None) for name in names.split(","))


def _time_span(times) -> str:
    return (f"{iso_date(times.values[0])} to {iso_date(times.values[-1])} ({times.size} "
            f"step{'s' if times.size != 1 else ''}, calendar {calendar_of(times)})")


def _period(text: str | None) -> str:
    if not text or " to " not in str(text):
        return "on an unknown period"
    start, end = str(text).split(" to ", 1)
    return f"{iso_date(start)} to {iso_date(end)}"


def _longitude_range(cube) -> str:
    """West to east edge of the cell centres; a regional grid across the antimeridian says so."""
    from ..grid import crosses_antimeridian

    if crosses_antimeridian(cube):
        lon = cube["lon"].values
        return f"{float(lon[0]):.4g} to {float(lon[-1]):.4g}, across the antimeridian"
    return f"{float(cube.lon.min()):.4g} to {float(cube.lon.max()):.4g}"
