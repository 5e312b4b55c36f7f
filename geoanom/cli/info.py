"""``geoanom info``: a cube described as geoanom opens it."""

from __future__ import annotations

from typing import Sequence

from ..formatting import calendar_of, iso_date


def describe(inputs: Sequence[str]) -> None:
    """Print a cube's source, dims, time span and calendar, grid, variables and tile sizes.

    Examples
    --------
    >>> describe(["tas.nc"])  # doctest: +SKIP
    source:     tas.nc
    dims:       {'time': 144, 'lat': 12, 'lon': 16}
    time:       2000-01-01 to 2011-12-01 (144 steps, calendar gregorian)
    ...
    """
    from .. import geohash
    from ..grid import spatial_dims
    from ..tiling import choose_precision, tile_labels

    cube, levels = open_described(inputs)
    times = cube["time"]
    print(f"source:     {cube.attrs.get('geoanom_source')}")
    print(f"dims:       {dict(cube.sizes)}")
    print(f"time:       {iso_date(times.values[0])} to {iso_date(times.values[-1])} ({times.size} steps, "
          f"calendar {calendar_of(times)})")
    print(f"grid:       {' x '.join(spatial_dims(cube))}, lat {float(cube.lat.min()):g} to {float(cube.lat.max()):g}, "
          f"lon {_longitude_range(cube)}")
    for name, var in cube.data_vars.items():
        chunks = "x".join(str(c[0]) for c in var.chunks) if var.chunks else "in memory"
        axis = levels.get(name)
        shown = f"; on levels {axis}, shown at the first (choose one with --level VALUE)" if axis else ""
        print(f"variable:   {name} {var.dims} {var.dtype}, chunks {chunks}, units {var.attrs.get('units', '?')}"
              + shown)
    for name, axis in levels.items():
        if axis is not None and name not in cube.data_vars:
            print(f"variable:   {name} on levels {axis} (choose one with --level VALUE)")
    precision, reason = choose_precision(cube)
    print(f"tiles:      chosen {reason}")
    for p in range(1, min(precision + 2, geohash.MAX_PRECISION) + 1):
        labels = tile_labels(cube, p)
        n = len(set(labels.values.ravel()))
        print(f"  precision {p}: {n} tiles, {labels.size / n:.1f} cells per tile")


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


def _longitude_range(cube) -> str:
    """West to east edge of the cell centres; a regional grid across the antimeridian says so."""
    from ..grid import crosses_antimeridian

    if crosses_antimeridian(cube):
        lon = cube["lon"].values
        return f"{float(lon[0]):g} to {float(lon[-1]):g}, across the antimeridian"
    return f"{float(cube.lon.min()):g} to {float(cube.lon.max()):g}"
