"""Where the `gmm` detector's fit + score + write go, phase by phase, wall and CPU, against the naive loop's phases.

Runs in one process, after the imports and one warm-up run (numba's caches
loaded), on the throughput benchmark's cube (``throughput_cubes.py``,
written once to ``--store``) the steps of ``geoanom.fit`` and
``model.score`` + ``write_dataset`` one at a time:

* ``open``: ``open_cube``;
* ``climatology``: ``Climatology.fit`` (PRESS pass and final pass);
* ``train features+sketches``: the training features and each tile's sketch (one ``dask.compute``);
* ``gmm fit``: the batched EM and thresholds of every tile (``_fit_batch``);
* ``score``: ``model.score`` computed into memory (features, scoring, fused score, anomalies);
* ``write``: ``write_dataset`` of the computed result (encode, compress, store);
* ``end to end``: ``geoanom.fit`` + ``model.score`` + ``write_dataset``, as ``throughput.py`` times it.

Each phase reports wall seconds and the process's CPU seconds (every
thread), with dask's threaded scheduler and with the synchronous one; the
naive loop's phases (``throughput_naive.run_naive_gmm``) are timed in the
same process. ``--root`` runs another tree's geoanom (a git worktree of an
older commit) so that old and new can alternate from a driver script.

Run from the repository root::

    python benchmarks/gmm_phases.py --cube monthly --rounds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _timed(label: str, out: dict, function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function(*args, **kwargs)
    out[label] = (time.perf_counter() - wall, time.process_time() - cpu)
    return value


def run_phases(store: Path, out_dir: Path, precision: int, detectors=("gmm",)) -> dict:
    import importlib

    import dask

    import geoanom
    from geoanom.features import Climatology
    from geoanom.features.pipeline import feature_cube, source_name, stack_variables
    from geoanom.features.vectors import feature_names
    from geoanom.io import write_dataset

    fit_module = importlib.import_module("geoanom.model.fit")
    from geoanom.model.core import AnomalyModel
    from geoanom.model.family_inputs import default_features, family_inputs, kept_feature_sets
    from geoanom.model.parts import in_parts
    from geoanom.tiling import tile_codes, tile_labels

    phases: dict = {}
    cube = _timed("open", phases, geoanom.open_cube, str(store))
    train = cube.isel(time=slice(0, cube.sizes["time"] // 2))
    values = stack_variables(train)
    labels = tile_labels(train, precision)
    codes, names = tile_codes(labels)
    clim = _timed("climatology", phases, Climatology.fit, values, groups=codes, source=source_name(train))
    feature_sets = kept_feature_sets(default_features(detectors), detectors)
    features = feature_cube(in_parts(values, codes), clim, feature_sets, None, training=True)
    batches = fit_module._sketch_graph(features, codes, names, 0, 4096, 8, None)
    sketches = _timed("train features+sketches", phases, dask.compute, [merged for merged, _ in batches])[0]
    variable_names = [str(v) for v in values["variable"].values]
    params, columns = family_inputs(detectors, feature_names(variable_names, feature_sets), variable_names, clim)

    def fit_all():
        fitted = {}
        for merged, (_, tiles) in zip(sketches, batches):
            fitted.update(fit_module._fit_batch(merged, tiles, detectors, 0, 100, params, columns, ""))
        return fitted

    fitted = _timed("gmm fit", phases, fit_all)
    model = AnomalyModel(variables=variable_names, climatology=clim, labels=labels, ensembles=fitted, skipped={},
                         detectors=tuple(detectors),
                         attrs={"seed": 0, "features": list(feature_sets), "region_params": None,
                                "feature_names": feature_names(variable_names, feature_sets), "units": {},
                                "undeclared_fills": {}, "level": None, "trend": "none",
                                "training_start": str(train["time"].values[0]),
                                "training_end": str(train["time"].values[-1])})
    result = _timed("score", phases, lambda: model.score(cube).compute())
    _timed("write", phases, write_dataset, result, out_dir / "phases.zarr", warn_flags=False)

    def end_to_end():
        fitted_model = geoanom.fit(train, precision=precision, detectors=detectors)
        write_dataset(fitted_model.score(cube), out_dir / "end.zarr")

    _timed("end to end (fit, score, write)", phases, end_to_end)
    return phases


def run_naive_phases(store: Path, out_dir: Path, precision: int) -> dict:
    from throughput_naive import run_naive_gmm

    wall, cpu = time.perf_counter(), time.process_time()
    record = run_naive_gmm(store, out_dir / "naive.zarr", precision)
    phases = {name: (seconds, float("nan")) for name, seconds in record["parts"].items()}
    phases["naive total"] = (time.perf_counter() - wall, time.process_time() - cpu)
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", default="monthly", choices=("monthly", "annual"))
    parser.add_argument("--store", type=Path, default=None, help="Zarr store of the cube (written if missing)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository whose geoanom runs (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--schedulers", nargs="+", default=["threads", "sync"])
    parser.add_argument("--naive", action="store_true", help="also time the naive loop's phases")
    parser.add_argument("--out", type=Path, default=None, help="JSON of every round")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import tempfile

    import dask
    import sklearn.mixture  # noqa: F401  (imported before the clock, as throughput.py does)
    from throughput_cubes import CUBES, write_cube

    import geoanom
    import geoanom.model  # noqa: F401

    shape = CUBES[args.cube]
    store = args.store or Path(tempfile.gettempdir()) / f"gmm_phases_{args.cube}.zarr"
    if not store.exists():
        write_cube(store, shape, shape.sizes["full"])
    print(f"geoanom from {Path(geoanom.__file__).parent}", flush=True)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="gmm-phases-") as tmp:
        run_phases(store, Path(tmp), shape.precision)  # warm-up: numba caches, page cache
        for round_ in range(args.rounds):
            for scheduler in args.schedulers:
                with dask.config.set(scheduler="synchronous" if scheduler == "sync" else scheduler):
                    phases = run_phases(store, Path(tmp), shape.precision)
                rounds.append({"scheduler": scheduler, "round": round_, "phases": phases})
                print(f"round {round_} {scheduler}: " + ", ".join(
                    f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in phases.items()), flush=True)
            if args.naive:
                phases = run_naive_phases(store, Path(tmp), shape.precision)
                rounds.append({"scheduler": "naive", "round": round_, "phases": phases})
                print(f"round {round_} naive: " + ", ".join(f"{k} {w:.2f}" for k, (w, _) in phases.items()),
                      flush=True)
    print("\nbest of rounds, wall s / CPU s:")
    for scheduler in {r["scheduler"] for r in rounds}:
        mine = [r["phases"] for r in rounds if r["scheduler"] == scheduler]
        print(f"  {scheduler}: " + ", ".join(
            f"{k} {min(p[k][0] for p in mine):.2f}/{min(p[k][1] for p in mine):.2f}" for k in mine[0]))
    if args.out:
        args.out.write_text(json.dumps({"root": str(args.root), "rounds": rounds}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
