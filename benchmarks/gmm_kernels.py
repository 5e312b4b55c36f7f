"""The gmm path's kernels (issue 14), old code against new in one process, alternating: CPU time and identical bits.

On one throughput cube (``throughput_cubes.py``, written once into ``--workdir``):

* ``em``: every ``mixture._em_compiled`` call of a gmm fit, the module at
  ``--baseline`` against the working tree's;
* ``neighbours``: ``_neighbour_trimmed_mean`` of every score block's anomalies;
* ``score``: the scoring of every part of every block, 4ce0155's per-tile
  numpy path (gather, transpose, finiteness, selection, clip, scatter) against
  ``score._score_tile`` (compiled ``features/tile_rows.py``);
* ``climatology``: ``Climatology.fit`` on the training half with the fit
  blocks of 2 M values (the old rule) against the current rule, dask's threads
  (wall time, as the blocks change the balance, not the work).

Old modules are read with ``git show <baseline>:<path>`` into a temporary
folder, relative imports made absolute. Each measure is the thread's CPU time
(``time.thread_time``) over ``--rounds`` alternating rounds; the report gives
best and median and the new/old ratios, and whether the outputs are the same
bit for bit.

Run from the repository root::

    python benchmarks/gmm_kernels.py --baseline 4ce0155 [--cube monthly] [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def old_module(revision: str, path: str, folder: Path, name: str):
    """The module at ``path`` as of ``revision``, imported as ``name`` from ``folder`` (relative imports made absolute)."""
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    package = path.rsplit("/", 1)[0].replace("/", ".")
    parent = package.rsplit(".", 1)[0]
    source = re.sub(r"^from \.\.(\w)", rf"from {parent}.\1", source, flags=re.M)
    source = re.sub(r"^from \.(\w)", rf"from {package}.\1", source, flags=re.M)
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def alternate(functions: dict, rounds: int, clock=time.thread_time) -> dict:
    """Each function's times over ``rounds`` rounds, the order alternating."""
    times = {name: [] for name in functions}
    for r in range(rounds):
        for name in (list(functions) if r % 2 == 0 else list(functions)[::-1]):
            start = clock()
            functions[name]()
            times[name].append(clock() - start)
    return times


def report(what: str, times: dict, identical: bool) -> None:
    old, new = times["old"], times["new"]
    print(f"{what}: old best {min(old):.3f} median {statistics.median(old):.3f} s; new best {min(new):.3f} median "
          f"{statistics.median(new):.3f} s; new/old best {min(new) / min(old):.3f} median "
          f"{statistics.median(new) / statistics.median(old):.3f}; identical {identical}", flush=True)


def old_score_block(features, codes, ensembles, n_detectors):
    """4ce0155's _score_block and _score_tile, without the thread pools' limit and the memory release."""
    from geoanom.tiling import group_cells

    largest = float(np.finfo(np.float32).max)
    n_features, n_times = features.shape[:2]
    flat = features.reshape(n_features, n_times, -1)
    out = np.full((n_detectors, n_times, flat.shape[2]), np.nan, dtype=np.float32)
    for code, cells in group_cells(codes):
        if code in ensembles:
            tile = flat[:, :, cells]
            rows = tile.reshape(n_features, -1).T
            valid = np.isfinite(rows).all(axis=1)
            scores = np.full((n_detectors, len(rows)), np.nan, dtype=np.float32)
            if valid.any():
                scores[:, valid] = np.clip(ensembles[code].irregularity(rows[valid]), -largest, largest)
            out[:, :, cells] = scores.reshape(n_detectors, n_times, len(cells))
    return out.reshape((n_detectors,) + features.shape[1:])


def new_score_block(features, codes, ensembles, n_detectors):
    from geoanom.model.score import _score_tile
    from geoanom.tiling import group_cells

    n_features, n_times = features.shape[:2]
    flat = features.reshape(n_features, n_times, -1)
    out = np.full((n_detectors, n_times, flat.shape[2]), np.nan, dtype=np.float32)
    for code, cells in group_cells(codes):
        if code in ensembles:
            _score_tile(ensembles[code], flat, cells, out)
    return out.reshape((n_detectors,) + features.shape[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision of the old code")
    parser.add_argument("--cube", default="monthly", choices=("annual", "monthly"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workdir", default="/tmp/geoanom-gmm-path")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import dask
    from throughput_cubes import CUBES, write_cube

    import geoanom
    from geoanom.features import climatology
    from geoanom.features.neighbourhood import _neighbour_trimmed_mean
    from geoanom.features.pipeline import feature_cube, stack_variables
    from geoanom.model.parts import part_chunks
    from geoanom.tiling import tile_codes, tile_labels

    mixture = importlib.import_module("geoanom.detectors.mixture")
    score = importlib.import_module("geoanom.model.score")
    shape = CUBES[args.cube]
    store = Path(args.workdir) / f"{args.cube}-full.zarr"
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        write_cube(store, shape, shape.sizes["full"])
    folder = Path(tempfile.mkdtemp(prefix="gmm-kernels-"))
    old_mixture = old_module(args.baseline, "geoanom/detectors/mixture.py", folder, "old_mixture")
    old_neighbourhood = old_module(args.baseline, "geoanom/features/neighbourhood.py", folder, "old_neighbourhood")
    cube = geoanom.open_cube(str(store))
    train = cube.isel(time=slice(0, cube.sizes["time"] // 2))

    # em: the calls of one gmm fit
    calls, kernel = [], mixture._em_compiled
    mixture._em_compiled = lambda *a: calls.append(a) or kernel(*a)
    with dask.config.set(scheduler="synchronous"):
        model = geoanom.fit(train, precision=shape.precision, detectors=("gmm",))
    mixture._em_compiled = kernel
    em = {"old": old_mixture._em_compiled, "new": kernel}
    same = all(all(np.array_equal(a, b) for a, b in zip(em["old"](*c), em["new"](*c))) for c in calls)
    report(f"em ({len(calls)} calls)", alternate({k: (lambda f=f: [f(*c) for c in calls]) for k, f in em.items()},
                                                args.rounds), same)

    # neighbours and score: every block of the score
    values = stack_variables(cube, model.variables)
    anomalies = model.climatology.standardise(values).data
    blocks = [anomalies.blocks[0, i].compute() for i in range(anomalies.numblocks[1])]
    kernels = {"old": old_neighbourhood._neighbour_trimmed_mean, "new": _neighbour_trimmed_mean}
    same = all(np.array_equal(kernels["old"](b).view(np.uint64), kernels["new"](b).view(np.uint64)) for b in blocks)
    report("neighbours", alternate({k: (lambda f=f: [f(b) for b in blocks]) for k, f in kernels.items()},
                                   args.rounds), same)
    features = feature_cube(values, model.climatology, score.feature_sets(model), score.region_params(model))
    codes, ensembles = score._cell_models(model, None)
    models = {code: ensemble for code, ensemble in enumerate(ensembles) if ensemble is not None}
    rows, cols = part_chunks(codes, features.chunks)  # the parts score_cube scores
    row_starts, col_starts = np.cumsum((0,) + rows), np.cumsum((0,) + cols)
    parts = [(block[:, :, row_starts[i]:row_starts[i + 1], col_starts[j]:col_starts[j + 1]],
              codes[row_starts[i]:row_starts[i + 1], col_starts[j]:col_starts[j + 1]])
             for block in (features.blocks[0, t].compute() for t in range(features.numblocks[1]))
             for i in range(len(rows)) for j in range(len(cols))]
    scorers = {"old": old_score_block, "new": new_score_block}
    outs = {k: [f(p, c, models, 1) for p, c in parts] for k, f in scorers.items()}
    same = all(np.array_equal(a.view(np.uint32), b.view(np.uint32)) for a, b in zip(outs["old"], outs["new"]))
    report(f"score ({len(parts)} parts)", alternate({k: (lambda f=f: [f(p, c, models, 1) for p, c in parts])
                                                    for k, f in scorers.items()}, args.rounds), same)

    # climatology: the fit blocks, on dask's threads (wall time)
    stacked = stack_variables(train, None)
    groups, _ = tile_codes(tile_labels(train, shape.precision))
    rules = {"old": (2_000_000, 2_000_000), "new": (climatology.BLOCK_VALUES, climatology.MIN_BLOCK_VALUES)}
    fitted = {}

    def fit_with(rule):
        climatology.BLOCK_VALUES, climatology.MIN_BLOCK_VALUES = rules[rule]
        fitted[rule] = climatology.Climatology.fit(stacked, groups=groups)

    fit_with("new")
    times = alternate({rule: (lambda rule=rule: fit_with(rule)) for rule in rules}, args.rounds, time.perf_counter)
    climatology.BLOCK_VALUES, climatology.MIN_BLOCK_VALUES = rules["new"]
    same = all(np.array_equal(getattr(fitted["old"], name), getattr(fitted["new"], name), equal_nan=True)
               for name in ("coefficients", "spread", "spread_weight", "prefix", "weight_scale", "leverage_scale"))
    report("climatology (wall, 2 threads)", times, same)
    return 0


if __name__ == "__main__":
    sys.exit(main())
