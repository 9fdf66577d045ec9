"""A seeded, synthetic run folder: for the report's tests, its benchmark and demos.

A test fixture (tests/testkit/), not part of the installed packages.

Owns: `write_synthetic_run`, which writes every file of a run folder
(docs/run-folder.md) without starting a cluster: history.jsonl with client
ops and nemesis events, metrics.jsonl (status and proc samples),
nodes/<id>.log, net.jsonl, config.json, cluster.json and results.json
(through reports.runfolder, so it carries the schema version). With
`violation=True` one key gets a stale read and results.json carries a
checker anomaly (sentence, ops, prefix as operation ids) shaped like
`CheckResult.to_dict()`.

Invariants: the same arguments give byte-identical files (one seeded Random,
a fixed start time); nothing here claims to be a real run (`"system":
"synthetic"`).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MS = 1_000_000


def _dump(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":")))
            fh.write("\n")


def write_synthetic_run(
    run_dir: Path,
    *,
    ops: int = 2000,
    clients: int = 5,
    nodes: int = 5,
    seed: int = 1,
    violation: bool = False,
    keys: int = 5,
    net: bool = True,
) -> Path:
    """Writes a synthetic run folder with about `ops` client operations; returns run_dir."""
    rng = random.Random(seed)
    run_dir = Path(run_dir)
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    node_ids = [f"n{i + 1}" for i in range(nodes)]
    # Average op ~ 10 ms per client: pick the duration that yields `ops` operations.
    duration = max(2_000 * MS, int(ops / clients * 10 * MS))
    faults = [  # (kind, value, start fraction, end fraction)
        ("kill", ["n1"], 0.18, 0.28),
        (
            "partition",
            {
                "shape": "halves",
                "oneway": False,
                "grudge": {
                    "n1": ["n3", "n4", "n5"],
                    "n2": ["n3", "n4", "n5"],
                    "n3": ["n1", "n2"],
                    "n4": ["n1", "n2"],
                    "n5": ["n1", "n2"],
                },
            },
            0.42,
            0.56,
        ),
        ("pause", ["n4"], 0.70, 0.78),
        ("net", {"links": "all", "loss": 0.2, "delay_ms": 30}, 0.86, 0.93),
    ]
    windows = [(k, v, int(a * duration), int(b * duration)) for k, v, a, b in faults]

    def in_fault(t: int) -> str | None:
        for k, _, a, b in windows:
            if a <= t < b:
                return k
        return None

    # -- client operations -------------------------------------------------------------
    events: list[dict] = []
    latest: dict[str, int] = {}
    counter = [0]
    anomaly_at = int(0.62 * duration)
    anomaly_ops: list[dict] = []
    for c in range(clients):
        process = c
        t = rng.randrange(0, 5 * MS)
        while t < duration:
            f = rng.choices(["read", "write", "cas"], [5, 3, 2])[0]
            key = f"k{rng.randrange(keys)}"
            value: Any = None
            if f == "write":
                counter[0] += 1
                value = counter[0]
            elif f == "cas":
                counter[0] += 1
                value = [latest.get(key, 0), counter[0]]
            fault = in_fault(t)
            lat = int(rng.lognormvariate(1.4, 0.5) * MS)
            typ = "ok"
            if fault in ("kill", "partition"):
                typ = rng.choices(["ok", "fail", "info"], [5, 2, 3])[0]
                lat *= 6
            elif fault == "pause":
                typ = rng.choices(["ok", "info"], [8, 2])[0]
                lat *= 3
            elif fault == "net":
                lat += rng.randrange(20, 80) * MS
                typ = rng.choices(["ok", "info"], [9, 1])[0]
            elif rng.random() < 0.01:
                typ = "fail"
            if typ == "info":
                lat = 500 * MS  # the client's timeout
            if typ == "fail":
                lat = max(MS // 2, lat // 4)
            inv = {
                "time": t,
                "process": process,
                "type": "invoke",
                "f": f,
                "key": key,
                "value": value,
            }
            done: dict[str, Any] = {
                "time": t + lat,
                "process": process,
                "type": typ,
                "f": f,
                "key": key,
                "value": value,
                "node": rng.choice(node_ids),
            }
            if f == "read":
                done["value"] = latest.get(key) if typ == "ok" else None
            if typ == "fail":
                done["error"] = "not_leader" if f != "cas" else "cas_mismatch"
                done["definite"] = True
            if typ == "info":
                done["error"] = "timeout"
            if typ == "ok" and f in ("write", "cas"):
                latest[key] = counter[0]
            if typ == "info" and rng.random() < 0.15:
                done = {}  # never completed: an open invoke
            events.append(inv)
            if done:
                events.append(done)
            if typ == "info":
                process += clients  # Jepsen: an unsure worker continues as a new process
            t += lat + rng.randrange(0, 4 * MS)
    if violation:
        # A stale read on k-stale: write 1 acknowledged, write 2 acknowledged, then a read sees 1.
        k = "k-stale"
        p = clients * 1000  # processes of their own, so they cannot overlap the workers' ops
        seq = [
            (p, "write", 1001, anomaly_at - 60 * MS, anomaly_at - 52 * MS, 1001),
            (p + 1, "read", None, anomaly_at - 45 * MS, anomaly_at - 40 * MS, 1001),
            (p, "write", 1002, anomaly_at - 30 * MS, anomaly_at - 18 * MS, 1002),
            (p + 1, "read", None, anomaly_at - 12 * MS, anomaly_at - 6 * MS, 1002),
            (p + 2, "read", None, anomaly_at, anomaly_at + 7 * MS, 1001),
        ]
        for proc, f, v, a, b, res in seq:
            inv = {"time": a, "process": proc, "type": "invoke", "f": f, "key": k, "value": v}
            ok = {
                "time": b,
                "process": proc,
                "type": "ok",
                "f": f,
                "key": k,
                "value": res if f == "read" else v,
                "node": "n3" if proc != p + 2 else "n1",
            }
            events += [inv, ok]
            anomaly_ops.append((inv, ok))
    for w_kind, w_val, a, b in windows:
        events.append(
            {"time": a, "process": "nemesis", "type": "info", "f": w_kind, "value": w_val}
        )
        events.append(
            {"time": b, "process": "nemesis", "type": "info", "f": w_kind + "-end", "value": w_val}
        )
    events.sort(key=lambda e: (e["time"], 0 if e["process"] == "nemesis" else 1))
    for i, e in enumerate(events):
        e["index"] = i
    history = [{"index": e.pop("index"), **e} for e in events]
    _dump(run_dir / "history.jsonl", history)

    # -- cluster state: who led when -----------------------------------------------------
    metrics: list[dict] = []
    logs: dict[str, list[str]] = {n: [] for n in node_ids}
    step = max(100 * MS, duration // 1500)
    leader, term = "n1", 2
    prev_role: dict[str, str] = {}

    def wall(t: int) -> str:
        return (START + timedelta(microseconds=t // 1000)).isoformat(timespec="milliseconds")

    for n in node_ids:
        logs[n].append(f"{wall(0)} INFO {n} started, data dir data/{n}")
    t = 0
    commit = 0
    while t <= duration:
        fault = None
        for k, v, a, b in windows:
            if a <= t < b:
                fault = (k, v)
        if fault and fault[0] == "kill" and leader == "n1":
            leader, term = None, term + 1
        if fault and fault[0] == "kill" and leader is None and t > windows[0][2] + 400 * MS:
            leader = "n3"
        if fault and fault[0] == "partition" and leader in ("n1", "n2", None):
            leader, term = "n4", term + 1
        if fault and fault[0] == "pause" and leader == "n4" and t > windows[2][2] + 300 * MS:
            leader, term = "n2", term + 1
        commit += rng.randrange(5, 40)
        for n in node_ids:
            dead = bool(fault and fault[0] == "kill" and n in fault[1])
            paused = bool(fault and fault[0] == "pause" and n in fault[1])
            role = "leader" if n == leader else "follower"
            if leader is None and n == "n3" and not dead:
                role = "candidate"
            if fault and fault[0] == "partition" and n == "n1":
                role = "leader" if t < windows[1][2] + 600 * MS else "candidate"
            up = not dead and not paused
            metrics.append(
                {
                    "time": t,
                    "kind": "status",
                    "node": n,
                    "up": up,
                    "role": role if up else None,
                    "term": term if up else None,
                    "leader": leader if up else None,
                    "commit_index": commit,
                    "last_applied": commit,
                    "log_len": commit + 3,
                }
            )
            metrics.append(
                {
                    "time": t,
                    "kind": "proc",
                    "node": n,
                    "pid": None if dead else 4000 + int(n[1:]),
                    "state": "dead" if dead else ("paused" if paused else "running"),
                    "cpu": 0.0
                    if not up
                    else round(rng.uniform(2, 9) * (3 if role == "leader" else 1), 1),
                    "rss": 0
                    if dead
                    else (38 + (t // (duration // 10 or 1)) + rng.randrange(3)) * 1 << 20,
                }
            )
            shown = "down" if dead else ("paused" if paused else role)
            if prev_role.get(n) != shown:
                if shown == "leader":
                    logs[n].append(f"{wall(t)} INFO {n} became leader at term {term}")
                elif shown == "candidate":
                    logs[n].append(
                        f"{wall(t)} INFO {n} election timeout, campaigning at term {term}"
                    )
                elif shown == "follower":
                    logs[n].append(f"{wall(t)} INFO {n} following {leader} at term {term}")
                elif shown == "down":
                    logs[n].append(f"{wall(t)} INFO {n} received SIGKILL")
                prev_role[n] = shown
            if rng.random() < 0.02:
                logs[n].append(f"{wall(t)} DEBUG {n} commit_index={commit} applied={commit}")
        t += step
    _dump(run_dir / "metrics.jsonl", metrics)
    if violation:
        logs["n1"].append(
            f"{wall(anomaly_at + 2 * MS)} INFO n1 served read k-stale locally (lease)"
        )
    for n, lines in logs.items():
        lines.sort()
        (run_dir / "nodes" / f"{n}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")

    # -- message journal ---------------------------------------------------------------------
    if net:
        msgs: list[dict] = []
        t = 0
        while t < duration:
            lead = "n3" if t > windows[0][2] else "n1"
            for n in node_ids:
                if n == lead:
                    continue
                dropped = bool(in_fault(t) in ("partition", "net") and rng.random() < 0.5)
                if violation and abs(t - anomaly_at) < 150 * MS and n == "n1":
                    dropped = True  # n1 is cut off around the stale read it serves
                msgs.append(
                    {
                        "time": t,
                        "src": lead,
                        "dest": n,
                        "type": "append_entries",
                        "action": "drop" if dropped else "deliver",
                        "term": term,
                    }
                )
                if not dropped:
                    msgs.append(
                        {
                            "time": t + 2 * MS,
                            "src": n,
                            "dest": lead,
                            "type": "append_entries_reply",
                            "action": "deliver",
                            "term": term,
                        }
                    )
            t += 50 * MS
        msgs.sort(key=lambda m: m["time"])
        _dump(run_dir / "net.jsonl", msgs)

    # -- config, cluster, results ----------------------------------------------------------------
    name = "synthetic-violation" if violation else "synthetic"
    command = f"harness run --system raft --nodes {nodes} --concurrency {clients} --seed {seed}"
    (run_dir / "config.json").write_text(
        json.dumps(
            {
                "name": name,
                "system": "raft",
                "nodes": nodes,
                "concurrency": clients,
                "seed": seed,
                "nemesis": "kill,pause,partition,net",
                "duration_s": duration / 1e9,
            },
            indent=1,
        )
    )
    (run_dir / "cluster.json").write_text(
        json.dumps(
            {
                "nodes": {
                    n: {
                        "peer_bind": f"tcp://127.0.0.1:{41000 + i}",
                        "client_bind": f"tcp://127.0.0.1:{42000 + i}",
                        "data_dir": f"data/{n}",
                    }
                    for i, n in enumerate(node_ids)
                },
                "routes": {},
            },
            indent=1,
        )
    )
    from checker.history import pair
    from reports.analysis import counts, run_figures
    from reports.runfolder import write_results

    all_ops = pair(history)
    anomalies = []
    if violation:
        # Operations are named by id: their position in the paired history.
        ids = {(op.process, op.start): i for i, op in enumerate(all_ops)}
        seq = [ids[(inv["process"], inv["time"])] for inv, _ok in anomaly_ops]
        anomalies.append(
            {
                "key": "k-stale",
                "sentence": (
                    f"read of k-stale by process {clients * 1000 + 2} returned 1001 at "
                    f"{anomaly_at / 1e9:.3f} s, but write 1002 had been acknowledged "
                    f"before it began: a stale read"
                ),
                "ops": [seq[4], seq[2]],  # the stale read, then the write it missed
                "prefix": seq[:4],
            }
        )
    figures = run_figures(history)
    results = {
        "verdict": "invalid" if violation else "valid",
        "exit_code": 1 if violation else 0,
        "name": name,
        "system": "synthetic",
        "seed": seed,
        "command": command,
        "started": START.isoformat(),
        "duration_s": round(duration / 1e9, 3),
        "nodes": nodes,
        "nemesis": "kill,pause,partition,net",
        "counts": counts(all_ops),
        "ops_per_s": round(len(all_ops) / (duration / 1e9), 1),
        "latency_ms": figures["latency_ms"],
        "checker": {"valid": not violation, "seconds": 0.01, "model": "kv", "anomalies": anomalies},
        "availability": figures["availability"],
    }
    write_results(run_dir, results)
    return run_dir
