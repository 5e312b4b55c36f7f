"""Operational runs: append new months to a result store, refuse what does not continue it, resume killed writes.

Real NetCDF inputs and Zarr stores in tmp_path; a model fitted once, saved
and loaded as ``geoanom score`` uses it. A write "killed" mid-way is a real
write whose dask block raises inside a region; resuming it must give the
store an uninterrupted write gives.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

import geoanom as ga
from geoanom.cli import main
from geoanom.errors import GeoanomError, InputFileError
from geoanom.io import append
from geoanom.testing import synthetic_cube

MONTHS, FIRST = 36, 24  # months 1..24 written first, 25..36 appended


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """Input files (the first months, the new ones, all) and a saved model fitted on the first year."""
    folder = tmp_path_factory.mktemp("feed")
    cube = synthetic_cube(n_years=MONTHS // 12, n_lat=8, n_lon=8)[0]
    paths = {"first": folder / "first.nc", "new": folder / "new.nc", "all": folder / "all.nc"}
    cube.isel(time=slice(0, FIRST)).to_netcdf(paths["first"])
    cube.isel(time=slice(FIRST, None)).to_netcdf(paths["new"])
    cube.to_netcdf(paths["all"])
    model = ga.fit(cube.isel(time=slice(0, 12)), variables=["tas"], precision=1, detectors=["gmm", "kmeans"])
    model.save(folder / "model.npz")
    paths["model"] = folder / "model.npz"
    return paths


def scored(feed, which, **kwargs):
    """The saved model's lazy result on one input, chunked 4 months in time (the store's time chunks)."""
    model = ga.load_model(feed["model"])
    return model.score(ga.open_cube(feed[which], chunks={"time": 4}), **kwargs)


def digest(path):
    """A hash of every file of a store: any change shows."""
    hashed = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        hashed.update(str(file.relative_to(path)).encode())
        hashed.update(file.read_bytes())
    return hashed.hexdigest()


def without_source(attrs):
    """Attributes but the input file's name, which an append keeps from the first write."""
    return {k: v for k, v in attrs.items() if k != "geoanom_source"}


def assert_same_store(got, expected, history=True, chunks=True):
    """Equal values, per-variable encoding and attributes (root ``history`` and chunks only if asked)."""
    with xr.open_zarr(got) as a, xr.open_zarr(expected) as b:
        for ds in (a, b):
            for var in ds.variables.values():
                var.attrs = without_source(var.attrs)
        xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))
        skip = set() if history else {"history"}
        assert {k: v for k, v in a.attrs.items() if k not in skip} == \
            {k: v for k, v in b.attrs.items() if k not in skip}
    first, second = zarr.open_group(got, mode="r"), zarr.open_group(expected, mode="r")
    for name, array in second.arrays():
        other = first[name]
        assert (other.dtype, other.compressors) == (array.dtype, array.compressors), name
        assert str(other.fill_value) == str(array.fill_value), name  # nan is not equal to nan
        if chunks and name != "time":  # the time coordinate is one chunk of the first write's length, grown since
            assert other.chunks == array.chunks, name
        assert without_source(other.attrs) == without_source(array.attrs), name


@pytest.fixture
def reference(feed, tmp_path):
    """Months 1..36 scored and written in one go."""
    return ga.write_dataset(scored(feed, "all"), tmp_path / "reference.zarr")


@pytest.fixture
def first(feed, tmp_path):
    """Months 1..24 written: the store to append to."""
    return ga.write_dataset(scored(feed, "first"), tmp_path / "anomalies.zarr")


def test_append_equals_scoring_everything_at_once(feed, first, reference):
    ga.write_dataset(scored(feed, "new"), first, append=True)
    assert_same_store(first, reference, history=False)
    history = zarr.open_group(first, mode="r").attrs["history"].splitlines()
    assert len(history) == 2 and history[1].startswith("appended 2002-01-01 to 2002-12-01")
    assert ga.open_cube(first, variables=["fused_irregularity"]).sizes["time"] == MONTHS  # a finished result


def test_repeating_an_append_is_refused_and_leaves_the_store_untouched(feed, first):
    ga.write_dataset(scored(feed, "new"), first, append=True)
    before = digest(first)
    with pytest.raises(GeoanomError, match=r"cannot append 2002-01-01 to 2002-12-01 to '.*anomalies.zarr': these "
                       r"dates overlap the stored ones \(2000-01-01 to 2002-12-01\)"):
        ga.write_dataset(scored(feed, "new"), first, append=True)
    with pytest.raises(GeoanomError, match="begin before the stored end"):
        ga.write_dataset(scored(feed, "all").isel(time=slice(FIRST - 1, None)).assign_coords(
            time=lambda ds: ds["time"] + np.timedelta64(1, "D")), first, append=True)
    assert digest(first) == before


def test_an_append_that_leaves_steps_out_warns(feed, first):
    # a monthly feed that missed three months was appended silently, and events then joined January to May
    new = scored(feed, "new")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ga.GeoanomWarning)  # the next month: nothing to say
        ga.write_dataset(new.isel(time=slice(0, 1)), first, append=True)
    with pytest.warns(ga.GeoanomWarning, match=r"appended 2002-05-01 to '.*anomalies.zarr' after its last step "
                      r"2002-01-01, leaving about 3 time step\(s\) out \(the store steps by 31 days\): .*the "
                      r"missing steps can no longer be appended \(only later dates can\)"):
        ga.write_dataset(new.isel(time=slice(4, None)), first, append=True)


def test_an_appended_step_without_any_value_warns(feed, first, tmp_path):
    """Trial A #14: an all-NaN month (an empty delivery) was appended without a word."""
    month = xr.open_dataset(feed["new"]).isel(time=slice(0, 1)).load()
    month["tas"][:] = np.nan
    month.to_netcdf(tmp_path / "empty.nc")
    result = ga.load_model(feed["model"]).score(ga.open_cube(tmp_path / "empty.nc"))
    with pytest.warns(ga.GeoanomWarning, match=r"appended 2002-01-01 to '.*anomalies.zarr' with no scored cell "
                      r"\(fused_irregularity is missing everywhere\): the input holds no values there"):
        ga.write_dataset(result, first, append=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ga.GeoanomWarning)  # a month with values: nothing to say
        ga.write_dataset(scored(feed, "new").isel(time=slice(1, 2)), first, append=True)


def test_another_models_result_is_refused(feed, first, tmp_path):
    cube = ga.open_cube(feed["new"], chunks={"time": 4})
    other = ga.fit(ga.open_cube(feed["first"]).isel(time=slice(0, 12)), variables=["tas"], precision=1,
                   detectors=["gmm", "kmeans"], seed=7)
    before = digest(first)
    with pytest.raises(GeoanomError, match=r"'.*anomalies.zarr': it was scored by another model \(.*seed"):
        ga.write_dataset(other.score(cube), first, append=True)
    with pytest.raises(GeoanomError, match="anomalies.zarr.*lat differs"):  # another grid
        ga.write_dataset(scored(feed, "new").isel(lat=slice(0, 7)), first, append=True)
    assert digest(first) == before


def test_netcdf_and_missing_stores_are_refused(feed, tmp_path):
    ga.write_dataset(scored(feed, "first"), tmp_path / "a.nc")
    with pytest.raises(GeoanomError, match=r"cannot append to '.*a.nc': only Zarr stores"):
        ga.write_dataset(scored(feed, "new"), tmp_path / "a.nc", append=True)
    with pytest.raises(GeoanomError, match=r"'.*missing.zarr': no result store is there"):
        ga.write_dataset(scored(feed, "new"), tmp_path / "missing.zarr", append=True)


class Killed(RuntimeError):
    """What the failing block raises: the write stops there, as a killed one would."""


def failing_from(result, step):
    """`result` whose fused irregularity raises for any block at or after time step `step`."""
    def block(values, block_info=None):
        if block_info[0]["array-location"][0][1] > step:
            raise Killed(f"block ending after step {step}")
        return values

    out = result.copy()
    var = result["fused_irregularity"]
    out["fused_irregularity"] = var.copy(data=var.data.map_blocks(block, dtype=var.dtype))
    return out


@pytest.mark.parametrize("how", ["append", "resume"])
def test_a_killed_write_resumes_where_it_stopped(feed, tmp_path, reference, monkeypatch, how):
    monkeypatch.setattr(append, "REGION_BYTES", 1)  # one time chunk (4 months) per region
    if how == "append":
        target = ga.write_dataset(scored(feed, "first"), tmp_path / "anomalies.zarr")
        new, done = scored(feed, "new"), 8
    else:
        target, new, done = tmp_path / "anomalies.zarr", scored(feed, "all"), 8
    with pytest.raises(Killed):
        ga.write_dataset(failing_from(new, done), target, append=how == "append", resume=how == "resume")
    progress = json.loads(zarr.open_group(target, mode="r").attrs[append.PROGRESS_ATTR])
    assert progress["done"] == done  # the regions before the failing block are recorded as written
    # never read as a result meanwhile; the advice is to finish it, never to delete the record
    said = ("holds an append of 2002-01-01 to 2002-12-01 that was interrupted \\(8 of 12 steps written\\); run "
            "that append again to finish it: the 24 steps stored before it are intact\\.") if how == "append" else \
        "is a write of 2000-01-01 to 2002-12-01 that was interrupted \\(8 of 36 steps written\\), not yet a result"
    with pytest.raises(InputFileError, match=said) as caught:
        ga.open_cube(target, variables=["fused_irregularity"])
    assert "delete" not in str(caught.value)
    what = "append" if how == "append" else "write"
    with pytest.raises(GeoanomError, match=f"holds an interrupted {what} of .*; run that {what} again to finish "
                                           "it first"):  # only the same steps finish it
        ga.write_dataset(new.isel(time=slice(0, 4)), target, append=True)
    ga.write_dataset(new, target, append=how == "append", resume=how == "resume")
    assert_same_store(target, reference, history=how == "resume")


def test_an_interrupted_new_write_continued_with_another_model_says_so(feed, tmp_path, monkeypatch):
    """Trial A: a killed `score --out` run again with another model was told 'cannot append'."""
    monkeypatch.setattr(append, "REGION_BYTES", 1)
    target = tmp_path / "km.zarr"
    with pytest.raises(Killed):
        ga.write_dataset(failing_from(scored(feed, "all"), 8), target, resume=True)
    cube = ga.open_cube(feed["all"], chunks={"time": 4})
    other = ga.fit(cube.isel(time=slice(0, 24)), variables=["tas"], precision=1, detectors=["gmm", "kmeans"])
    with pytest.raises(GeoanomError, match=r"^cannot finish the interrupted write of 2000-01-01 to 2002-12-01 to "
                                           r"'.*km\.zarr': it was scored by another model .*; run that write again, "
                                           r"or replace it \(--overwrite, or overwrite='force' in write_dataset\)\.$"):
        ga.write_dataset(other.score(cube), target, resume=True)
    ga.write_dataset(other.score(cube), target, resume=True, overwrite="force")  # started afresh
    written = xr.open_zarr(target)
    assert written.sizes["time"] == 36 and "geoanom_incomplete" not in written.attrs


def test_an_interrupted_write_is_judged_by_the_steps_it_wrote(feed, tmp_path, monkeypatch):
    """Replacing it (score --out run again) compares the written steps only: the others hold no date yet."""
    from geoanom.io.overwrite import replace_problem

    monkeypatch.setattr(append, "REGION_BYTES", 1)
    target, result = tmp_path / "km.zarr", scored(feed, "all")
    with pytest.raises(Killed):
        ga.write_dataset(failing_from(result, 8), target, resume=True)
    times = result["time"].values
    assert replace_problem(target, times) is None
    assert replace_problem(target, times[8:]) == ("holds 8 time steps (2000-01-01 to 2000-08-01) the new result "
                                                  "does not, which would be lost")


def test_region_bounds_follow_the_store_chunks():
    assert append.region_bounds(22, 36, 4) == [(22, 24), (24, 28), (28, 32), (32, 36)]
    assert append.region_bounds(0, 10, 4, per_region=2) == [(0, 8), (8, 10)]


# --- the command line -------------------------------------------------------


def run(capsys, *args):
    status = main([str(arg) for arg in args])
    return status, capsys.readouterr()


def test_cli_score_out_then_append_equals_one_write(feed, tmp_path, capsys):
    out = tmp_path / "anomalies.zarr"
    status, printed = run(capsys, "score", feed["model"], feed["first"], "--var", "tas", "--out", out)
    assert status == 0 and "wrote 24 time steps (2000-01-01 to 2001-12-01)" in printed.out, printed.err
    status, printed = run(capsys, "score", feed["model"], feed["new"], "--var", "tas", "--append", out)
    assert status == 0 and "appended 12 time steps (2002-01-01 to 2002-12-01)" in printed.out, printed.err
    whole = tmp_path / "whole.zarr"
    assert run(capsys, "score", feed["model"], feed["all"], "--out", whole)[0] == 0
    assert_same_store(out, whole, history=False, chunks=False)  # open_cube's default chunks follow the size
    before = digest(out)
    status, printed = run(capsys, "score", feed["model"], feed["new"], "--var", "tas", "--append", out)
    lines = printed.err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "overlap the stored ones" in lines[0], printed.err
    assert digest(out) == before


@pytest.mark.parametrize("args, fragment", [
    (("--append", "{tmp}/missing.zarr"), "no result store is there"),
    (("--append", "{tmp}/a.nc"), "must end in .zarr"),
    (("--var", "psl", "--out", "{tmp}/b.zarr"), "scores tas, not psl"),
    (("--out", "{new}"), "is the input"),
])
def test_cli_score_refusals_are_one_sentence(feed, tmp_path, capsys, args, fragment):
    args = [a.format(tmp=tmp_path, new=feed["new"]) for a in args]
    status, printed = run(capsys, "score", feed["model"], feed["new"], *args)
    lines = printed.err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("geoanom: error: ") and fragment in lines[0], \
        printed.err


# A store of 40 steps, then 200 more appended in regions of 10 steps whose blocks take 30 ms each:
# long enough to be killed (SIGKILL, nothing cleans up) once the progress mark shows regions written.
KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, pandas as pd, xarray as xr, dask.array as da
    import geoanom as ga
    from geoanom.io import append

    def slow(block):
        time.sleep(0.03)
        return block

    def feed(slow_blocks):
        data = da.random.default_rng(0).normal(size=(240, 20, 20), chunks=(10, 20, 20)).astype("float32")
        ds = xr.Dataset({"x": (("time", "lat", "lon"), data.map_blocks(slow) if slow_blocks else data)},
                        coords={"time": pd.date_range("2000-01-01", periods=240, freq="D")})
        return ds.isel(time=slice(0, 40)), ds.isel(time=slice(40, None))

    if __name__ == "__main__":
        append.REGION_BYTES = 1  # one time chunk per region
        first, new = feed(False)
        ga.write_dataset(first, sys.argv[1])
        print("appending", flush=True)
        ga.write_dataset(new, sys.argv[1], append=True)
        print("done", flush=True)
""")


def test_an_append_killed_by_sigkill_resumes_to_the_uninterrupted_store(tmp_path, monkeypatch):
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    target = tmp_path / "killed.zarr"
    process = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "appending"
    deadline = time.monotonic() + 60
    while (append.pending_progress(target) or {}).get("done", 0) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait(timeout=30)
    assert "done" not in process.stdout.read()
    process.stdout.close()
    done = append.pending_progress(target)["done"]
    assert 20 <= done < 200  # killed in the middle, with regions recorded
    sys.path.insert(0, str(tmp_path))
    monkeypatch.setattr(append, "REGION_BYTES", 1)
    try:
        import writer
    finally:
        sys.path.remove(str(tmp_path))
    first, new = writer.feed(False)
    ga.write_dataset(new, target, append=True)  # continues from `done`
    whole = ga.write_dataset(xr.concat([first, new], "time"), tmp_path / "whole.zarr")
    with xr.open_zarr(target) as got, xr.open_zarr(whole) as expected:
        xr.testing.assert_identical(got.drop_attrs(deep=False), expected.drop_attrs(deep=False))
    assert append.pending_progress(target) is None


def test_another_calendar_is_refused(tmp_path):
    def steps(start, calendar):
        times = xr.date_range(start, periods=3, freq="MS", calendar=calendar, use_cftime=calendar != "standard")
        return xr.Dataset({"x": (("time", "lat"), np.ones((3, 2), "float32"))},
                          coords={"time": times, "lat": [10.0, 20.0]}).chunk({"time": 1})

    store = ga.write_dataset(steps("2000-01-01", "standard"), tmp_path / "gregorian.zarr")
    before = digest(store)
    with pytest.raises(GeoanomError, match=r"'.*gregorian.zarr': its calendar is standard, the new result's "
                       r"360_day"):
        ga.write_dataset(steps("2001-01-01", "360_day"), store, append=True)
    assert digest(store) == before
    ga.write_dataset(steps("2001-01-01", "proleptic_gregorian"), store, append=True)  # the same dates since 1582
    assert xr.open_zarr(store).sizes["time"] == 6


def test_resume_over_a_finished_output_keeps_it_until_the_new_one_is_whole(feed, first):
    before = digest(first)
    with pytest.raises(Killed):
        ga.write_dataset(failing_from(scored(feed, "all"), 8), first, resume=True)
    assert digest(first) == before  # written aside and moved into place only when whole, as without resume
