"""The isolation-forest walk: AVX-512 vectors against the scalar walk, in one process, alternating.

Each tile's rows are walked through its own forest
(:func:`geoanom.detectors.isolation_walk.forest_depth`), once with the
vector walk (``USE_SIMD`` on, where the processor has AVX-512F) and once
with the scalar walk (off), alternating ``--repeat`` times; CPU time of
this thread, best of the repeats; ns per row and tree; the scores are
checked identical bit for bit.

The forests are those of a saved model (``--model``, e.g. the
``model.npz`` that ``score_path.py`` leaves in its work directory) scored
on the rows of its cube (``--cube``, first ``--time`` steps), or by default
``--tiles`` synthetic tiles: 4096 training rows x 2 features each, a normal
sample with its own correlation, 100 trees of 256 points, 2900 rows to
score per tile (as a tile of the annual throughput cube in one time chunk).

Run from the repository root::

    python benchmarks/iforest_walk.py [--tiles 243] [--repeat 7]
    python benchmarks/iforest_walk.py --model /tmp/geoanom-score-path/annual-full/model.npz \\
        --cube /tmp/geoanom-score-path/annual-full/cube.zarr
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geoanom.detectors import isolation_walk  # noqa: E402
from geoanom.detectors.isolation_trees import build_forests  # noqa: E402

STATE_KEYS = ("node_feature_", "node_threshold_", "node_left_", "node_path_", "tree_root_", "tree_norm_",
              "tree_weight_")


def synthetic_tiles(n_tiles: int, seed: int = 14) -> list[tuple[np.ndarray, dict, np.ndarray]]:
    """(rows, forest state, tree depths) of ``n_tiles`` synthetic tiles."""
    rng = np.random.default_rng(seed)
    train, rows = [], []
    for _ in range(n_tiles):
        rho = rng.uniform(-0.9, 0.9)
        cov = np.array([[1.0, rho], [rho, 1.0]])
        train.append(rng.multivariate_normal([0.0, 0.0], cov, size=4096))
        rows.append(rng.multivariate_normal([0.0, 0.0], 1.5 * cov, size=2900))
    states = build_forests(train, list(range(n_tiles)), n_estimators=100, max_samples=256)
    return [(X, state, isolation_walk.tree_depths(state)) for X, state in zip(rows, states)]


def model_tiles(model_path: str, cube_path: str, time_steps: int) -> list[tuple[np.ndarray, dict, np.ndarray]]:
    """(rows, forest state, tree depths) of every tile of a saved model, its rows from the cube's first steps."""
    import geoanom
    from geoanom.model import score
    from geoanom.tiling import group_cells

    model = geoanom.load_model(model_path)
    cube = geoanom.open_cube(cube_path).isel(time=slice(0, time_steps))
    values = score.stack_variables(cube, model.variables)
    anomalies = model.climatology.standardise(values)
    features = score.feature_cube(values, model.climatology, score.feature_sets(model), score.region_params(model),
                                  anomalies=anomalies).compute(scheduler="threads")
    flat = features.reshape(features.shape[0], features.shape[1], -1)
    tiles = []
    for code, cells in group_cells(model.tile_codes):
        ensemble = model.scoring_ensemble(str(model.tile_names[code]))
        if ensemble is None or "iforest" not in ensemble.detectors_:
            continue
        rows = flat[:, :, cells].reshape(flat.shape[0], -1).T
        rows = np.ascontiguousarray(ensemble.family_rows("iforest", rows[np.isfinite(rows).all(axis=1)]))
        detector = ensemble.detectors_["iforest"]
        state = {key: np.asarray(getattr(detector, key)) for key in STATE_KEYS}
        tiles.append((rows, state, isolation_walk.tree_depths(state)))
    return tiles


def walk_all(tiles: list, simd: bool) -> tuple[float, list[np.ndarray]]:
    """CPU seconds of walking every tile, and the depths."""
    isolation_walk.USE_SIMD = simd
    start = time.process_time()
    out = [isolation_walk.forest_depth(X, state, depths) for X, state, depths in tiles]
    return time.process_time() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=243, help="synthetic tiles (without --model)")
    parser.add_argument("--model", help="a saved model's .npz or .zarr")
    parser.add_argument("--cube", help="the cube the model was fitted on (with --model)")
    parser.add_argument("--time", type=int, default=209, help="time steps of the cube to score (with --model)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "iforest_walk.json")
    args = parser.parse_args(argv)
    if not isolation_walk.simd_available():
        print("this processor (or numba's target) has no AVX-512F: only the scalar walk runs here")
        return 1
    if args.model and not args.cube:
        parser.error("--model needs --cube")
    tiles = model_tiles(args.model, args.cube, args.time) if args.model else synthetic_tiles(args.tiles)
    walk_all(tiles, True), walk_all(tiles, False)  # compiled (or loaded from numba's cache) before the clock
    best = {"vector": np.inf, "scalar": np.inf}
    identical = True
    for repeat in range(args.repeat):
        order = (True, False) if repeat % 2 == 0 else (False, True)
        results = {}
        for simd in order:
            seconds, results[simd] = walk_all(tiles, simd)
            name = "vector" if simd else "scalar"
            best[name] = min(best[name], seconds)
        identical &= all(np.array_equal(a.view(np.uint64), b.view(np.uint64))
                         for a, b in zip(results[True], results[False]))
    isolation_walk.USE_SIMD = isolation_walk.simd_available()
    row_trees = sum(len(X) * len(state["tree_root_"]) for X, state, _ in tiles)
    report = {"benchmark": "iforest_walk", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "source": args.model or f"{args.tiles} synthetic tiles", "tiles": len(tiles),
              "rows": int(sum(len(X) for X, _, _ in tiles)), "repeat": args.repeat, "clock": "process_time, best",
              "vector_s": best["vector"], "scalar_s": best["scalar"],
              "vector_ns_per_row_tree": best["vector"] / row_trees * 1e9,
              "scalar_ns_per_row_tree": best["scalar"] / row_trees * 1e9,
              "ratio_vector_over_scalar": best["vector"] / best["scalar"], "identical": identical}
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
