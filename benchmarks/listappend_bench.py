"""List-append checker speed: transactions/s at 100k and 1M transactions.

    .venv/bin/python benchmarks/listappend_bench.py [--txns 100000,1000000] [--runs 1]

Generates a history the way a correct strictly serializable store would
produce it (20 processes, transactions of 1-7 micro-operations, 4 on average,
over 1,000 live keys that rotate once a list holds 32 values, about 1% of the
transactions ``info``), plants a few G-single and G1c pairs on fresh keys,
writes it as JSON Lines, and times what ``checker.check_file(path,
"list-append")`` (``harness check --model list-append``) does -- reading
run by run into the checker's table, pairing and checking under strict
serializability -- in a fresh process each, keeping every anomaly. Prints wall and CPU seconds, transactions/s (by wall
time and by CPU time: on a shared machine the CPU figure is what one free
core would take), peak RSS, and how many planted anomalies were named.
Elle's published figure, for comparison: about 100-160k transactions/s on a
many-core JVM. Run ``uptime`` beside it: the machine's load is part of the
wall figure.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def generate(n: int, seed: int = 1, processes: int = 20, keys: int = 1000,
             plants: int = 5) -> tuple[list[dict], int]:
    """Events of ``n`` transactions; returns (events, planted anomalies)."""
    rng = random.Random(seed)
    store: dict[str, list[int]] = {}
    live = [f"k{i}" for i in range(keys)]
    next_key = keys
    counter: dict[str, int] = {}
    events: list[dict] = []
    open_: dict[int, list] = {}
    plant_at = set(rng.sample(range(n), plants * 2)) if n > plants * 4 else set()
    planted = 0
    done = 0
    while done < n or open_:
        p = rng.randrange(processes)
        if p in open_:
            mops = open_.pop(p)
            filled = []
            for f, k, v in mops:  # executed atomically now: between invoke and ok
                if f == "append":
                    store.setdefault(k, []).append(v)
                    filled.append([f, k, v])
                else:
                    filled.append([f, k, list(store.get(k, ()))])
            if rng.random() < 0.01:
                events.append({"process": p, "type": "info", "f": "txn", "value": mops})
            else:
                events.append({"process": p, "type": "ok", "f": "txn", "value": filled})
            continue
        if done >= n:
            continue
        if done in plant_at and planted < plants * 2:
            events.extend(_plant(planted % 2, f"plant{planted}", processes + planted))
            planted += 1
            done += 2
            continue
        mops = []
        for _ in range(rng.randint(1, 7)):
            i = rng.randrange(keys)
            k = live[i]
            if rng.random() < 0.5:
                c = counter.get(k, 0) + 1
                counter[k] = c
                mops.append(["append", k, c])
                if c >= 32:
                    live[i] = f"k{next_key}"
                    next_key += 1
            else:
                mops.append(["r", k, None])
        open_[p] = mops
        events.append({"process": p, "type": "invoke", "f": "txn", "value": mops})
        done += 1
    for i, ev in enumerate(events):
        ev["index"] = i
        ev["time"] = i * 1000
    return events, planted


def _plant(kind: int, key: str, proc: int) -> list[dict]:
    """Two overlapping transactions on fresh keys: a G-single (kind 0) or a G1c."""
    p, q = key + "p", key + "q"
    if kind == 0:  # T1 sees T0's append to q but not to p
        a = [["append", p, 1], ["append", q, 1]]
        b_inv = [["r", p, None], ["r", q, None]]
        b_ok = [["r", p, []], ["r", q, [1]]]
        a_ok = a
    else:  # each reads the other's append
        a = [["append", p, 1], ["r", q, None]]
        a_ok = [["append", p, 1], ["r", q, [1]]]
        b_inv = [["append", q, 1], ["r", p, None]]
        b_ok = [["append", q, 1], ["r", p, [1]]]
    return [
        {"process": proc, "type": "invoke", "f": "txn", "value": a},
        {"process": proc + 1000, "type": "invoke", "f": "txn", "value": b_inv},
        {"process": proc, "type": "ok", "f": "txn", "value": a_ok},
        {"process": proc + 1000, "type": "ok", "f": "txn", "value": b_ok},
    ]


def one(path: str) -> None:
    """Child process: check one file as ``harness check`` does; print a JSON line."""
    from checker.history import iter_events, no_gc
    from checker.listappend import TxnTableBuilder, check_list_append

    # check_file(path, "list-append")'s steps, keeping every anomaly (it keeps 8)
    t0, c0 = time.perf_counter(), time.process_time()
    with no_gc():
        builder = TxnTableBuilder()
        for events in iter_events(path):
            builder.feed(events)
        res = check_list_append(builder.finish(), "strict-serializable", max_anomalies=0)
    t1, c1 = time.perf_counter(), time.process_time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"total": t1 - t0, "cpu": c1 - c0, "rss_mb": rss, "txns": res.txns,
                      "kinds": res.kinds, "anomalies": len(res.anomalies),
                      "planted_found": sum(1 for a in res.anomalies
                                           if "plant" in str(a.key))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txns", default="100000,1000000")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one)
        return
    print(f"{'txns':>9} {'wall s':>7} {'cpu s':>7} {'txn/s wall':>11} {'txn/s cpu':>10} "
          f"{'RSS MB':>7}  planted named  (Elle: ~100-160k txn/s, many-core JVM)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.txns.split(",")):
            events, planted = generate(n)
            path = Path(tmp) / f"h{n}.jsonl"
            with path.open("w") as f:
                for ev in events:
                    f.write(json.dumps(ev) + "\n")
            del events
            rows = []
            for _ in range(args.runs):
                out = subprocess.run([sys.executable, __file__, "--one", str(path)],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout))
            r = sorted(rows, key=lambda x: x["total"])[len(rows) // 2]
            print(f"{r['txns']:>9} {r['total']:>7.2f} {r['cpu']:>7.2f} "
                  f"{r['txns'] / r['total']:>11.0f} {r['txns'] / r['cpu']:>10.0f} "
                  f"{r['rss_mb']:>7.0f}  {planted:>7} {r['planted_found']:>5} "
                  f"{','.join(r['kinds'])}")


if __name__ == "__main__":
    main()
