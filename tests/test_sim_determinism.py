"""A simulated run is a function of its options and seed (issue 15, "Determinism").

Two processes with different PYTHONHASHSEED run the same simulated config;
history.jsonl must be byte-identical and results.json identical once its
wall-clock fields (reports.runfolder.WALL_CLOCK_FIELDS) are taken out; one of
the two runs the compiled hot path when the install built it, the other pure
Python (nodes/_native.py). The
fault stream is separate from the clients': removing a fault operation leaves
every slot's sequence of operations unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from harness import simrun
from harness.config import RunConfig
from reports.runfolder import without_wall_clock

ROOT = Path(__file__).resolve().parent.parent

RUN = """
import sys
from harness.config import RunConfig
from harness.runner import run
r = run(RunConfig(sim=True, system=sys.argv[1], seed=7, nodes=3, time_limit=6,
                  nemesis="all", nemesis_interval=1.5, store=sys.argv[2], progress=False))
print(r.run_dir)
"""


def _run_in_process(system: str, where: Path, hashseed: str, pure: bool = False) -> Path:
    """The run, in a fresh process under ``where`` (the store is ./store there,
    so the recorded command line is the same); ``pure``: with the compiled hot
    path off (nodes/_native.py), whether or not this install built it."""
    where.mkdir(parents=True)
    env = {**os.environ, "PYTHONHASHSEED": hashseed,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CHECKER_PURE", None)
    env.pop("CONSENSUS_HARNESS_PURE", None)
    if pure:
        env["CONSENSUS_HARNESS_PURE"] = "1"
    out = subprocess.run([sys.executable, "-c", RUN, system, "store"], cwd=where, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return where / out.stdout.strip().splitlines()[-1]


def test_same_seed_same_bytes_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """... and across the compiled and the pure-Python hot path: the second
    process always runs pure Python; the first runs the mypyc build when this
    install has one (nodes/_native.py)."""
    for system in ("raft", "paxos"):
        a = _run_in_process(system, tmp_path / f"a-{system}", "1")
        b = _run_in_process(system, tmp_path / f"b-{system}", "4242", pure=True)
        ha = hashlib.sha256((a / "history.jsonl").read_bytes()).hexdigest()
        hb = hashlib.sha256((b / "history.jsonl").read_bytes()).hexdigest()
        assert ha == hb, system
        ra = json.loads((a / "results.json").read_text())
        rb = json.loads((b / "results.json").read_text())
        assert ra["simulated"] is True and ra["counts"]["ok"] > 100
        # the run was not trivial: every fault kind started at least once
        kinds = {json.loads(line)["f"] for line in (a / "history.jsonl").read_text().splitlines()
                 if '"nemesis"' in line}
        assert {"kill", "pause", "partition", "net"} <= kinds, (system, kinds)
        assert without_wall_clock(ra) == without_wall_clock(rb)
        assert ra["started"] and "wall_s" in ra


def _slot_sequences(events: list[dict], concurrency: int) -> dict[int, list]:
    """Each slot's written values in order (unique: slot + concurrency * n)."""
    seqs: dict[int, list] = {}
    for e in events:
        if e.get("type") != "invoke" or e["f"] not in ("write", "cas"):
            continue
        new = e["value"] if e["f"] == "write" else e["value"][1]
        seqs.setdefault(new % concurrency, []).append((e["f"], e["key"], new))
    return seqs


def test_removing_a_fault_operation_leaves_the_client_operations_unchanged() -> None:
    from faults.plan import recorded_ops

    cfg = simrun.prepare(RunConfig(sim=True, seed=11, nodes=3, time_limit=8, nemesis="all",
                                   nemesis_interval=2.0, progress=False))
    full = simrun.simulate(cfg)
    ops = recorded_ops(full.events)
    assert len(ops) >= 3
    # the same plan replayed, minus its second operation
    fewer = [op for i, op in enumerate(ops) if i != 1]
    replayed = simrun.simulate(cfg, faults=fewer)
    a = _slot_sequences(full.events, cfg.concurrency)
    b = _slot_sequences(replayed.events, cfg.concurrency)
    assert set(a) == set(b)
    for slot in a:
        n = min(len(a[slot]), len(b[slot]))
        assert n > 5
        assert a[slot][:n] == b[slot][:n], slot
    # and the faults are what was asked: one start fewer
    starts = [e for e in replayed.events if e["process"] == "nemesis"
              and not e["f"].endswith("-end")]
    assert len(starts) == len(ops) - 1


def test_the_codec_round_trip_changes_nothing() -> None:
    cfg = simrun.prepare(RunConfig(sim=True, system="paxos", seed=5, nodes=3, time_limit=4,
                                   progress=False))
    a = simrun.simulate(cfg, wire=True)
    b = simrun.simulate(cfg, wire=False)
    assert simrun.history_text(a.events) == simrun.history_text(b.events)


def test_the_client_mask_drops_slots_and_skips_ops_leaving_the_rest_as_drawn() -> None:
    import dataclasses

    cfg = simrun.prepare(RunConfig(sim=True, seed=3, nodes=3, time_limit=3, nemesis="none",
                                   progress=False))
    full = simrun.simulate(cfg, check=False)
    masked = simrun.simulate(dataclasses.replace(
        cfg, client_mask={"drop_slots": [0], "skip_ops": [[1, 0], [1, 2]]}), check=False)
    assert full.client_ops == len([e for e in full.events if e["type"] == "invoke"]) - cfg.keys
    assert all(slot != 0 for slot, _ in masked.ops)
    ones = [n for slot, n in masked.ops if slot == 1]
    assert ones[:3] == [1, 3, 4]
    a = _slot_sequences(full.events, cfg.concurrency)
    b = _slot_sequences(masked.events, cfg.concurrency)
    assert 0 not in b
    # slot 2 is untouched: the same operations, in the same order
    n = min(len(a[2]), len(b[2]))
    assert n > 5 and a[2][:n] == b[2][:n]


def test_keep_ops_invokes_only_the_listed_operations_as_drawn() -> None:
    import dataclasses

    cfg = simrun.prepare(RunConfig(sim=True, seed=3, nodes=3, time_limit=3, nemesis="none",
                                   progress=False))
    full = simrun.simulate(cfg, check=False)
    keep = [[1, 0], [1, 2], [1, 5], [2, 1], [2, 3]]
    masked = simrun.simulate(dataclasses.replace(
        cfg, client_mask={"keep_ops": keep, "skip_ops": [[2, 3]]}), check=False)
    # only the kept ones (the one also in skip_ops is skipped), never more
    assert sorted(masked.ops) == [(1, 0), (1, 2), (1, 5), (2, 1)]
    # each kept operation is the one the unmasked run drew at that place
    # (cas's expected value may differ: it comes from what the slots saw)
    def drawn(out: simrun.SimOutcome) -> dict[tuple[int, int], tuple]:
        invokes = [e for e in out.events if e["type"] == "invoke"][:len(out.ops)]
        return {op: (e["f"], e["key"], e["value"] if e["f"] == "write" else None)
                for op, e in zip(out.ops, invokes)}
    a, b = drawn(full), drawn(masked)
    assert b == {op: a[op] for op in b}
    # an empty list keeps nothing at all; no keep_ops is no such mask
    none = simrun.simulate(dataclasses.replace(cfg, client_mask={"keep_ops": []}), check=False)
    assert none.ops == [] and none.client_ops == 0
    same = simrun.simulate(dataclasses.replace(cfg, client_mask={"drop_slots": []}), check=False)
    assert simrun.history_text(same.events) == simrun.history_text(full.events)


def test_stop_on_anomaly_ends_the_simulated_load_at_the_streaming_checkers_first_anomaly() -> None:
    cfg = simrun.prepare(RunConfig(sim=True, bugs=["early-ack"], stop_on_anomaly=True,
                                   time_limit=20, seed=1, progress=False))
    a = simrun.simulate(cfg)
    b = simrun.simulate(cfg)
    assert a.verdict == "invalid" and a.load_seconds < 10
    assert any("--stop-on-anomaly ended the load" in n for n in a.notes)
    assert simrun.history_text(a.events) == simrun.history_text(b.events)
    import dataclasses

    full = simrun.simulate(dataclasses.replace(cfg, stop_on_anomaly=False), check=False)
    assert full.load_seconds == 20 and not any("stop-on-anomaly" in n for n in full.notes)
