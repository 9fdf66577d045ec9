"""CPU cost of the pure Raft core per replicated write, without sockets or disk.

    python benchmarks/raft_core_bench.py [--writes 50000] [--inflight 1,16,128]

Drives a leader and two followers in one process the way the driver does:
``inflight`` client writes per batch into the leader (one ``requests``
call), one ``ready()``, the applier, every message through the codec and
msgpack to its destination, ``advance``, until all are acknowledged. Prints
the CPU microseconds per write spent in the leader's core and applier
(requests, step, ready, apply, advance, encode/decode of its messages) and
in each follower, so the node's budget (5,000 fsynced writes/s on 2 cores = at most
~200 us of leader CPU per write, driver and fsync included) can be checked
against the core's share.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack

from nodes.common.applier import Applier
from nodes.common.core_api import CoreConfig, Restored, Timing
from nodes.raft import PROTOCOL


def run(writes: int, inflight: int) -> tuple[float, float]:
    ids = ("n1", "n2", "n3")
    codec = PROTOCOL.codec
    cores = {
        i: PROTOCOL.make_core(
            CoreConfig(i, tuple(p for p in ids if p != i), Timing(),
                       {"snapshot_entries": 10_000}, random.Random(k)),
            Restored())
        for k, i in enumerate(ids)
    }
    appliers = {i: Applier(i, None, 10_000) for i in ids}
    cpu = dict.fromkeys(ids, 0.0)
    clock = time.process_time
    packb, unpackb = msgpack.Packer(use_bin_type=True).pack, msgpack.unpackb

    def pump(node: str) -> int:
        """ready() at ``node`` and deliver its messages, recursively; returns replies."""
        replies = 0
        queue = [node]
        while queue:
            src = queue.pop()
            t = clock()
            core = cores[src]
            rd = core.ready()
            if rd is None:
                cpu[src] += clock() - t
                continue
            snap = appliers[src].apply(rd)
            frames = [(codec.dest(m), packb(codec.encode(m)))
                      for m in rd.early_messages + rd.messages]
            core.advance(rd)
            if snap is not None:
                core.compact(snap)
            cpu[src] += clock() - t
            replies += len(rd.replies)
            for dest, frame in frames:
                t = clock()
                cores[dest].step(codec.decode(unpackb(frame, raw=False)))
                cpu[dest] += clock() - t
                queue.append(dest)
        return replies

    leader = "n1"
    while cores[leader].status()["role"] != "leader":
        cores[leader].tick()
        pump(leader)
    pump(leader)
    core = cores[leader]
    for k in cpu:
        cpu[k] = 0.0
    done = sent = 0
    while done < writes:
        t = clock()
        batch = []
        for _ in range(inflight):
            sent += 1
            batch.append((b"client", {"id": sent, "op": "write", "key": f"k{sent % 1000}",
                                      "value": sent}))
        core.requests(batch)
        cpu[leader] += clock() - t
        done += pump(leader)
    follower = max(cpu[i] for i in ids if i != leader)
    return cpu[leader] / done * 1e6, follower / done * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=50_000)
    ap.add_argument("--inflight", default="1,16,128")
    args = ap.parse_args()
    print("raft core, 3 nodes in one process, codec + msgpack included, CPU time")
    print(f"{'in flight':>9} {'leader us/write':>16} {'follower us/write':>18}")
    for n in (int(x) for x in args.inflight.split(",")):
        lead, fol = run(args.writes if n > 1 else args.writes // 10, n)
        print(f"{n:>9} {lead:>16.1f} {fol:>18.1f}")


if __name__ == "__main__":
    main()
