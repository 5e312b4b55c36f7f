"""The synthetic cubes of the throughput benchmark, written to real Zarr stores.

Two shapes, each float32 ``tas`` in K over (time, lat, lon) from a fixed seed,
with a smooth spatial field, noise that grows to the north, and injected
single-cell anomalies of 6 spreads in the second (scoring-only) half:

* ``annual``: 100 x 100 cells at 0.375 degrees, aligned on the precision-3
  geohash grid (729 tiles of 9 to 16 cells); annual steps with an 11-year
  cycle and a trend. ``full`` is 1040 steps (10.4 M observations).
* ``monthly``: 120 x 240 cells at 0.5 x 0.75 degrees (60 N to the equator,
  180 degrees of longitude), the shape of issue 14's held-out cube; monthly
  steps with a seasonal cycle whose amplitude grows to the north, fitted at
  precision 2 (190 tiles of up to 165 cells). ``full`` is 360 steps
  (10.4 M observations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0
INJECTED_FRACTION = 0.001  # of the scoring-only half
INJECTED_SIGMAS = 6.0


@dataclass(frozen=True)
class CubeShape:
    """One benchmark cube: grid, time step, default precision and the time steps of each size."""

    name: str
    n_lat: int
    n_lon: int
    lat0: float
    lon0: float
    dlat: float
    dlon: float
    freq: str  # pandas/xarray frequency of the time axis
    precision: int
    sizes: dict

    def observations(self, size: str) -> int:
        return self.sizes[size] * self.n_lat * self.n_lon


CUBES = {
    # 20 * 1.40625 and -86 * 1.40625: cell edges on the precision-3 geohash grid
    "annual": CubeShape("annual", 100, 100, 28.125, -120.9375, 0.375, 0.375, "YS", 3,
                        {"small": 104, "full": 1040, "large": 4160}),
    "monthly": CubeShape("monthly", 120, 240, 0.0, -180.0, 0.5, 0.75, "MS", 2,
                         {"small": 36, "full": 360, "large": 1440}),
}


def make_cube(shape: CubeShape, n_time: int, seed: int = SEED):
    """The cube (xarray.Dataset) and the boolean mask of its injected anomalies."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    lat = shape.lat0 + shape.dlat * (np.arange(shape.n_lat) + 0.5)
    lon = shape.lon0 + shape.dlon * (np.arange(shape.n_lon) + 0.5)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    base = (288.0 - 0.7 * (glat - 45.0)
            + 3.0 * np.sin(np.radians(glon) * 4.0) * np.cos(np.radians(glat) * 3.0))
    spread = 0.6 + 0.8 * (glat - lat.min()) / np.ptp(lat)  # noisier to the north
    steps = np.arange(n_time)
    if shape.freq == "MS":  # a seasonal cycle, larger to the north, and a small trend
        amplitude = 1.0 + 10.0 * (glat - lat.min()) / np.ptp(lat)
        cycle = np.cos(2 * np.pi * (steps[:, None, None] % 12 - 6.5) / 12.0)
        signal = 0.002 * steps[:, None, None] / 12.0 + amplitude[None] * cycle
    else:  # trend + 11-year cycle
        signal = (0.001 * steps + 0.8 * np.sin(2 * np.pi * steps / 11.0))[:, None, None]
    tas = np.empty((n_time, shape.n_lat, shape.n_lon), dtype=np.float32)
    for start in range(0, n_time, 64):  # in slabs: the large cubes stay within memory
        stop = min(start + 64, n_time)
        noise = rng.standard_normal((stop - start, shape.n_lat, shape.n_lon), dtype=np.float32)
        part = signal[start:stop] if signal.shape[0] > 1 else signal
        tas[start:stop] = base[None] + part + spread[None] * noise
    injected = _inject(tas, spread, rng)
    time_index = xr.date_range("1000-01-01", periods=n_time, freq=shape.freq, unit="s", use_cftime=False)
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas,
                 {"units": "K", "standard_name": "air_temperature", "long_name": "near-surface air temperature"})},
        coords={
            "time": ("time", time_index, {"standard_name": "time"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": f"geoanom throughput benchmark cube ({shape.name})", "seed": seed},
    )
    return ds, injected


def _inject(tas: np.ndarray, spread: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add +-6-spread single-cell anomalies to the second half, in place; return their mask."""
    n_time = tas.shape[0]
    n_train = n_time // 2
    injected = np.zeros(tas.shape, dtype=bool)
    second = injected[n_train:].reshape(-1)
    picks = rng.choice(second.size, size=max(1, int(INJECTED_FRACTION * second.size)), replace=False)
    second[picks] = True
    signs = rng.choice(np.array([-1.0, 1.0]), size=picks.size)
    t, y, x = np.unravel_index(picks, (n_time - n_train,) + tas.shape[1:])
    tas[n_train + t, y, x] += (signs * INJECTED_SIGMAS * spread[y, x]).astype(np.float32)
    return injected


def write_cube(path: Path, shape: CubeShape, n_time: int) -> np.ndarray:
    """Write the cube to a Zarr store at ``path``; return the injected-anomaly mask."""
    ds, injected = make_cube(shape, n_time)
    slab = shape.n_lat * shape.n_lon
    encoding = {"tas": {"chunks": (min(n_time, max(1, 2**20 // slab)), shape.n_lat, shape.n_lon)},
                "time": {"units": "days since 1000-01-01", "calendar": "proleptic_gregorian"}}
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True, encoding=encoding)
    return injected
