"""The compiled background ring mean: the brute force's values, and the same bits in any block."""

import numpy as np
import pytest

from geoanom.features.ring import ring_mean


def brute_force(z: np.ndarray, inner: int, outer: int) -> np.ndarray:
    out = np.zeros(z.shape)
    ny, nx = z.shape[-2:]
    for i in range(ny):
        for j in range(nx):
            box = z[..., max(0, i - outer):i + outer + 1, max(0, j - outer):j + outer + 1].copy()
            top, left = i - max(0, i - outer), j - max(0, j - outer)
            box[..., max(0, top - inner):top + inner + 1, max(0, left - inner):left + inner + 1] = np.nan
            counts = np.isfinite(box).sum(axis=(-2, -1))
            out[..., i, j] = np.where(counts > 0, np.nansum(box, axis=(-2, -1)) / np.maximum(counts, 1), 0.0)
    return out


@pytest.mark.parametrize("inner, outer", [(2, 7), (1, 4), (0, 3), (1, 3)])  # 15 = 3 x 5, 9 = 3 x 3; 7 = 7 x 1; 7, 3
def test_ring_mean_is_the_brute_force(inner, outer):
    rng = np.random.default_rng(inner * 10 + outer)
    z = rng.normal(size=(2, 3, 21, 26))
    z[0, 1, 3:9, 4:20] = np.nan  # land
    z[1, :, :, 22:] = np.nan
    z[1, 2] = np.nan  # a step without data: all 0
    ring = ring_mean(z, inner, outer)
    np.testing.assert_allclose(ring, brute_force(z, inner, outer), rtol=1e-12, atol=1e-13)
    assert not ring[1, 2].any()


def test_a_cell_gets_the_same_bits_in_any_block_holding_its_ring():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(1, 4, 40, 50))
    z[0, :, 5:12, 30:41] = np.nan
    whole = ring_mean(z, 2, 7)
    for rows, cols in ((slice(3, 31), slice(0, 44)), (slice(10, 40), slice(17, 50))):
        part = ring_mean(z[..., rows, cols], 2, 7)
        inside = (slice(None), slice(None), slice(7 if rows.start else 0, -7 if rows.stop < 40 else None),
                  slice(7 if cols.start else 0, -7 if cols.stop < 50 else None))
        np.testing.assert_array_equal(part[inside], whole[..., rows, cols][inside])


def test_the_input_is_left_alone_and_may_be_float32():
    z = np.arange(200, dtype=np.float32).reshape(1, 10, 20)
    z[0, 0, 0] = np.nan
    kept = z.copy()
    ring = ring_mean(z, 2, 7)
    assert ring.dtype == np.float64 and ring.shape == z.shape
    np.testing.assert_array_equal(z, kept)
    np.testing.assert_allclose(ring, brute_force(z.astype(np.float64), 2, 7), rtol=1e-12)
