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
        phase = (time.day_of_year.values - 196) / 365.25
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


# -- events injected into a real or synthetic cube -------------------------------------------

EVENT_KINDS = ("warm_blob", "cold_blob", "spike", "step", "drift")
"""Kinds of event :func:`inject_events` knows."""

EVENT_SIZES = {"warm_blob": 2.5, "cold_blob": 2.5, "spike": 4.5, "step": 2.0, "drift": 3.0}
"""Default size of each kind of event, in local standard deviations."""

EVENT_RATES = {"warm_blob": 0.02, "cold_blob": 0.02, "spike": 0.01}
"""Default share of the valid scored observations that blobs cover, or that spike."""

BLOB_EDGE = 0.25  # a blob stops where it adds less than this share of its peak


def persistent_daily_cube(rho: float, n_years: int, n_lat: int = 8, n_lon: int = 10, seed: int = 0) -> xr.Dataset:
    """A daily ``noleap`` temperature cube whose weather persists: AR(1) anomalies of lag-1 correlation ``rho``.

    A seasonal cycle whose amplitude grows with latitude, plus stationary
    AR(1) noise of unit variance in each cell, independent between cells:
    daily surface temperature persists at about 0.7-0.9, sea surface
    temperature at 0.95 or more. No events are injected.

    Parameters
    ----------
    rho : float
        Lag-1 correlation of each cell's anomalies, in [0, 1).
    n_years : int
        365 steps a year from 2001.
    n_lat, n_lon : int
    seed : int

    Returns
    -------
    xarray.Dataset
        Variable ``tas`` (float32, K).

    Examples
    --------
    >>> cube = persistent_daily_cube(0.9, 2)
    >>> cube.sizes["time"], cube["tas"].dtype.name
    (730, 'float32')
    """
    rng = np.random.default_rng(seed)
    time = xr.date_range("2001-01-01", periods=365 * n_years, freq="D", calendar="noleap", use_cftime=True)
    lat, lon = np.linspace(20, 50, n_lat), np.linspace(-100, -60, n_lon)
    noise = rng.standard_normal((time.size, n_lat, n_lon))
    weather = np.empty_like(noise)
    weather[0] = noise[0]
    for t in range(1, time.size):
        weather[t] = rho * weather[t - 1] + np.sqrt(1 - rho**2) * noise[t]
    day = np.arange(time.size) % 365
    cycle = (5 + lat[None, :, None] / 10) * np.cos(2 * np.pi * (day[:, None, None] - 200) / 365)
    tas = xr.DataArray((290 - lat[None, :, None] / 3 + cycle + weather).astype(np.float32),
                       dims=("time", "lat", "lon"), coords={"time": time, "lat": lat, "lon": lon},
                       attrs={"units": "K", "standard_name": "air_temperature"})
    tas.lat.attrs.update(units="degrees_north", standard_name="latitude")
    tas.lon.attrs.update(units="degrees_east", standard_name="longitude")
    return tas.to_dataset(name="tas")


def inject_events(
    cube: xr.Dataset,
    variable: str,
    kind: str,
    *,
    start: int | str,
    seed: int = 0,
    size: float | None = None,
    rate: float | None = None,
    radius: float = 3.0,
    region: float = 0.25,
    noise: np.ndarray | xr.DataArray | None = None,
) -> tuple[xr.Dataset, xr.DataArray]:
    """Inject one kind of event into a cube, only from time step ``start`` on.

    Event sizes are in units of each cell's local noise: the standard
    deviation of its values before ``start`` about a per-calendar-month
    mean and a linear trend (degrees of freedom corrected), so a 2.5 blob is
    as visible on a quiet tropical ocean as on a noisy continent. NaN values
    stay NaN and are never part of an event.

    Kinds:

    - ``"warm_blob"``, ``"cold_blob"``: Gaussian blobs of peak ``size`` and
      ``radius`` cells (cut where they add less than a quarter of the peak),
      each lasting 1 to 3 time steps, until they cover ``rate`` (default 2%)
      of the valid observations from ``start`` on.
    - ``"spike"``: single observations at ``rate`` (default 1%), shifted by
      ``size`` (default 4.5) of either sign.
    - ``"step"``: a rectangle of cells (``region`` of each grid dimension)
      shifted by ``size`` (default 2), of either sign, from an onset in the
      first half of the period after ``start`` to the end.
    - ``"drift"``: such a rectangle drifting linearly from the onset to
      ``size`` (default 3), of either sign, at the last time step.

    Parameters
    ----------
    cube : xarray.Dataset
        With ``time`` and two spatial dimensions (``lat``/``lon`` or ``y``/``x``).
    variable : str
        The variable to change; the others are left alone.
    kind : {"warm_blob", "cold_blob", "spike", "step", "drift"}
    start : int or str
        First time step that may hold an event: an index, or a time label
        (the first step at or after it). Earlier steps are left untouched.
    seed : int, default 0
        The same seed gives the same events.
    size : float, optional
        Size of the event in local standard deviations; see ``EVENT_SIZES``.
    rate : float, optional
        Blobs: share of the valid observations from ``start`` on that they
        cover; spikes: share that spike. See ``EVENT_RATES``.
    radius : float, default 3.0
        Standard deviation of a blob's Gaussian, in cells.
    region : float, default 0.25
        Side of a step's or drift's rectangle, as a share of each grid dimension.
    noise : array (*spatial), optional
        Local standard deviation of each cell, instead of the one estimated
        from the data before ``start``.

    Returns
    -------
    cube : xarray.Dataset
        A copy with the events added to ``variable`` (same dtype and attributes).
    events : xarray.DataArray of bool (time, *spatial)
        True exactly where a value was changed.

    Raises
    ------
    ValueError
        Unknown kind or variable, or fewer than 3 time steps before ``start``
        (no local noise can be estimated) when ``noise`` is not given.

    Examples
    --------
    >>> cube, _ = synthetic_cube(n_years=4, anomaly_rate=0.0)
    >>> hot, events = inject_events(cube, "tas", "warm_blob", start=24, seed=1)
    >>> bool(events[:24].any()), bool(events[24:].any())
    (False, True)
    >>> bool((hot["tas"] > cube["tas"]).where(events, True).all())
    True
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}, got {kind!r}.")
    if variable not in cube.data_vars:
        raise ValueError(f"variable {variable!r} is not in the cube; it has {', '.join(map(str, cube.data_vars))}.")
    from .grid import spatial_dims

    dims = ("time",) + tuple(spatial_dims(cube))
    field = cube[variable].transpose(*dims)
    first = _first_step(cube, start)
    values = field.values.astype(np.float64)
    if noise is None:
        noise = _local_noise(values[:first], field["time"][:first])
    noise = np.asarray(noise, dtype=np.float64)
    usable = np.isfinite(values) & (np.isfinite(noise) & (noise > 0))[None]
    usable[:first] = False
    rng = np.random.default_rng(seed)
    size = EVENT_SIZES[kind] if size is None else float(size)
    if kind in ("warm_blob", "cold_blob"):
        rate = EVENT_RATES[kind] if rate is None else rate
        shift = _blobs(usable, first, rng, rate, radius) * (1.0 if kind == "warm_blob" else -1.0)
    elif kind == "spike":
        rate = EVENT_RATES[kind] if rate is None else rate
        shift = np.where(rng.random(values.shape) < rate, rng.choice([-1.0, 1.0], size=values.shape), 0.0)
    else:
        shift = _region_shift(usable, first, rng, region, ramp=kind == "drift")
    shift = np.where(usable, shift, 0.0) * size * noise[None]
    changed = values + shift
    stored = changed.astype(field.dtype)
    events = usable & (stored != field.values)
    out = cube.copy()
    out[variable] = field.copy(data=stored).transpose(*cube[variable].dims)
    truth = xr.DataArray(events, dims=dims, coords={d: field[d] for d in dims if d in field.coords}, name="events",
                         attrs={"kind": kind, "size": size, "start": first, "seed": seed,
                                "units": "local standard deviations"})
    return out, truth


def _first_step(cube: xr.Dataset, start: int | str) -> int:
    """Index of the first time step at or after ``start`` (an index or a time label)."""
    if isinstance(start, (int, np.integer)):
        if not 0 <= start <= cube.sizes["time"]:
            raise ValueError(f"start {start} is outside the cube's {cube.sizes['time']} time steps.")
        return int(start)
    return cube.sizes["time"] - cube.sel(time=slice(start, None)).sizes["time"]


def _local_noise(values: np.ndarray, time: xr.DataArray) -> np.ndarray:
    """Per-cell standard deviation about a per-calendar-month mean and a linear trend.

    ``values`` is (time, *spatial); the residual sum of squares is divided by
    the degrees of freedom left (valid steps minus fitted columns), so a
    short record does not make the noise look smaller than it is.
    """
    n_steps = values.shape[0]
    if n_steps < 3:
        raise ValueError(f"{n_steps} time steps before the start give no local noise; pass `noise`.")
    months = np.asarray(time.dt.month.values)
    seasons = np.unique(months)
    if n_steps < seasons.size + 3:  # too few years for a mean per month: one mean for all
        months, seasons = np.zeros(n_steps, dtype=int), np.zeros(1, dtype=int)
    trend = (np.arange(n_steps) - (n_steps - 1) / 2) / max(n_steps, 1)
    design = np.column_stack([(months == s).astype(float) for s in seasons] + [trend])
    flat = values.reshape(n_steps, -1)
    noise = np.full(flat.shape[1], np.nan)
    complete = np.isfinite(flat).all(axis=0)
    noise[complete] = _residual_std(design, flat[:, complete])
    for cell in np.flatnonzero(~complete & (np.isfinite(flat).sum(axis=0) >= 3)):
        rows = np.isfinite(flat[:, cell])
        columns = design[rows].any(axis=0)
        noise[cell] = _residual_std(design[rows][:, columns], flat[rows, cell][:, None])[0]
    return noise.reshape(values.shape[1:])


def _residual_std(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    coefficients, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    dof = design.shape[0] - rank
    if dof < 1:
        return np.full(y.shape[1], np.nan)
    return np.sqrt(((y - design @ coefficients) ** 2).sum(axis=0) / dof)


def _blobs(usable: np.ndarray, first: int, rng: np.random.Generator, rate: float, radius: float) -> np.ndarray:
    """Shape (0..1) of Gaussian blobs of 1-3 steps until they cover ``rate`` of the usable observations."""
    n_steps = usable.shape[0]
    shape = np.zeros(usable.shape)
    target = rate * usable.sum()
    rows, cols = np.indices(usable.shape[1:])
    for _ in range(10_000):
        if first >= n_steps or ((shape > 0) & usable).sum() >= target:
            break
        onset = int(rng.integers(first, n_steps))
        valid = np.argwhere(usable[onset])
        if valid.size == 0:
            continue
        row, col = valid[rng.integers(len(valid))] + rng.uniform(-0.5, 0.5, 2)
        blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * radius**2))
        blob[blob < BLOB_EDGE] = 0.0
        for step in range(onset, min(onset + int(rng.integers(1, 4)), n_steps)):
            shape[step] += blob
    return shape


def _region_shift(usable: np.ndarray, first: int, rng: np.random.Generator, region: float, ramp: bool) -> np.ndarray:
    """A rectangle of cells stepping (or drifting linearly) to +-1 from an onset to the end."""
    n_steps, n_rows, n_cols = usable.shape
    shift = np.zeros(usable.shape)
    if first >= n_steps:
        return shift
    height, width = max(2, round(region * n_rows)), max(2, round(region * n_cols))
    valid_cells = usable[first:].any(axis=0)
    for _ in range(1000):  # a rectangle mostly over valid cells (ocean, not land)
        top, left = int(rng.integers(0, n_rows - height + 1)), int(rng.integers(0, n_cols - width + 1))
        if valid_cells[top:top + height, left:left + width].mean() >= 0.5:
            break
    onset = int(rng.integers(first, first + (n_steps - first + 1) // 2))
    steps = np.arange(n_steps)
    level = (steps - onset + 1) / (n_steps - onset) if ramp else np.ones(n_steps)
    level = np.where(steps >= onset, level, 0.0) * rng.choice([-1.0, 1.0])
    shift[:, top:top + height, left:left + width] = level[:, None, None]
    return shift
