"""The command never writes over its input, and checks every output path before reading any data.

Inputs are real files made here (a NetCDF file, a Zarr store); the commands
run in this process (the ``refused`` fixture), as the console script runs them.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
import xarray as xr


def assert_refused(process, *fragments):
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoanom: error: "), process.stderr
    assert "Traceback" not in process.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def digest(path):
    """A hash of a file, or of every file in a folder: any change to the input shows."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    hashed = hashlib.sha256()
    for file in files:
        hashed.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        hashed.update(file.read_bytes())
    return hashed.hexdigest()


@pytest.fixture
def nc_input(cube_file, tmp_path):
    """A copy of the synthetic cube's NetCDF file that a failing check could destroy without harm."""
    path = tmp_path / "tas.nc"
    shutil.copy(cube_file, path)
    return path


@pytest.fixture
def zarr_input(cube_file, tmp_path):
    path = tmp_path / "tas.zarr"
    with xr.open_dataset(cube_file) as cube:
        cube.to_zarr(path, zarr_format=2)
    return path


def detect(*args):
    return ("detect", *args, "--var", "tas", "--train-end", "2005", "--precision", "2", "--detectors", "gmm")


def test_out_equal_to_the_netcdf_input_is_refused_and_the_input_kept(nc_input, refused):
    before = digest(nc_input)
    assert_refused(refused(*detect(nc_input), "--out", nc_input), "--out", "is the input", "tas.nc")
    assert digest(nc_input) == before


def test_outputs_in_or_at_a_zarr_input_are_refused(zarr_input, tmp_path, refused):
    before = digest(zarr_input)
    assert_refused(refused(*detect(zarr_input), "--out", zarr_input), "is the input")
    assert_refused(refused(*detect(zarr_input), "--out", zarr_input / "scores.nc"), "lies inside the input")
    assert_refused(refused(*detect(zarr_input), "--out", tmp_path / "o.zarr", "--model-out", zarr_input),
                   "--model-out", "is the input")
    assert_refused(refused(*detect(zarr_input), "--out", tmp_path / "o.zarr", "--plot", zarr_input / "map.png"),
                   "--plot", "inside the input")
    assert digest(zarr_input) == before


def test_a_glob_and_a_symbolic_link_are_followed(nc_input, tmp_path, refused):
    pattern = str(tmp_path / "*.nc")
    assert_refused(refused(*detect(pattern), "--out", nc_input), "is the input")
    assert_refused(refused(*detect(f"file://{nc_input}"), "--out", nc_input), "is the input")
    link = tmp_path / "link.nc"
    link.symlink_to(nc_input)
    assert_refused(refused(*detect(nc_input), "--out", link), "is the input")
    assert xr.open_dataset(nc_input)["tas"].size > 0


def test_an_output_store_holding_the_input_is_refused(cube_file, tmp_path, refused):
    store = tmp_path / "o.zarr"
    store.mkdir()
    inside = store / "tas.nc"
    shutil.copy(cube_file, inside)
    assert_refused(refused(*detect(inside), "--out", store), "holds the input")
    assert inside.exists()


def test_outputs_are_checked_before_the_input_is_read(tmp_path, refused):
    missing = tmp_path / "missing.nc"  # never opened: the bad output is found first
    out = ("--out", tmp_path / "o.zarr")
    assert_refused(refused(*detect(missing), *out, "--model-out", tmp_path / "m.pkl"), "--model-out", ".npz or .zarr")
    assert_refused(refused(*detect(missing), *out, "--plot", tmp_path / "map.pdf"), "--plot", ".png")
    assert_refused(refused(*detect(missing), *out, "--top-tiles", tmp_path / "t.txt"), "--top-tiles", ".csv")
    assert_refused(refused(*detect(missing), "--out", tmp_path / "o.nc", "--model-out", tmp_path / "o.nc"),
                   ".npz or .zarr")
    assert_refused(refused(*detect(missing), "--out", tmp_path / "same.zarr", "--model-out",
                           tmp_path / "same.zarr"), "--out", "--model-out", "same path")
    assert_refused(refused(*detect(missing), "--out", tmp_path / "o.zarr", "--explain", "20,-80",
                           "--explain-out", tmp_path / "o.zarr" / "cell.png"), "--explain-out", "inside the other")
    assert not (tmp_path / "o.zarr").exists()


def test_a_folder_where_a_file_goes_and_a_file_in_the_way(tmp_path, refused):
    (tmp_path / "taken.nc").mkdir()
    (tmp_path / "a_file").write_text("")
    missing = tmp_path / "missing.nc"
    assert_refused(refused(*detect(missing), "--out", tmp_path / "taken.nc"), "is a folder")
    assert_refused(refused(*detect(missing), "--out", tmp_path / "a_file" / "o.zarr"), "a_file", "not a folder")
    (tmp_path / "file.zarr").write_text("")
    assert_refused(refused(*detect(missing), "--out", tmp_path / "file.zarr"), "is a file")


def test_a_read_only_folder_is_refused_first(tmp_path, refused):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: nothing to refuse
            pytest.skip("running as a user who can write to a read-only folder")
        assert_refused(refused(*detect(tmp_path / "missing.nc"), "--out", locked / "o.zarr"), "not writable")
    finally:
        locked.chmod(0o700)


def test_regions_refuses_labels_over_its_input(nc_input, refused):
    before = digest(nc_input)
    assert_refused(refused("regions", nc_input, "--var", "tas", "--out", nc_input.with_suffix(".csv"),
                           "--labels-out", nc_input), "--labels-out", "is the input")
    assert digest(nc_input) == before


def test_federate_refuses_outputs_over_its_inputs(nc_input, tmp_path, refused):
    common = ("federate", nc_input, "--var", "tas", "--rounds", "1")
    assert_refused(refused(*common, "--out", tmp_path), "--out", "holds the input")
    assert_refused(refused(*common, "--out", tmp_path / "fed", "--audit-log", nc_input), "--audit-log",
                   "is the input")
    assert_refused(refused(*common, "--out", tmp_path / "fed", "--audit-log", tmp_path / "fed" / "model.npz"),
                   "--audit-log", "same path")
    assert_refused(refused(*common, "--out", nc_input), "is the input")
    grid = tmp_path / "clients.nc"
    shutil.copy(nc_input, grid)
    assert_refused(refused(*common, "--clients", grid, "--out", tmp_path / "fed", "--audit-log", grid),
                   "--audit-log", "clients.nc")


def test_the_demo_refuses_a_file_for_its_folder(tmp_path, refused):
    (tmp_path / "taken").write_text("")
    assert_refused(refused("demo", "--out", tmp_path / "taken"), "taken", "is a file")


def test_os_errors_are_one_precise_sentence():
    import errno

    from geoanom.cli.commands import os_error_sentence

    sentence = os_error_sentence(FileExistsError(errno.EEXIST, "File exists", "top.csv"))
    assert sentence == "cannot write 'top.csv': something is already there that could not be replaced."
    assert "disk is full" in os_error_sentence(OSError(errno.ENOSPC, "No space left on device", "o.nc"))
    assert os_error_sentence(PermissionError(errno.EACCES, "Permission denied", "m.npz")).endswith(
        "'m.npz': permission denied.")


def test_a_folder_or_store_geoanom_did_not_write_is_refused_and_kept(nc_input, tmp_path, refused):
    notes = tmp_path / "notzarr.zarr"
    notes.mkdir()
    (notes / "notes.txt").write_text("important")
    assert_refused(refused(*detect(nc_input, "--out", notes)),
                   f"cannot write --out '{notes}': it is a folder geoanom did not write; choose a new path")
    thesis = tmp_path / "proj.zarr" / "sub" / "thesis.tex"
    thesis.parent.mkdir(parents=True)
    thesis.write_text("chapter 1")
    assert_refused(refused(*detect(nc_input, "--out", tmp_path / "r.zarr", "--model-out", tmp_path / "proj.zarr")),
                   "--model-out", "is a folder geoanom did not write")
    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"x": ("n", [1.0, 2.0])}).to_zarr(foreign, zarr_format=2)
    assert_refused(refused(*detect(nc_input, "--out", foreign)), "is a Zarr store geoanom did not write")
    assert (notes / "notes.txt").read_text() == "important" and thesis.read_text() == "chapter 1"
    assert xr.open_zarr(foreign)["x"].values.tolist() == [1.0, 2.0]
    assert not (tmp_path / "r.zarr").exists()  # refused before any work


def test_stores_geoanom_wrote_are_replaced(nc_input, tmp_path, refused):
    out, model = tmp_path / "r.zarr", tmp_path / "m.zarr"
    for _ in range(2):  # the second run replaces the first's result and model
        run = refused(*detect(nc_input, "--out", out, "--model-out", model), "-q")
        assert run.returncode == 0, run.stderr
    assert xr.open_zarr(out).attrs["geoanom_written_by"].startswith("geoanom ")
    assert "geoanom_written_by" in xr.open_zarr(model).attrs


def test_file_urls_are_written_as_local_paths(nc_input, tmp_path, refused, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("fo.nc", "fo.zarr"):
        run = refused(*detect(nc_input, "--out", f"file://{tmp_path}/x/{name}"), "-q")
        assert run.returncode == 0, run.stderr
        assert xr.open_dataset(tmp_path / "x" / name, engine="zarr" if name.endswith("zarr") else None).sizes
    assert not (tmp_path / "file:").exists()
    assert_refused(refused(*detect(nc_input, "--out", "s3://bucket/fo.zarr")), "must be local paths, not URLs")


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_where_no_file_can_be_made_is_refused_before_work(nc_input, tmp_path, refused):
    out = tmp_path / "r.nc"
    assert_refused(refused(*detect(nc_input, "--out", out, "--model-out", "/proc/m.npz")),
                   "--model-out '/proc/m.npz'", "no file can be made in the folder '/proc'")
    assert not out.exists()  # before any work (os.access says yes to root here; the probe does not)
