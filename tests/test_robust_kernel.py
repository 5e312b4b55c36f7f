"""The climatology's robust fit, compiled (features/irls.py) and summed over distinct design rows, against numpy.

The reference is the numpy passes over every time step (the test oracles
``irls_reference`` and ``seasonal_spread_reference`` of
``tests/reference_kernels.py`` in the kernels' place, with a design that
keeps every step's row); the compiled kernels and the sums over distinct
rows change only the order of floating-point sums, so every plane agrees
to about 1e-12 of its own scale (1e-11 on a month of 3 values under the
saturated model), except in a cell
whose largest candidate its data cannot determine (a month never observed
under per-month means): only the ridge holds that fit, so rounding moves
it by up to about 1e-5 in any code, as it moves the previous code between
its own two layouts. The harmonics chosen are the same.
"""

import numpy as np
import pytest
from reference_kernels import irls_reference, loo_scale_reference, press_reference, seasonal_spread_reference

import geoanom as ga
from geoanom.features import press, robust
from geoanom.features.climatology_design import _chosen_prefix, choose_design
from geoanom.features.pipeline import stack_variables

TOLERANCE = 1e-10  # of each plane's largest magnitude (1e-11 seen on 3 values a month under the saturated model)


def _block(trend=None, n_times=42):
    """The SST sample's training block (variable, time, y, x) with land NaN, some gaps and a short cell."""
    cube = ga.sample_cube("sst").isel(time=slice(0, n_times), lon=slice(0, 160))
    values = stack_variables(cube, None)
    block = values.values.astype(np.float64)
    rng = np.random.default_rng(0)
    block[rng.random(block.shape) < 0.05] = np.nan  # gaps in the ocean cells
    block[0, :-12, 3, 5] = np.nan  # a cell with too few values for most candidates
    columns = choose_design(values["time"], trend, "sst").columns(values["time"])
    return block, columns


def _close(new, old, determined):
    """Planes equal to TOLERANCE of their scale in the determined cells, to 1e-4 elsewhere."""
    scale = np.nanmax(np.abs(old.reshape(old.shape[0], -1)), axis=1).reshape((-1,) + (1,) * (old.ndim - 1))
    np.testing.assert_array_equal(np.isnan(new), np.isnan(old))
    error = np.abs(new - old) / np.maximum(scale, 1e-300)
    assert np.nanmax(np.where(determined, error, 0.0)) < TOLERANCE
    assert np.nanmax(error) < 1e-4


def _determined(block, n_columns):
    """Cells whose every month has a training value (the saturated model is determined), or any cell below 12 columns."""
    if n_columns < 12:
        return np.ones(block.shape[2:], dtype=bool)
    months = np.arange(block.shape[1]) % 12
    return np.stack([np.isfinite(block[0, months == m]).any(axis=0) for m in range(12)]).all(axis=0)


def _every_step_design(monkeypatch):
    """The previous code's design: every time step its own row."""
    monkeypatch.setattr(robust.DesignRows, "of", classmethod(lambda cls, columns: cls(columns)))


def _numpy_kernels(monkeypatch) -> list[str]:
    """The numpy oracles in the compiled kernels' place; returns the names of the oracles as they are called."""
    calls: list[str] = []
    monkeypatch.setattr(robust, "irls_cells", lambda *args: calls.append("irls") or irls_reference(*args))
    monkeypatch.setattr(robust, "seasonal_spread_cells",
                        lambda *args: calls.append("spread") or seasonal_spread_reference(*args))
    monkeypatch.setattr(press, "press_cells", lambda *args: calls.append("press") or press_reference(*args))
    monkeypatch.setattr(press, "loo_scale_cells", lambda *args: calls.append("scale") or loo_scale_reference(*args))
    return calls


@pytest.mark.parametrize("trend", [None, "linear"])
def test_press_and_final_planes_equal_the_numpy_passes(monkeypatch, trend):
    block, columns = _block(trend)
    n_columns = columns.shape[1]
    prefixes = [q for q in range(1, n_columns + 1) if 2 * q + 4 <= block.shape[1]]
    sampled = press.press_sample(np.arange(block[0, 0].size).reshape(block.shape[2:]) // 40, block.shape[2:])
    prefix = np.minimum(np.full((1, 1) + block.shape[2:], n_columns), 5)
    seasons = np.arange(block.shape[1]) % 12
    omega = np.linspace(0.0, np.pi, n_columns)  # the persistence's inflation of each column's leverage
    compiled = (press.press_block(block, sampled, columns, omega, prefixes),
                robust.final_block(block, prefix, columns, omega, seasons, 12, 3.0))
    with monkeypatch.context() as patch:
        calls = _numpy_kernels(patch)
        _every_step_design(patch)
        reference = (press.press_block(block, sampled, columns, omega, prefixes),
                     robust.final_block(block, prefix, columns, omega, seasons, 12, 3.0))
    assert set(calls) == {"irls", "spread", "press", "scale"}  # the oracles ran in the kernels' place
    _close(compiled[0], reference[0], _determined(block, n_columns))
    _close(compiled[1], reference[1], _determined(block, 5))
    codes = np.arange(block[0, 0].size).reshape(block.shape[2:]) // 40
    chosen = [_chosen_prefix(press[:-1], press[-1], prefixes, codes) for press in (compiled[0], reference[0])]
    np.testing.assert_array_equal(*chosen)
    assert np.isfinite(compiled[1]).any() and np.isnan(compiled[1]).any()  # fitted cells, and land


def test_distinct_rows_are_the_months_of_a_record_without_trend():
    block, columns = _block()
    design = robust.DesignRows.of(columns)
    assert design.rows.shape[0] == 12  # 42 months, 12 distinct rows
    np.testing.assert_array_equal(design.rows[design.step_row], columns)
    assert robust.DesignRows.of(np.column_stack([columns, np.arange(42.0)])).rows is None  # a trend: every row distinct


def test_the_compiled_fit_downweights_an_outlier_as_numpy_does(monkeypatch):
    rng = np.random.default_rng(1)
    columns = np.ones((30, 1))
    y = rng.normal(size=(30, 4))
    y[7, 2] = 40.0  # one gross outlier in cell 2
    valid = np.ones(y.shape, dtype=bool)
    design = robust.DesignRows.of(columns)
    fitted = robust.robust_fit(y, valid, design, np.ones(4, dtype=np.int64))
    calls = _numpy_kernels(monkeypatch)
    reference = robust.robust_fit(y, valid, design, np.ones(4, dtype=np.int64))
    assert calls == ["irls"]
    assert fitted.weights[7, 2] == 0.0  # beyond the bisquare's reach
    for name in ("beta", "weights", "scale", "residual", "leverage"):
        np.testing.assert_allclose(getattr(fitted, name), getattr(reference, name), rtol=1e-12, atol=1e-12)


def test_the_compiled_median_is_numpys():
    from geoanom.features.scale_kernels import median

    rng = np.random.default_rng(2)
    for n in [1, 2, 3, 4, 5, 17, 180, 181, 520]:
        for values in (np.abs(rng.normal(size=n)), rng.integers(0, 3, size=n).astype(np.float64),  # ties too
                       np.zeros(n), np.sort(rng.normal(size=n)), np.sort(rng.normal(size=n))[::-1].copy()):
            buffer = np.concatenate([values, [1e9, -1e9]])  # only the first n count
            assert median(buffer, n, np.full(2 * n, np.nan)) == np.median(values)
            np.testing.assert_array_equal(buffer[:n], values)  # left as it was


@pytest.mark.parametrize("n_times, n_seasons", [(180, 12), (60, 1)])
def test_the_compiled_seasonal_spread_is_numpys_bit_for_bit(n_times, n_seasons):
    from geoanom.features.season_spread import seasonal_spread_cells

    rng = np.random.default_rng(3)
    residual = rng.standard_t(4, size=(n_times, 300))
    leverage = rng.uniform(0.0, 0.5, size=residual.shape)
    valid = rng.random(residual.shape) > 0.1
    residual[~valid], leverage[~valid] = 0.0, 0.0
    residual[:, 7] = 0.0  # a constant cell: the median is 0, the RMS too
    seasons = np.arange(n_times) % n_seasons
    factors = rng.uniform(1.0, 20.0, size=(3, residual.shape[1]))  # persistent residuals count for fewer values
    factors[2] = rng.uniform(1.0, 4.0, size=residual.shape[1])  # a month's run: some judged alone, some not
    arguments = (residual, leverage, valid, seasons, n_seasons, robust.SCALE_STEPS, robust.BISQUARE_C, robust.KAPPA,
                 robust.SPREAD_PRIOR, *factors)
    expected = seasonal_spread_reference(*arguments)
    found = seasonal_spread_cells(*arguments)
    for new, old in zip(found, expected):
        np.testing.assert_array_equal(new, old)


@pytest.mark.parametrize("distinct_rows", [True, False])
def test_the_compiled_press_and_its_scale_are_numpys_bit_for_bit(distinct_rows):
    from geoanom.features.irls import press_cells
    from geoanom.features.scale_kernels import loo_scale_cells

    rng = np.random.default_rng(4)
    n_times, n_cells, n_columns = 60, 200, 5
    step_row = np.arange(n_times) % 12 if distinct_rows else np.arange(n_times)
    n_rows = step_row.max() + 1
    valid = rng.random((n_times, n_cells)) > 0.1
    y = np.where(valid, rng.standard_t(3, size=valid.shape), np.nan)
    weights = np.where(valid, rng.uniform(0.0, 1.0, size=valid.shape), 0.0)
    fit = rng.normal(size=(n_rows, n_cells, n_columns)).cumsum(axis=2)
    design_leverage = rng.uniform(0.0, 0.5, size=fit.shape).cumsum(axis=2)  # some past the leverage cap
    residual = np.where(valid, y - fit[step_row, :, -1], 0.0)
    leverage = np.clip(weights * design_leverage[step_row, :, -1], 0.0, robust.MAX_LEVERAGE)
    residual[:, 7], valid[:40, 8] = 0.0, False  # a cell with residuals all 0 (its RMS, then 1e-12); one with gaps
    residual[:45, 9] = 0.0  # most residuals 0: the median is 0, the scale their root mean square
    scale = loo_scale_cells(residual, leverage, valid)
    np.testing.assert_array_equal(scale, loo_scale_reference(residual, leverage, valid))
    assert scale[7] == 1e-12 and scale[9] > 1e-12
    for q in range(n_columns):
        last = np.minimum(rng.integers(0, n_columns, n_cells), q)
        arguments = (y, valid, weights, fit, design_leverage, step_row, last, scale, robust.MAX_LEVERAGE,
                     np.where(np.arange(n_cells) % 3, press.PRESS_CAP, np.inf))  # uncapped cells too
        found, expected = press_cells(*arguments), press_reference(*arguments)
        np.testing.assert_array_equal(found, expected)
        assert np.isfinite(found).all() and (found > 0).all()
