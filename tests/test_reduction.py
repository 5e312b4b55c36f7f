"""Tree reductions: the streaming TreeReducer, on a recording client and on a real LocalCluster."""

import math

import distributed
import pytest

from geoanom.reduction import TreeReducer, tree_reduce_futures


class RecordingClient:
    """Runs ``submit`` at once and records each merge: its fan-in, depth, priority and the groups it mixes."""

    def __init__(self):
        self.merges = []

    def submit(self, function, *parts, pure=False, priority=None):
        depth = 1 + max(part[1] for part in parts)
        groups = frozenset().union(*(part[2] for part in parts))
        self.merges.append({"fan_in": len(parts), "depth": depth, "priority": priority, "groups": groups})
        return function(*parts), depth, groups


def add_with_depth(*parts):
    return sum(part[0] for part in parts)


@pytest.mark.parametrize("n_parts", [1, 2, 7, 8, 9, 64, 65, 511, 1000])
@pytest.mark.parametrize("groups", [1, 2, 5, 20, 1000])
def test_the_tree_sums_every_part_with_bounded_fan_in_and_log_depth(n_parts, groups):
    client, fan_in = RecordingClient(), 8
    tree = TreeReducer(client, add_with_depth, fan_in)
    for index in range(n_parts):
        tree.add((index, 0, frozenset([index % groups])), group=index % groups)
    total, depth, _ = tree.result()
    assert total == n_parts * (n_parts - 1) // 2
    assert all(2 <= merge["fan_in"] <= fan_in for merge in client.merges)
    # one extra level at most, for the per-group first level
    assert depth <= math.ceil(math.log(n_parts, fan_in) - 1e-9) + (groups > 1)
    # the first level merges one group's parts (a group's lone part joins the level above)
    assert all(len(merge["groups"]) == 1 for merge in client.merges if merge["priority"] == 1)
    assert groups == 1 or n_parts < 2 * groups or any(m["priority"] == 1 for m in client.merges)
    # every merge jumps the queue of parts (submitted without priority)
    assert all(merge["priority"] is not None and merge["priority"] >= 1 for merge in client.merges)
    assert tree.result() is None  # the tree is empty once its root is out


def test_an_empty_tree_has_no_root():
    assert TreeReducer(RecordingClient(), add_with_depth, 8).result() is None


def test_unprioritised_merges_carry_no_priority():
    client = RecordingClient()
    tree = TreeReducer(client, add_with_depth, 4, prioritise=False)
    for index in range(20):
        tree.add((index, 0, frozenset()))
    assert tree.result()[0] == sum(range(20)) and {m["priority"] for m in client.merges} == {None}


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
