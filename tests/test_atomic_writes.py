"""Pictures and tables geoanom writes are replaced only once written whole (geoanom/atomic.py)."""

import errno
import os

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from geoanom.atomic import replacing  # noqa: E402
from geoanom.plot.layout import saved  # noqa: E402


def _full_disk(self, fname, *args, **kwargs):
    with open(fname, "wb") as handle:
        handle.write(b"half a picture")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_picture_leaves_the_earlier_one(tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    saved(Figure(), path)
    before = path.read_bytes()
    monkeypatch.setattr(Figure, "savefig", _full_disk)
    with pytest.raises(OSError) as caught:
        saved(Figure(), path)
    assert caught.value.filename == str(path)  # the path given, not the temporary
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["map.png"]  # no temporary left


def test_a_picture_keeps_its_format_and_permissions(tmp_path):
    saved(Figure(), tmp_path / "map.pdf")
    saved(Figure(), tmp_path / "plain")  # no suffix: matplotlib's default format, at the very path
    assert (tmp_path / "map.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "plain").read_bytes().startswith(b"\x89PNG")
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~mask


def test_replacing_makes_the_folder_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "new" / "table.csv"
    with pytest.raises(RuntimeError):
        with replacing(target, make_folder=True) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("drawing failed")
    assert not target.exists() and os.listdir(tmp_path / "new") == []


def test_a_missing_folder_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(OSError) as caught:
        saved(Figure(), tmp_path / "missing" / "map.png")
    assert caught.value.filename == str(tmp_path / "missing" / "map.png")
