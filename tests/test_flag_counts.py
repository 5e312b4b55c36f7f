"""The per-step flag counts a write takes (geoanom.flagged.flag_counts), lazily and in memory, against numpy."""

import dask.array as da
import numpy as np
import xarray as xr

from geoanom.flagged import flag_counts, step_counts


def _result(ensemble, fused):
    dims = ("time", "lat", "lon")
    coords = {"lat": np.arange(ensemble.shape[1]) - 4.0, "lon": np.arange(ensemble.shape[2]) * 2.0}
    return xr.Dataset({"ensemble": (dims, ensemble), "fused_irregularity": (dims, fused)}, coords=coords)


def test_counts_equal_numpys_lazily_in_any_chunking_and_in_memory():
    rng = np.random.default_rng(3)
    ensemble = rng.random((7, 9, 11)) < 0.2
    fused = rng.random((7, 9, 11)).astype(np.float32)
    fused[rng.random(fused.shape) < 0.3] = np.nan
    ensemble[0, 0, 0], fused[0, 0, 0] = True, np.nan  # a flag where nothing was scored is not counted
    scored = ~np.isnan(fused)
    expected = ((ensemble & scored).sum(axis=(1, 2)), scored.sum(axis=(1, 2)))
    in_memory = flag_counts(_result(ensemble, fused))
    lazy = flag_counts(_result(da.from_array(ensemble, chunks=(3, 4, 5)), da.from_array(fused, chunks=(2, 9, 6))))
    for counts in (in_memory, lazy, step_counts(ensemble, fused)):
        assert [c.tolist() for c in counts] == [e.tolist() for e in expected]
    flagged, _ = flag_counts(_result(da.from_array(ensemble, chunks=(3, 4, 5)), da.from_array(fused)), compute=False)
    assert isinstance(flagged, da.Array) and flagged.compute().tolist() == expected[0].tolist()
