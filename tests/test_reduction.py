"""Tree reductions: the streaming TreeReducer, on a recording client and on a real LocalCluster."""

import math

import distributed
import pytest

from geoanom.reduction import TreeReducer, tree_reduce_futures


class RecordingClient:
    """Runs ``submit`` at once and records each merge's fan-in, depth and priority."""

    def __init__(self):
        self.merges = []

    def submit(self, function, *parts, pure=False, priority=None):
        depth = 1 + max(part[1] for part in parts)
        self.merges.append((len(parts), depth, priority))
        return function(*parts)[0], depth


def add_with_depth(*parts):
    return sum(value for value, _ in parts), None


@pytest.mark.parametrize("n_parts", [1, 2, 7, 8, 9, 64, 65, 511, 1000])
@pytest.mark.parametrize("groups", [1, 2, 5])
def test_the_tree_sums_every_part_with_bounded_fan_in_and_log_depth(n_parts, groups):
    client, fan_in = RecordingClient(), 8
    tree = TreeReducer(client, add_with_depth, fan_in)
    for index in range(n_parts):
        tree.add((index, 0), group=index % groups)
    total, depth = tree.result()
    assert total == n_parts * (n_parts - 1) // 2
    assert all(2 <= parts <= fan_in for parts, _, _ in client.merges)
    # one extra level at most, for the per-group first level
    assert depth <= math.ceil(math.log(n_parts, fan_in) - 1e-9) + (groups > 1)
    assert all(priority >= depth for _, depth, priority in client.merges)  # merges jump the queue


def test_an_empty_tree_has_no_root():
    assert TreeReducer(RecordingClient(), add_with_depth, 8).result() is None


def test_unprioritised_merges_carry_no_priority():
    client = RecordingClient()
    tree = TreeReducer(client, add_with_depth, 4, prioritise=False)
    for index in range(20):
        tree.add((index, 0))
    assert tree.result()[0] == sum(range(20)) and {p for _, _, p in client.merges} == {None}


def leaf(index):
    from distributed import get_worker

    return {"sum": index, "workers": {get_worker().address}, "leaf": True}


def merge(*parts):
    """Add; note when a first-level merge mixes workers."""
    mixed = all(part.get("leaf") for part in parts) and len(set().union(*(p["workers"] for p in parts))) > 1
    return {"sum": sum(p["sum"] for p in parts), "workers": set().union(*(p["workers"] for p in parts)),
            "mixed": mixed or any(p.get("mixed") for p in parts)}


def test_on_a_cluster_the_first_level_merges_one_worker_s_parts():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") \
            as cluster, distributed.Client(cluster) as client:
        workers = sorted(client.scheduler_info()["workers"])
        pinned = [workers[index % 2] for index in range(100)]
        futures = [client.submit(leaf, index, workers=[pinned[index]], pure=False) for index in range(100)]
        root = tree_reduce_futures(client, futures, merge, 8, workers=pinned).result()
        assert root["sum"] == sum(range(100)) and root["workers"] == set(workers) and not root["mixed"]
        # without grouping, neighbours in submission order sit on different workers
        ungrouped = tree_reduce_futures(client, futures, merge, 8).result()
        assert ungrouped["sum"] == root["sum"] and ungrouped["mixed"]
