"""Property tests of geoanom.geohash against pygeohash as the reference.

pygeohash is a test-only dependency. It decides each bit by bisection with
``value >= midpoint`` (all midpoints are exact in float64), so it is an exact
reference for cell membership, with one deliberate difference: pygeohash puts
longitude 180 in the easternmost column, while geoanom wraps it to -180 (the
same meridian), see ``test_longitude_180_is_wrapped_to_minus_180``.
"""

from __future__ import annotations

import math

import numpy as np
import pygeohash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoanom import geohash as gh

ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
PRECISIONS = range(1, 13)

# pygeohash's name for each of our directions, as a path of get_adjacent steps.
PYGEOHASH_PATH = {
    "n": ("top",),
    "s": ("bottom",),
    "e": ("right",),
    "w": ("left",),
    "ne": ("top", "right"),
    "nw": ("top", "left"),
    "se": ("bottom", "right"),
    "sw": ("bottom", "left"),
}
OPPOSITE = {"n": "s", "ne": "sw", "e": "w", "se": "nw", "s": "n", "sw": "ne", "w": "e", "nw": "se"}

latitudes = st.floats(-90.0, 90.0, allow_nan=False)
longitudes = st.floats(-180.0, 180.0, allow_nan=False, exclude_max=True)
precisions = st.integers(1, 12)
hashes = st.text(alphabet=ALPHABET, min_size=1, max_size=12)

FAST = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bits(precision: int) -> tuple[int, int]:
    """(latitude bits, longitude bits) of a hash of ``precision`` characters."""
    return 5 * precision // 2, (5 * precision + 1) // 2


def reference_neighbour(h: str, direction: str) -> str:
    """The neighbour per pygeohash, or "" where pygeohash says there is none."""
    for step in PYGEOHASH_PATH[direction]:
        try:
            h = pygeohash.get_adjacent(h, step)
        except ValueError:
            return ""
    return h


# --------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------


@FAST
@given(lat=latitudes, lon=longitudes, precision=precisions)
def test_encode_matches_pygeohash(lat: float, lon: float, precision: int) -> None:
    got = gh.encode(lat, lon, precision)
    assert got.shape == ()
    assert got.dtype == np.dtype(f"<U{precision}")
    assert str(got) == pygeohash.encode(lat, lon, precision)


@FAST
@given(
    lat=latitudes,
    lon=longitudes,
)
def test_encode_all_precisions_are_prefixes_of_pygeohash_12(lat: float, lon: float) -> None:
    reference = pygeohash.encode(lat, lon, 12)
    for precision in PRECISIONS:
        assert str(gh.encode(lat, lon, precision)) == reference[:precision]


SPECIAL_LATS = [
    -90.0, math.nextafter(-90.0, 0.0), -45.0, -1e-300, -0.0, 0.0, 1e-300, 5e-324,
    22.5, 45.0, math.nextafter(90.0, 0.0), 90.0,
]
SPECIAL_LONS = [
    -180.0, math.nextafter(-180.0, 0.0), -90.0, -1e-300, -0.0, 0.0, 1e-300, -5e-324,
    90.0, 179.9999999, math.nextafter(180.0, 0.0),
]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_encode_special_points_match_pygeohash(precision: int) -> None:
    """Poles, equator, prime meridian and antimeridian, one vectorised call."""
    lat = np.array(SPECIAL_LATS)[:, None]
    lon = np.array(SPECIAL_LONS)[None, :]
    got = gh.encode(lat, lon, precision)
    assert got.shape == (len(SPECIAL_LATS), len(SPECIAL_LONS))
    expected = [[pygeohash.encode(a, o, precision) for o in SPECIAL_LONS] for a in SPECIAL_LATS]
    assert got.tolist() == expected


@FAST
@given(precision=precisions, data=st.data())
def test_encode_exact_cell_boundaries_match_pygeohash(precision: int, data: st.DataObject) -> None:
    """Points on a boundary (and one ulp either side) go where pygeohash puts them."""
    nlat, nlon = bits(precision)
    i = data.draw(st.integers(0, 2**nlat), label="lat boundary")
    j = data.draw(st.integers(0, 2**nlon - 1), label="lon boundary")
    lat0 = i * (180.0 / 2**nlat) - 90.0
    lon0 = j * (360.0 / 2**nlon) - 180.0
    for lat in (math.nextafter(lat0, -math.inf), lat0, math.nextafter(lat0, math.inf)):
        for lon in (math.nextafter(lon0, -math.inf), lon0, math.nextafter(lon0, math.inf)):
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon < 180.0):
                continue
            assert str(gh.encode(lat, lon, precision)) == pygeohash.encode(lat, lon, precision), (lat, lon)
    # the boundary itself belongs to the upper cell (lat 90 to the top row)
    lat_min, _, lon_min, _ = gh.bbox(gh.encode(lat0, lon0, precision))
    assert float(lon_min) == lon0
    assert float(lat_min) == (lat0 if lat0 < 90.0 else 90.0 - 180.0 / 2**nlat)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_longitude_180_is_wrapped_to_minus_180(precision: int) -> None:
    lats = [-90.0, -12.5, 0.0, 33.3, 90.0]
    got = gh.encode(lats, 180.0, precision).tolist()
    assert got == [pygeohash.encode(a, -180.0, precision) for a in lats]
    # the documented difference from pygeohash, which keeps 180 in the east column
    assert got != [pygeohash.encode(a, 180.0, precision) for a in lats]


@FAST
@given(
    lat=latitudes,
    m=st.integers(-180 * 1024, 180 * 1024 - 1),
    turns=st.integers(-5, 5),
    precision=precisions,
)
def test_any_finite_longitude_is_wrapped(lat: float, m: int, turns: int, precision: int) -> None:
    lon = m / 1024.0  # dyadic, so lon + 360 * turns and the wrap are exact
    shifted = lon + 360.0 * turns
    assert str(gh.encode(lat, shifted, precision)) == pygeohash.encode(lat, lon, precision)


def test_encode_broadcasts_and_keeps_shape() -> None:
    lat = np.array([[-10.0], [0.0], [10.0]])
    lon = np.array([-20.0, 0.0, 20.0, 40.0])
    got = gh.encode(lat, lon, 6)
    assert got.shape == (3, 4)
    assert got.dtype == np.dtype("<U6")
    assert got[2, 3] == pygeohash.encode(10.0, 40.0, 6)
    assert gh.encode([], [], 4).shape == (0,)
    assert gh.encode(np.float32(45.5), 7, 3).tolist() == pygeohash.encode(45.5, 7.0, 3)


@SLOW
@given(
    data=st.data(),
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    precision=precisions,
)
def test_encode_vectorised_equals_elementwise(data: st.DataObject, rows: int, cols: int, precision: int) -> None:
    lat = np.array(data.draw(st.lists(latitudes, min_size=rows * cols, max_size=rows * cols))).reshape(rows, cols)
    lon = np.array(data.draw(st.lists(longitudes, min_size=rows * cols, max_size=rows * cols))).reshape(rows, cols)
    got = gh.encode(lat, lon, precision)
    assert got.shape == (rows, cols)
    for index in np.ndindex(rows, cols):
        assert got[index] == str(gh.encode(lat[index], lon[index], precision))
        assert got[index] == pygeohash.encode(float(lat[index]), float(lon[index]), precision)


def test_encode_is_vectorised_across_blocks() -> None:
    """More points than one internal block, checked against pygeohash."""
    rng = np.random.default_rng(1)
    n = 150_001
    lat = rng.uniform(-90.0, 90.0, n)
    lon = rng.uniform(-180.0, 180.0, n)
    got = gh.encode(lat, lon, 7)
    sample = rng.choice(n, 2000, replace=False)
    assert [got[i] for i in sample] == [pygeohash.encode(lat[i], lon[i], 7) for i in sample]
    assert got[-1] == pygeohash.encode(lat[-1], lon[-1], 7)


# --------------------------------------------------------------------------
# decode and bbox
# --------------------------------------------------------------------------


@FAST
@given(lat=latitudes, lon=longitudes, precision=precisions)
def test_bbox_and_decode_contain_the_point(lat: float, lon: float, precision: int) -> None:
    h = gh.encode(lat, lon, precision)
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in gh.bbox(h))
    assert lat_min <= lat < lat_max or lat == lat_max == 90.0
    assert lon_min <= lon < lon_max
    centre_lat, centre_lon = (float(v) for v in gh.decode(h))
    assert lat_min < centre_lat < lat_max and lon_min < centre_lon < lon_max
    height, width = gh.cell_size(precision)
    assert lat_max - lat_min == height and lon_max - lon_min == width


@FAST
@given(h=hashes)
def test_decode_and_bbox_agree_with_pygeohash(h: str) -> None:
    exact = pygeohash.decode_exactly(h)
    lat, lon = gh.decode(h)
    assert (float(lat), float(lon)) == (exact.latitude, exact.longitude)
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in gh.bbox(h))
    assert (lat_min, lat_max) == (exact.latitude - exact.latitude_error, exact.latitude + exact.latitude_error)
    assert (lon_min, lon_max) == (exact.longitude - exact.longitude_error, exact.longitude + exact.longitude_error)
    box = pygeohash.get_bounding_box(h)
    assert (lat_min, lat_max, lon_min, lon_max) == (box.min_lat, box.max_lat, box.min_lon, box.max_lon)
    # the centre encodes back to the hash
    assert str(gh.encode(lat, lon, len(h))) == h


@pytest.mark.parametrize("precision", PRECISIONS)
def test_cell_size_matches_pygeohash(precision: int) -> None:
    exact = pygeohash.decode_exactly("s" * precision)
    assert gh.cell_size(precision) == (2 * exact.latitude_error, 2 * exact.longitude_error)


@SLOW
@given(items=st.lists(hashes, min_size=1, max_size=24), cols=st.integers(1, 4))
def test_decode_vectorised_equals_elementwise_mixed_lengths(items: list[str], cols: int) -> None:
    rows = -(-len(items) // cols)
    items = (items * cols)[: rows * cols]
    array = np.array(items).reshape(rows, cols)
    lat, lon = gh.decode(array)
    box = gh.bbox(array)
    assert lat.shape == lon.shape == (rows, cols)
    assert all(b.shape == (rows, cols) for b in box)
    for index in np.ndindex(rows, cols):
        h = str(array[index])
        assert (lat[index], lon[index]) == tuple(float(v) for v in gh.decode(h))
        assert tuple(b[index] for b in box) == tuple(float(v) for v in gh.bbox(h))


# --------------------------------------------------------------------------
# neighbours
# --------------------------------------------------------------------------


@FAST
@given(h=hashes)
def test_neighbours_agree_with_pygeohash(h: str) -> None:
    result = gh.neighbours(h)
    assert sorted(result) == sorted(PYGEOHASH_PATH)
    for direction, got in result.items():
        assert got.shape == ()
        assert str(got) == reference_neighbour(h, direction), direction


@FAST
@given(h=hashes)
def test_neighbours_are_symmetric_and_adjacent(h: str) -> None:
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in gh.bbox(h))
    height, width = gh.cell_size(len(h))
    for direction, got in gh.neighbours(h).items():
        n = str(got)
        if n == "":
            # only missing beyond a pole
            assert (direction.startswith("n") and lat_max == 90.0) or (direction.startswith("s") and lat_min == -90.0)
            continue
        assert len(n) == len(h) and n != h
        assert str(gh.neighbours(n)[OPPOSITE[direction]]) == h
        n_lat_min, _, n_lon_min, _ = (float(v) for v in gh.bbox(n))
        dlat = {"n": 1, "s": -1}.get(direction[0], 0)
        dlon = {"e": 1, "w": -1}.get(direction[-1], 0)
        assert n_lat_min == lat_min + dlat * height
        assert (n_lon_min - (lon_min + dlon * width)) % 360.0 == 0.0  # wraps at +-180


@pytest.mark.parametrize("precision", PRECISIONS)
def test_neighbours_at_poles_and_antimeridian(precision: int) -> None:
    corners = gh.encode([90.0, -90.0], [math.nextafter(180.0, 0.0), -180.0], precision)
    north_east, south_west = corners.tolist()
    top = gh.neighbours(north_east)
    assert str(top["n"]) == str(top["ne"]) == str(top["nw"]) == ""
    assert str(top["e"]) == str(gh.encode(90.0, -180.0, precision))  # wraps east to west
    assert str(top["s"]) == pygeohash.get_adjacent(north_east, "bottom")
    bottom = gh.neighbours(south_west)
    assert str(bottom["s"]) == str(bottom["se"]) == str(bottom["sw"]) == ""
    assert str(bottom["w"]) == str(gh.encode(-90.0, math.nextafter(180.0, 0.0), precision))
    both = gh.neighbours(corners)
    assert both["n"].tolist() == ["", str(gh.neighbours(south_west)["n"])]


@SLOW
@given(items=st.lists(hashes, min_size=1, max_size=12), cols=st.integers(1, 3))
def test_neighbours_vectorised_equals_elementwise(items: list[str], cols: int) -> None:
    rows = -(-len(items) // cols)
    items = (items * cols)[: rows * cols]
    array = np.array(items).reshape(rows, cols)
    result = gh.neighbours(array)
    for direction, got in result.items():
        assert got.shape == (rows, cols)
        for index in np.ndindex(rows, cols):
            assert got[index] == str(gh.neighbours(str(array[index]))[direction])


# --------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------


@FAST
@given(h=hashes, data=st.data())
def test_parent_is_a_prefix_containing_the_cell(h: str, data: st.DataObject) -> None:
    assert str(gh.parent(h)) == h[:-1]
    precision = data.draw(st.integers(1, len(h)), label="precision")
    p = str(gh.parent(h, precision))
    assert p == h[:precision]
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in gh.bbox(h))
    p_lat_min, p_lat_max, p_lon_min, p_lon_max = (float(v) for v in gh.bbox(p))
    assert p_lat_min <= lat_min < lat_max <= p_lat_max
    assert p_lon_min <= lon_min < lon_max <= p_lon_max


@SLOW
@given(items=st.lists(hashes, min_size=1, max_size=24), cols=st.integers(1, 4))
def test_parent_vectorised_equals_elementwise(items: list[str], cols: int) -> None:
    rows = -(-len(items) // cols)
    items = (items * cols)[: rows * cols]
    array = np.array(items).reshape(rows, cols)
    got = gh.parent(array)
    assert got.shape == (rows, cols)
    assert got.tolist() == [[h[:-1] for h in row] for row in array.tolist()]
    shortest = min(len(h) for h in items)
    assert gh.parent(array, shortest).tolist() == [[h[:shortest] for h in row] for row in array.tolist()]


def test_parent_of_one_character_is_the_root() -> None:
    assert gh.parent(["u", "u4"]).tolist() == ["", "u"]
    assert gh.parent("u4pr", 0).tolist() == ""


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        (math.nan, 0.0, "latitude is NaN"),
        ([0.0, math.nan], 0.0, r"latitude is NaN at index 1"),
        (0.0, math.nan, "longitude is NaN"),
        (0.0, [[1.0, 2.0], [3.0, math.nan]], r"longitude is NaN at index \(1, 1\)"),
        (90.5, 0.0, r"latitude 90.5 is outside \[-90, 90\]"),
        (-math.inf, 0.0, r"latitude -inf is outside"),
        (0.0, math.inf, "longitude inf is not finite"),
        ("north", 0.0, "latitudes must be numbers"),
        ([0.0, 1.0, 2.0], [0.0, 1.0], "do not broadcast"),
    ],
)
def test_encode_rejects_bad_coordinates(lat: object, lon: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gh.encode(lat, lon, 5)


@pytest.mark.parametrize("precision", [0, 13, -1, True, 2.5, "5", None])
def test_bad_precision_is_rejected(precision: object) -> None:
    with pytest.raises(ValueError, match="precision"):
        gh.encode(0.0, 0.0, precision)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        gh.cell_size(precision)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("u4a", r"invalid geohash 'u4a': character 'a'"),
        ("i", r"'i'"),
        ("lo", r"'l'"),
        ("U4PR", r"'U4PR'.*lower case"),
        ("u4 r", r"'u4 r'"),
        ("é", r"'é'"),
        ("", "empty geohash"),
        ("0123456789bcd", r"'0123456789bcd' has 13 characters"),
        (["u4", "s0", "zz!"], r"'zz!' at index 2"),
        ([["u4", "s0"], ["7", "xo"]], r"'xo' at index \(1, 1\)"),
        (12, "must be strings"),
        (["u4", None], "must be strings, got None at index 1"),
    ],
)
def test_invalid_hashes_are_rejected_with_their_name(bad: object, match: str) -> None:
    for function in (gh.decode, gh.bbox, gh.neighbours, gh.parent):
        with pytest.raises(ValueError, match=match):
            function(bad)


def test_parent_precision_longer_than_a_hash_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"'u4' at index 1 has 2 characters"):
        gh.parent(["u4pr", "u4"], 3)
    with pytest.raises(ValueError, match="precision"):
        gh.parent("u4", 13)


def test_bytes_and_object_arrays_are_accepted() -> None:
    assert gh.parent(np.array([b"u4pr", b"s0"])).tolist() == ["u4p", "s"]
    assert gh.decode(np.array(["u4", "s0"], dtype=object))[0].tolist() == [59.0625, 2.8125]
