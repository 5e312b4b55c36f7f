"""What differential privacy costs the federated detector: ROC AUC against epsilon.

The federated benchmark's data (``benchmarks/federated.py``: the embedded SST
with injected warm events and single-cell spikes, region features, a 70/15/15
split), with every geohash tile of precision 3 as a client (about 1,570),
since client-level privacy needs many clients per round. For each target
epsilon in {0.5, 1, 4, 8} the noise multiplier is calibrated so that 30
rounds at a client fraction of 0.5 spend at most that epsilon (delta 1e-5,
dp-accounting's RDP accountant of the Poisson-sampled Gaussian mechanism);
the baseline in the same run is the same training without privacy. Also
printed: the PLD accountant's epsilon for the same events, and what an
accountant that ignores sampling would report.

    python benchmarks/privacy.py            # also benchmarks/results/privacy.json (about 6 minutes)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import federated as bench_data  # noqa: E402  (the federated benchmark's data and helpers)

import geoanom as ga  # noqa: E402
from geoanom.cluster import make_client  # noqa: E402
from geoanom.federated import GaussianDP, epsilons  # noqa: E402
from geoanom.federated.privacy import calibrate_noise  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "privacy.json"
DELTA = 1e-5


class Settings:
    rounds, local_epochs, lr, seed = 30, 1, 0.1, 0


def run(bench, tiles, epsilon, args) -> dict:
    privacy = None
    if epsilon is not None:
        noise = calibrate_noise(epsilon, args.fraction, args.rounds, DELTA)
        privacy = GaussianDP(noise, args.clip, DELTA, max_epsilon=epsilon)
    started = time.perf_counter()
    model = bench.train(bench_data.REGION, tiles, rounds=args.rounds, client_fraction=args.fraction,
                        privacy=privacy, lr=args.lr)
    row = {**bench.evaluate(model, bench_data.REGION), "target_epsilon": epsilon,
           "seconds": time.perf_counter() - started}
    if privacy is not None:
        row.update(noise_multiplier=privacy.noise_multiplier, epsilon_rdp=model.epsilon,
                   **{f"same_events_{k}": v for k, v in epsilons(privacy.noise_multiplier, args.fraction,
                                                                   len(model.history), DELTA).items()},
                   epsilon_without_sampling=epsilons(privacy.noise_multiplier, 1.0, len(model.history), DELTA)["rdp"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--fraction", type=float, default=0.5, help="client fraction (Poisson sampling rate)")
    parser.add_argument("--clip", type=float, default=0.5, help="L2 clip of a client's update")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.5, 1.0, 4.0, 8.0])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    rows = bench_data.make_rows(25, 0)
    tiles = ga.tile_labels(ga.sample_cube("sst"), 3).values.ravel()[rows["cell"]]
    client = make_client(2)
    with client:
        bench = bench_data.Bench(rows, client, Settings)
        train_tiles = tiles[rows["split"] == 0]
        results = [run(bench, train_tiles, None, args)] + [run(bench, train_tiles, e, args) for e in args.epsilons]
        # the floor: the initial network, untrained (lr 0), ranks by its random features alone
        untrained = bench.evaluate(bench.train(bench_data.REGION, train_tiles, rounds=1, lr=0.0), bench_data.REGION)
    clean = results[0]["roc_auc"]
    print(f"{len(set(train_tiles))} tile clients, {args.rounds} rounds, client fraction {args.fraction}, "
          f"clip {args.clip}, delta {DELTA:g}")
    print(f"{'epsilon':>8s} {'noise':>7s} {'ROC AUC':>8s} {'vs none':>8s} {'F1':>6s} {'PLD eps':>8s} "
          f"{'eps if sampling ignored':>24s} {'s':>6s}")
    for row in results:
        target = "none" if row["target_epsilon"] is None else f"{row['epsilon_rdp']:.3g}"
        noise = f"{row['noise_multiplier']:.3g}" if "noise_multiplier" in row else "-"
        pld = f"{row['same_events_pld']:.3g}" if "same_events_pld" in row else "-"
        naive = f"{row['epsilon_without_sampling']:.3g}" if "epsilon_without_sampling" in row else "-"
        print(f"{target:>8s} {noise:>7s} {row['roc_auc']:8.4f} {row['roc_auc'] - clean:+8.4f} {row['f1']:6.3f} "
              f"{pld:>8s} {naive:>24s} {row['seconds']:6.0f}")
    print(f"untrained initial network: ROC AUC {untrained['roc_auc']:.4f} (what training adds is measured from here)")
    at_one = [r for r in results if r["target_epsilon"] == 1.0]
    if at_one:
        drop = clean - at_one[0]["roc_auc"]
        print(f"goal: at epsilon 1 the AUC drops by at most 0.03: {'MET' if drop <= 0.03 else 'NOT MET'} "
              f"({drop:+.4f})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"settings": vars(args), "clients": len(set(train_tiles)), "runs": results,
                                   "untrained_roc_auc": untrained["roc_auc"]},
                                  indent=1, default=str))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
