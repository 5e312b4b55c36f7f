"""Three institutions learn one event detector together; none shares its observations.

A monthly temperature field (``ga.testing.blob_cube``) holds spatially coherent
warm events lasting months (the truth) and single-cell jumps of 5 K
(instrument noise, not events). Three institutions each hold one longitude
band of the grid. Each band's observations become feature rows
(``ga.federated.cube_rows``: the value, its standardised anomaly, the
denoised anomaly and the area of the anomalous region around it), and the
rows of each institution are placed on that institution's own dask worker
(``placement``: workers started with a resource named after it), where they
stay. Every round, each institution trains the shared two-layer perceptron
on its own rows and sends a signed parameter update; the server checks the
signatures, merges the updates with the coordinate-wise median, and writes
each step to a hash-chained audit log.

The model is trained on the first two thirds of the event period and
tested on the last third, against the truth. It prints the history of the
rounds, the test ROC AUC next to the anomaly alone (what a per-cell
detector sees), and whether the audit log is intact.

    python examples/federated_institutions.py [--rounds 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
from distributed import Client, Scheduler, SpecCluster
from sklearn.metrics import roc_auc_score

import geoanom as ga
from geoanom.testing import blob_cube

INSTITUTIONS = ("atlantic", "pacific", "indian")


def institution_grid(cube: xr.Dataset) -> xr.DataArray:
    """Each grid cell's institution: three equal longitude bands."""
    band = np.arange(cube.sizes["lon"]) * len(INSTITUTIONS) // cube.sizes["lon"]
    owners = np.broadcast_to(np.array(INSTITUTIONS)[band], (cube.sizes["lat"], cube.sizes["lon"]))
    return xr.DataArray(owners, dims=("lat", "lon"), coords={"lat": cube["lat"], "lon": cube["lon"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=None, help="folder for the audit log (default: a temporary one)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)

    cube, events = blob_cube(n_years=12, n_lat=32, n_lon=48, n_events=12, seed=0)
    rows = ga.federated.cube_rows(cube, "tas", institution_grid(cube))
    truth = rows.pick(events).astype(int)
    event_months = np.flatnonzero(events.any(("lat", "lon")).values)
    split = event_months[0] + 2 * (event_months[-1] + 1 - event_months[0]) // 3
    train, test = rows.time_index < split, rows.time_index >= split
    print(f"{len(truth):,} observations, {truth.sum():,} in events; training on months before {split}, "
          f"testing on {test.sum():,} rows after")

    # One worker per institution, each carrying a resource of the institution's name.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    workers = {name: {"cls": "distributed.Nanny", "options": {"nthreads": 1, "resources": {name: 1},
                                                            "silence_logs": logging.WARNING}}
               for name in INSTITUTIONS}
    with SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
                     silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        result = ga.federated.train(rows.features[train], truth[train], clients=rows.clients[train],
                                    aggregator="median", schedule=ga.federated.RoundOptions(rounds=args.rounds),
                                    security=ga.federated.Security(placement={name: name for name in INSTITUTIONS},
                                                                   signed=True, audit_log=out / "audit.jsonl"),
                                    client=client)

    print(result.history[["participants", "loss", "update_norm", "state"]].to_string(max_rows=8))
    anomaly = rows.names.index("tas_anomaly")
    federated_auc = roc_auc_score(truth[test], result.decision_function(rows.features[test]))
    anomaly_auc = roc_auc_score(truth[test], np.abs(rows.features[test, anomaly]))
    print(f"test ROC AUC: federated detector {federated_auc:.3f}, |anomaly| alone {anomaly_auc:.3f}")
    print(f"refused updates: {len(result.rejected)}; audit log {out / 'audit.jsonl'} intact: "
          f"{ga.federated.verify_audit(out / 'audit.jsonl', result.audit_head)}")


if __name__ == "__main__":
    main()
