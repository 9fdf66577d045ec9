"""List-append transactions on the nodes (docs/node-contract.md, "Transactions").

The store's meaning of ``txn`` (atomic, reads see the transaction's own
appends, a failure changes nothing), the wire's validation, and Raft and
Paxos on the simulated network (nodes.sim): random schedules with drops,
duplicates, partitions and crashes whose transaction histories the
list-append checker finds strict-serializable, and the two transaction bugs
caught where they should be.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from testkit.raftkit import new_net, settle

from checker.history import pair
from checker.listappend import check_list_append
from nodes.common import wire
from nodes.common.kv import KVStore, check_command, split_txn
from nodes.paxos import PROTOCOL as PAXOS
from nodes.sim import SimNet

# --- the store ---------------------------------------------------------------------


def test_txn_applies_atomically_and_reads_see_own_appends() -> None:
    kv = KVStore()
    r = kv.apply({"op": "txn", "txn": [["r", "x", None], ["append", "x", 1], ["r", "x", None],
                                       ["append", "y", 2]]})
    assert r == {"ok": True, "value": [["r", "x", None], ["append", "x", 1], ["r", "x", [1]],
                                       ["append", "y", 2]]}
    r2 = kv.apply({"op": "txn", "txn": [["append", "x", 3], ["r", "x", None]]})
    assert r2["value"][1] == ["r", "x", [1, 3]]
    assert r["value"][2] == ["r", "x", [1]], "a reply must not change with later appends"
    kv.apply({"op": "write", "key": "w", "value": 5})
    cmd = {"op": "txn", "txn": [["append", "x", 9], ["append", "w", 1]]}
    bad = kv.apply(cmd)
    assert bad["ok"] is False and bad["error"] == "not_a_list" and bad["definite"]
    assert kv.data["x"] == [1, 3], "a failed transaction changed nothing"
    assert cmd == {"op": "txn", "txn": [["append", "x", 9], ["append", "w", 1]]}
    assert KVStore.restore(kv.snapshot()) == kv


@pytest.mark.parametrize("txn", [None, [], [["append", 1, 2]], [["w", "x", 1]], [["r", "x"]],
                                 "x", [["append", "x", 1], 7]])
def test_malformed_transactions_are_refused(txn: Any) -> None:
    req, why = wire.validate_request({"id": 1, "op": "txn", "txn": txn})
    assert req is None and why
    with pytest.raises(ValueError):
        check_command({"op": "txn", "txn": txn})


def test_wire_cleans_a_transaction() -> None:
    req, why = wire.validate_request({"id": 4, "op": "txn", "extra": 1,
                                      "txn": [["append", "x", [1]], ["r", "y", [9]]]})
    assert why == ""
    assert req == {"id": 4, "op": "txn", "txn": [["append", "x", [1]], ["r", "y", None]]}
    assert check_command({"op": "txn", "txn": req["txn"]}) is not None
    parts = split_txn({"op": "txn", "txn": req["txn"]})
    assert [p["part"] for p in parts] == [[0, 2], [1, 2]]
    assert all(check_command(p) is p for p in parts)


# --- on the simulated network --------------------------------------------------------


class TxnLoad:
    """Random transactions of 1-4 micro-operations over a few keys, every
    appended value unique per key (a net's ``workload``)."""

    def __init__(self, keys: str = "xyz") -> None:
        self.keys = keys
        self.n = 0

    def __call__(self, rng: random.Random) -> dict[str, Any]:
        mops = []
        for _ in range(rng.randint(1, 4)):
            k = rng.choice(self.keys)
            if rng.random() < 0.5:
                self.n += 1
                mops.append(["append", k, self.n])
            else:
                mops.append(["r", k, None])
        return {"op": "txn", "txn": mops}


def txn_events(net: SimNet) -> list[dict[str, Any]]:
    """The transactions of ``net.requests`` as a Jepsen-form history: one
    process per request; ok (reads filled in), fail (definite) or info."""
    timed = []
    for n, r in enumerate(net.requests.values()):
        if r.req.get("op") != "txn":
            continue
        base = {"process": n, "f": "txn", "key": None}
        timed.append((r.invoked, 0, dict(base, type="invoke", value=r.req["txn"])))
        if r.reply is None:
            continue
        if r.reply.get("ok"):
            ev = dict(base, type="ok", value=r.reply["value"])
        else:
            ev = dict(base, type="fail" if r.reply.get("definite") else "info",
                      value=r.req["txn"])
        timed.append((r.completed, 1, ev))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [dict(ev, index=i, time=t) for i, (t, _o, ev) in enumerate(timed)]


WEIGHTS = {"deliver": 50, "drop": 4, "duplicate": 3, "tick": 25, "propose": 12, "flush": 3,
           "crash": 1, "restart": 2, "partition": 1, "heal": 2}


def paxos_net(seed: int, **options: Any) -> SimNet:
    return SimNet(PAXOS.make_core, ["n1", "n2", "n3"], seed=seed, options=options,
                  codec=PAXOS.codec, contiguous_log=False)


def raft_net(seed: int, **options: Any) -> SimNet:
    net, _inv = new_net(seed, 3, wire=True, **options)
    return net


def run(net: SimNet, steps: int, weights: dict[str, float] = WEIGHTS) -> Any:
    net.workload = TxnLoad()  # type: ignore[method-assign]
    for _ in range(steps):
        net.random_step(weights)
    net.recover()
    assert net.run_until(lambda: len(net.leaders()) == 1, 3000)
    net.run_until(lambda: all(r.reply is not None for r in net.requests.values()), 300)
    return check_list_append(pair(txn_events(net)), "strict-serializable")


@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_transactions_stay_strict_serializable_under_faults(system: str) -> None:
    oks = 0
    for seed in range(25):
        opts = {"snapshot_entries": 12 if seed % 2 else 10_000}
        net = raft_net(seed, **opts) if system == "raft" else paxos_net(seed, **opts)
        result = run(net, 500)
        assert result.valid, f"{system} seed {seed}: {[a.sentence for a in result.anomalies]}"
        oks += sum(1 for r in net.requests.values() if r.reply and r.reply.get("ok"))
        if system == "raft":
            settle(net)
    assert oks > 300, "too few transactions completed to mean anything"


CALM = {"deliver": 60, "tick": 25, "propose": 15}


@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_txn_split_is_caught_without_faults(system: str) -> None:
    """Split transactions interleave with each other with no fault at all."""
    caught = 0
    for seed in range(6):
        net = (raft_net if system == "raft" else paxos_net)(seed, bugs=["txn-split"])
        result = run(net, 1500, CALM)
        caught += not result.valid
    assert caught >= 3, f"txn-split caught in only {caught} of 6 fault-free schedules"


def test_txn_dirty_read_is_caught_when_the_leader_is_cut_off() -> None:
    """A leader cut off from the others still answers read-only transactions
    from its own log: reads of appends that never commit."""
    caught = 0
    for seed in range(10):
        net = raft_net(seed, bugs=["txn-dirty-read"])
        caught += not run(net, 800).valid
    assert caught >= 2, f"txn-dirty-read caught in only {caught} of 10 faulty schedules"
    clean = sum(not run(raft_net(seed, bugs=["txn-dirty-read"]), 800, CALM).valid
                for seed in range(3))
    assert clean == 0, "without faults a dirty read is of entries that do commit"


# --- real processes ------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(120)
@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_real_nodes_run_transactions(system: str, tmp_path: Any) -> None:
    """Three node processes, four client threads running transactions, the
    leader killed in the middle: the history is strict-serializable and a
    malformed transaction is refused."""
    import sys
    import threading
    import time

    from harness.cluster import LocalCluster
    from nodes.client import request
    from nodes.common.clusterfile import write_cluster

    cj = write_cluster(tmp_path, 3, net="direct",
                       timing={"heartbeat_ms": 50, "election_timeout_ms": [300, 600]})
    lc = LocalCluster(cj, [sys.executable, "-m", "nodes", system], tmp_path / "logs")
    events: list[dict[str, Any]] = []
    lock = threading.Lock()
    t0 = time.monotonic_ns()
    load = TxnLoad("abcd")
    try:
        lc.start_all()
        lc.wait_ready(30)
        addrs = dict(lc.client_addrs)
        bad = request(addrs, {"op": "txn", "txn": [["append", 3, 1]]}, 5.0)[1]
        assert bad is not None and bad["error"] == "malformed", bad
        stop = threading.Event()

        def client(p: int) -> None:
            rng = random.Random(p)
            while not stop.is_set():
                with lock:
                    txn = load(rng)["txn"]
                    events.append({"process": p, "type": "invoke", "f": "txn", "key": None,
                                   "value": txn, "time": time.monotonic_ns() - t0})
                _node, reply = request(addrs, {"op": "txn", "txn": txn}, 2.0)
                with lock:
                    ok = bool(reply and reply.get("ok"))
                    kind = "ok" if ok else "fail" if reply and reply.get("definite") else "info"
                    events.append({"process": p, "type": kind, "f": "txn", "key": None,
                                   "value": reply["value"] if ok else txn,
                                   "time": time.monotonic_ns() - t0})
                if kind == "info":
                    p += 100  # Jepsen's rule: go on as a new process

        threads = [threading.Thread(target=client, args=(p,), daemon=True) for p in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        leader = next((n for n in lc.node_ids
                       if (request({n: addrs[n]}, {"op": "status"}, 1.0)[1] or {}).get("role")
                       == "leader"), None)
        if leader is not None:
            lc.kill(leader)
            time.sleep(1.5)
            lc.start(leader)
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        lc.close()
    for i, ev in enumerate(events):
        ev["index"] = i
    result = check_list_append(pair(events), "strict-serializable")
    oks = sum(ev["type"] == "ok" for ev in events)
    assert oks > 50, f"only {oks} transactions completed"
    assert result.valid, [a.sentence for a in result.anomalies]
