"""Nothing silently damaged: killed writes, corrupt chunks, ±inf, truncated files.

Real files and real processes: a writer is a subprocess killed by SIGTERM or
SIGKILL in mid-write; corrupt data are real bytes overwritten in a real Zarr
chunk or NetCDF4 file; a truncated NetCDF3 file is a real file cut short.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.cli import main
from geoanom.errors import CorruptDataError, GeoanomError, InputFileError
from geoanom.io import write
from geoanom.io.overwrite import written_by_geoanom
from geoanom.io.safety import count_infinite, infinite_message
from geoanom.io.temporaries import remove_stale_temporaries
from geoanom.testing import synthetic_cube

# A lazy cube whose blocks take 50 ms each to compute: a write of 48 blocks on
# 2 threads lasts over a second, long enough to be killed in the middle.
SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, xarray as xr, dask.array as da
    import geoanom as ga

    def slow(block):
        time.sleep(0.05)
        return block

    data = da.random.default_rng(0).normal(size=(480, 40, 40), chunks=(10, 40, 40)).map_blocks(slow)
    ds = xr.Dataset({"x": (("time", "lat", "lon"), data)})
    print("writing", flush=True)
    ga.write_dataset(ds, sys.argv[1])
    print("done", flush=True)
""")


HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]  # as temporaries name their host


def leftovers(target):
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp-"))


def start_and_kill(target, sig):
    """Start the slow writer, wait until its temporary holds data, and send `sig`; return the exit code."""
    process = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 30
    while not leftovers(target) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert leftovers(target), "the writer never started its temporary"
    time.sleep(0.3)  # some blocks written, most not
    process.send_signal(sig)
    code = process.wait(timeout=60)
    assert "done" not in process.stdout.read()  # really killed in the middle
    return code


@pytest.mark.parametrize("name", ["out.zarr", pytest.param("out.nc", marks=pytest.mark.slow)])
def test_sigterm_removes_the_temporary_and_keeps_the_old_output(tmp_path, name):
    target = tmp_path / name
    old, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=3)
    ga.write_dataset(old, target)
    code = start_and_kill(target, signal.SIGTERM)
    assert code == -signal.SIGTERM  # ended by the signal, as the default handler would
    assert leftovers(target) == []
    xr.testing.assert_allclose(ga.open_cube(target).load(), ga.open_cube(target).load())
    assert ga.open_cube(target)["tas"].shape == old["tas"].shape  # the earlier output, intact


@pytest.mark.parametrize("name", ["out.zarr", pytest.param("out.nc", marks=pytest.mark.slow)])
def test_sigkill_leftover_never_reads_as_a_result_and_is_removed_by_the_next_write(tmp_path, name):
    target = tmp_path / name
    code = start_and_kill(target, signal.SIGKILL)
    assert code == -signal.SIGKILL
    (left,) = leftovers(target)
    with pytest.raises(GeoanomError) as caught:  # marked unfinished, or not even readable
        ga.open_cube(tmp_path / left)
    assert left in str(caught.value)
    if name.endswith(".zarr"):  # a store always has its metadata: the mark is what refuses it
        assert "unfinished output of an interrupted geoanom write" in str(caught.value)
        assert xr.open_zarr(tmp_path / left).attrs["geoanom_incomplete"] == "true"
    cube, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=3)
    ga.write_dataset(cube, target)
    assert leftovers(target) == [] and ga.open_cube(target)["tas"].shape == cube["tas"].shape


def test_the_previous_sigterm_handler_is_restored_after_a_write(tmp_path):
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        ga.write_dataset(synthetic_cube(n_years=1, n_lat=3, n_lon=3)[0], tmp_path / "out.zarr")
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.slow
def test_sigterm_with_an_application_handler_calls_it_and_exits_143(tmp_path):
    target = tmp_path / "out.zarr"
    script = "import signal\nsignal.signal(signal.SIGTERM, lambda s, f: print('handler', flush=True))\n" + SLOW_WRITER
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    while not leftovers(target):
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143 and "handler" in process.stdout.read()
    assert leftovers(target) == [] and not target.exists()


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "out.zarr"
    mine = tmp_path / f".out.zarr.tmp-{HOST}-{os.getpid()}-0badcafe"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f".out.zarr.tmp-{HOST}-{int(dead.stdout)}-deadbeef"
    elsewhere = tmp_path / f".out.zarr.tmp-otherhost-{int(dead.stdout)}-feedf00d"
    old_style = tmp_path / ".out.zarr.tmp-1234abcd"
    another_target = tmp_path / f".out.zarr.tmp-1.zarr.tmp-{HOST}-{os.getpid()}-0badcafe"
    for path in (mine, gone, elsewhere, old_style, another_target):
        path.mkdir()
    removed = remove_stale_temporaries(target)
    assert sorted(p.name for p in removed) == sorted([gone.name, old_style.name])
    assert mine.exists() and elsewhere.exists() and another_target.exists()


@pytest.mark.parametrize("name", ["done.zarr", "done.nc"])
def test_a_finished_output_carries_no_mark(tmp_path, name):
    cube, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=3)
    path = ga.write_dataset(cube, tmp_path / name)
    assert "geoanom_incomplete" not in xr.open_dataset(path).attrs
    assert leftovers(path) == []


def test_an_output_marked_unfinished_is_refused(tmp_path):
    cube, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=3)
    cube.attrs["geoanom_incomplete"] = "true"
    cube.to_netcdf(tmp_path / "half.nc")
    with pytest.raises(InputFileError, match=r"half.nc' is an unfinished output"):
        ga.open_cube(tmp_path / "half.nc")


# -- corrupt data ----------------------------------------------------------------------
@pytest.fixture
def stored(tmp_path):
    cube, _ = synthetic_cube(n_years=4, n_lat=16, n_lon=24)
    cube = cube.load()
    zarr_path, nc_path = tmp_path / "tas.zarr", tmp_path / "tas.nc"
    cube.to_zarr(zarr_path, encoding={"tas": {"chunks": (12, 16, 24)}}, zarr_format=2)
    cube.to_netcdf(nc_path, encoding={"tas": {"zlib": True, "chunksizes": (12, 16, 24)}})
    return zarr_path, nc_path


def damage(path, offset, n=64):
    data = bytearray(path.read_bytes())
    data[offset:offset + n] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def corrupt(stored, kind):
    zarr_path, nc_path = stored
    if kind == "zarr":
        damage(zarr_path / "tas" / "2.0.0", 20)  # inside the blosc stream of the third chunk
        return zarr_path
    damage(nc_path, nc_path.stat().st_size // 2)  # inside the compressed data
    return nc_path


@pytest.mark.parametrize("kind", ["zarr", "netcdf"])
def test_corrupt_chunk_names_file_and_variable_when_computed(stored, kind):
    path = corrupt(stored, kind)
    cube = ga.open_cube(path)  # lazy: nothing read yet
    with pytest.raises(CorruptDataError) as caught:
        cube["tas"].mean().compute()
    message = str(caught.value)
    assert f"variable 'tas' from '{path}'" in message and "corrupt" in message and "\n" not in message


@pytest.mark.parametrize("kind", ["zarr", "netcdf"])
def test_corrupt_chunk_on_the_command_line_is_exit_2_with_one_sentence(stored, kind, tmp_path, capsys):
    path = corrupt(stored, kind)
    code = main(["detect", str(path), "--var", "tas", "--train-end", "2001", "--precision", "1",
                 "--out", str(tmp_path / "out.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and f"'{path}'" in err and "variable 'tas'" in err and "Traceback" not in err


def test_intact_files_read_the_same_through_the_guard(stored):
    zarr_path, nc_path = stored
    for path in (zarr_path, nc_path):
        guarded = ga.open_cube(path)["tas"].values
        plain = xr.open_dataset(path)["tas"].values
        np.testing.assert_array_equal(guarded, plain)


def test_a_guarded_cube_pickles_for_distributed_workers(stored):
    import pickle

    cube = ga.open_cube(stored[0])
    graph = dict(cube["tas"].data.__dask_graph__())
    restored = pickle.loads(pickle.dumps(graph))
    assert len(restored) == len(graph)
    assert pickle.loads(pickle.dumps(cube))["tas"].mean().compute() == pytest.approx(float(cube["tas"].mean()))


# -- ±inf -----------------------------------------------------------------------------
@pytest.fixture
def with_infinities(tmp_path):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=5)
    values = cube["tas"].values.copy()
    values[3, 1, 2], values[20, 0, 0], values[20, 3, 4] = np.inf, -np.inf, np.inf
    cube["tas"].values = values
    path = tmp_path / "inf.nc"
    cube.to_netcdf(path)
    return path


def test_infinities_are_counted_and_treated_as_missing(with_infinities):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning anywhere
        cube = ga.open_cube(with_infinities)
        tas = cube["tas"].values
        assert np.isinf(tas).sum() == 0 and np.isnan(tas).sum() == 3
        assert count_infinite(cube) == {"tas": 3}
        assert count_infinite(cube.sel(time=slice("2001", None))) == {"tas": 2}  # only the times kept
        assert count_infinite(cube.isel(time=slice(0, 3))) == {"tas": 0}
    message = infinite_message(count_infinite(cube), f"'{with_infinities}'")
    assert message == f"tas holds 3 infinite values in '{with_infinities}'; they are treated as missing."


def test_infinite_count_is_lazy_and_computed_with_other_work(with_infinities):
    import dask

    cube = ga.open_cube(with_infinities)
    lazy = count_infinite(cube, compute=False)
    mean, count = dask.compute(cube["tas"].mean(), lazy["tas"])
    assert int(count) == 3 and np.isfinite(float(mean))


def test_fit_on_infinities_raises_no_runtime_warning(with_infinities):
    cube = ga.open_cube(with_infinities)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(ga.GeoanomWarning, match=r"tas holds 1 infinite value in the training period of .*inf\.nc"):
            model = ga.fit(cube.sel(time=slice(None, "2000")), precision=1, detectors="gmm")
        result = model.score(cube).compute()
    assert np.isnan(result["fused_irregularity"].values[3, 1, 2])
    assert model.attrs["infinite_values"] == {"tas": 1}  # kept with the model, as plain data


# -- truncated NetCDF3 -----------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_netcdf3_says_truncated(tmp_path, keep):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=5)
    path = tmp_path / "classic.nc"
    cube.to_netcdf(path, format="NETCDF3_64BIT")
    assert path.read_bytes()[:4] == b"CDF\x02"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputFileError) as caught:
        ga.open_cube(path)
    assert str(caught.value).startswith(f"'{path}' is truncated: the file is shorter than its header says")
    assert "repeat" not in str(caught.value)


def test_intact_netcdf3_still_opens(tmp_path):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=5)
    path = tmp_path / "classic.nc"
    cube.to_netcdf(path, format="NETCDF3_CLASSIC")
    np.testing.assert_allclose(ga.open_cube(path)["tas"].values, cube["tas"].values, rtol=1e-6)


def test_real_netcdf3_file_cut_short(tmp_path):
    """iris-sample-data ships space_weather.nc, a NetCDF3 classic file: intact it passes, cut short it is named."""
    import iris_sample_data

    from geoanom.io.safety import check_netcdf3_length

    original = os.path.join(iris_sample_data.path, "space_weather.nc")
    check_netcdf3_length(original)
    cut = tmp_path / "space_weather.nc"
    cut.write_bytes(open(original, "rb").read()[:-1000])
    with pytest.raises(InputFileError, match=r"is truncated: the file is shorter than its header says \(247,208 of"):
        ga.open_cube(cut)


@pytest.mark.slow
def test_corrupt_chunk_read_by_a_distributed_worker_is_the_same_sentence(stored):
    """The checked array travels to worker processes, and its error travels back."""
    distributed = pytest.importorskip("distributed")
    path = corrupt(stored, "zarr")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        cube = ga.open_cube(path, chunks={"time": 12})  # the third chunk is the damaged one
        assert float(cube["tas"].isel(time=slice(0, 24)).mean().compute()) > 200  # intact chunks read remotely
        with pytest.raises(CorruptDataError, match=f"variable 'tas' from '{path}'"):
            cube["tas"].mean().compute()


def test_write_dataset_refuses_to_replace_what_geoanom_did_not_write(tmp_path):
    cube, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=3)
    folder = tmp_path / "notzarr.zarr"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "thesis.tex").write_text("chapter 1")
    with pytest.raises(GeoanomError, match=r"notzarr\.zarr' is a folder geoanom did not write; choose a new path"):
        ga.write_dataset(cube, folder)
    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"x": ("n", [1.0])}).to_zarr(foreign, zarr_format=3, consolidated=False)
    with pytest.raises(GeoanomError, match="is a Zarr store geoanom did not write"):
        ga.write_dataset(cube, foreign)
    (tmp_path / "folder.nc").mkdir()
    with pytest.raises(GeoanomError, match=r"folder\.nc' is a folder, not a file"):
        ga.write_dataset(cube, tmp_path / "folder.nc")
    assert (folder / "sub" / "thesis.tex").read_text() == "chapter 1" and xr.open_zarr(foreign, consolidated=False)["x"].size == 1
    ours = ga.write_dataset(cube, tmp_path / "ours.zarr", zarr_format=3)  # marked, so replaced
    assert ga.write_dataset(cube, ours) == ours and written_by_geoanom(ours)
    (tmp_path / "empty.zarr").mkdir()  # nothing to lose
    assert ga.write_dataset(cube, tmp_path / "empty.zarr").is_dir()


def test_write_errors_name_the_path_given_not_the_temporary(tmp_path, monkeypatch):
    from geoanom.io.npz import write_npz

    with pytest.raises(OSError) as caught:  # no such folder: mkstemp fails on the temporary's name
        write_npz(tmp_path / "missing" / "m.npz", {"a": np.zeros(2)})
    assert caught.value.filename == str(tmp_path / "missing" / "m.npz")

    def refuse(tmp, target):
        raise PermissionError(13, "Permission denied", str(tmp))

    monkeypatch.setattr(write, "_move_into_place", refuse)
    with pytest.raises(PermissionError) as caught:
        ga.write_dataset(synthetic_cube(n_years=1, n_lat=3, n_lon=3)[0], tmp_path / "r.nc")
    assert caught.value.filename == str(tmp_path / "r.nc")
    assert list(tmp_path.glob(".r.nc.tmp-*")) == []


def test_write_and_compute_counts_infinities_in_the_same_computation(with_infinities, tmp_path, monkeypatch):
    from geoanom.io import safety

    reads = []
    read = safety.CheckedArray._read
    monkeypatch.setattr(safety.CheckedArray, "_read", lambda self, key: reads.append(key) or read(self, key))
    cube = ga.open_cube(with_infinities)
    reads.clear()  # open_cube read a few steps to look for undeclared fill values (io/fill_values.py)
    out = (cube["tas"] * 2).to_dataset(name="twice")
    path, counts = write.write_and_compute(out, tmp_path / "twice.zarr", count_infinite(cube, compute=False))
    assert {name: int(n) for name, n in counts.items()} == {"tas": 3}
    # one computation: at most one more read of each chunk (xarray's store renames the keys it would share)
    assert len(reads) <= 2 * cube["tas"].data.npartitions
    assert int(np.isnan(xr.open_zarr(path)["twice"]).sum()) == 3
