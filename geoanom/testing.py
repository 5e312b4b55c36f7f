"""Synthetic cubes with known anomalies, for tests, benchmarks and examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def synthetic_cube(
    n_years: int = 12,
    n_lat: int = 16,
    n_lon: int = 24,
    anomaly_rate: float = 0.01,
    anomaly_size: float = 6.0,
    seed: int = 0,
    frequency: str = "month",
) -> tuple[xr.Dataset, xr.DataArray]:
    """A monthly (or daily) temperature cube (time, lat, lon) and the mask of injected anomalies.

    Temperature falls with latitude, has a seasonal cycle whose amplitude
    grows with latitude, and unit Gaussian noise. Anomalies (shifts of
    ``anomaly_size`` kelvin, either sign) are injected in the second half,
    so the first half is clean training data.

    Parameters
    ----------
    n_years, n_lat, n_lon : int
        Size of the cube: 12 * n_years monthly steps from 2000 on a regular
        grid over 20-50 N, 100-60 W.
    anomaly_rate : float, default 0.01
        Share of second-half observations shifted.
    anomaly_size : float, default 6.0
        Size of the shift, in kelvin (the noise has a standard deviation of 1).
    seed : int, default 0
    frequency : {"month", "day"}, default "month"
        Monthly steps (12 a year), or daily ones (365 a year, the
        seasonal cycle following the day of the year).

    Returns
    -------
    cube : xarray.Dataset
        Variable ``tas`` (float32, K) with CF coordinate attributes.
    labels : xarray.DataArray of bool
        True where an anomaly was injected.

    Examples
    --------
    >>> cube, labels = synthetic_cube(n_years=4)
    >>> cube.sizes["time"], int(labels.sum()) > 0
    (48, True)
    """
    rng = np.random.default_rng(seed)
    if frequency not in ("month", "day"):
        raise ValueError(f"frequency must be 'month' or 'day', got {frequency!r}.")
    if frequency == "month":
        time = pd.date_range("2000-01-01", periods=12 * n_years, freq="MS")
        phase = (time.month.values - 7) / 12
    else:
        time = pd.date_range("2000-01-01", periods=365 * n_years, freq="D")
        phase = (time.dayofyear.values - 196) / 365.25
    lat = np.linspace(20.0, 50.0, n_lat)
    lon = np.linspace(-100.0, -60.0, n_lon)
    base = 300.0 - 0.6 * (lat[None, :, None] - 20.0) + 0.05 * lon[None, None, :]
    season = (2.0 + 0.3 * (lat[None, :, None] - 20.0)) * np.cos(2 * np.pi * phase[:, None, None])
    values = base + season + rng.normal(0.0, 1.0, (time.size, n_lat, n_lon))
    labels = np.zeros(values.shape, dtype=bool)
    half = time.size // 2
    labels[half:] = rng.random(labels[half:].shape) < anomaly_rate
    values[labels] += anomaly_size * rng.choice([-1.0, 1.0], size=labels.sum())
    coords = {
        "time": time,
        "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    cube = xr.Dataset(
        {"tas": (("time", "lat", "lon"), values.astype(np.float32), {"units": "K", "standard_name": "air_temperature"})},
        coords=coords,
    )
    return cube, xr.DataArray(labels, dims=("time", "lat", "lon"), coords=cube.coords)


def blob_cube(
    n_years: int = 12,
    n_lat: int = 32,
    n_lon: int = 48,
    n_events: int = 12,
    event_size: float = 2.5,
    event_radius: float = 3.0,
    spike_rate: float = 0.01,
    spike_size: float = 5.0,
    seed: int = 0,
) -> tuple[xr.Dataset, xr.DataArray]:
    """A monthly cube with spatially coherent events (warm blobs) and single-cell noise spikes.

    The background is that of :func:`synthetic_cube` (unit noise,
    independent from cell to cell). In the second half, ``n_events`` Gaussian blobs of peak
    ``event_size`` kelvin and radius ``event_radius`` cells each last two to
    four months; single cells jump by ``spike_size`` kelvin (either sign) at
    ``spike_rate``. The spikes are instrument noise, not events: a detector
    that sees each cell alone flags them, one that sees regions should not.

    Returns
    -------
    cube : xarray.Dataset
        Variable ``tas`` (float32, K).
    events : xarray.DataArray of bool
        True inside an event (where its blob adds more than a quarter of
        its peak); spikes are False.
    """
    rng = np.random.default_rng(seed)
    cube, _ = synthetic_cube(n_years, n_lat, n_lon, anomaly_rate=0.0, seed=seed)
    values = cube["tas"].values.astype(np.float64)
    n_times = values.shape[0]
    rows, cols = np.mgrid[0:n_lat, 0:n_lon]
    events = np.zeros(values.shape, dtype=bool)
    for _ in range(n_events):
        start = int(rng.integers(n_times // 2, n_times - 4))
        centre_row, centre_col = rng.uniform(0, n_lat), rng.uniform(0, n_lon)
        shape = np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * event_radius**2))
        for step in range(start, start + int(rng.integers(2, 5))):
            values[step] += event_size * shape
            events[step] |= shape > 0.25
    spikes = np.zeros(values.shape, dtype=bool)
    spikes[n_times // 2 :] = rng.random(spikes[n_times // 2 :].shape) < spike_rate
    values[spikes] += spike_size * rng.choice([-1.0, 1.0], size=int(spikes.sum()))
    cube["tas"].values = values.astype(np.float32)
    return cube, xr.DataArray(events, dims=("time", "lat", "lon"), coords=cube.coords, name="events")
