"""What carrying Maelstrom messages through our network layer costs, in messages/s.

    python benchmarks/maelstrom_carry.py [--seconds 6] [--window 512] [--repeat 3]

Two Maelstrom nodes (this file with ``--node``) play ping-pong: n0 keeps
``--window`` pings in flight to n1, n1 answers each with a pong; n0 counts
the messages (both ways) that arrive in ``--seconds`` and prints the rate on
stderr. The same two programs run:

- **direct**: one router process joins their stdin/stdout the way Maelstrom's
  own network does: it reads each JSON line, looks at ``dest`` and writes the
  line to that node's stdin;
- **carried**: each under ``maelstrom.host`` in a LocalCluster (the harness's
  real setup, ``--net direct``): every message crosses its adapter, a peer
  DEALER/ROUTER over TCP and the other adapter;
- **carried+proxy**: the same through the network proxy (``--net proxy``),
  which is what a run with partitions uses.

The target (issue 18): carried costs at most 20% of direct's throughput.
Prints, for each, the median of ``--repeat`` runs: messages/s, and the CPU
time all its processes spent per 1000 messages (nodes, router or adapters,
proxy), which a loaded machine disturbs less than throughput; and the ratios.
Say the machine's load (printed) when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
try:  # the router parses as fast as the adapter does
    from orjson import loads
except ImportError:  # pragma: no cover
    from json import loads


# --- the node ----------------------------------------------------------------------------


def node(seconds: float, window: int) -> None:
    """n0 keeps ``window`` pings in flight (re-sent after 0.5 s of silence: a message
    sent before the network is up may be lost); n1 answers each."""
    out = sys.stdout
    me = ""
    count = 0
    t0 = last = 0.0
    seq = 0
    fd = sys.stdin.fileno()
    buf = b""

    def ping() -> None:
        nonlocal seq
        seq += 1
        out.write(json.dumps({"src": me, "dest": "n1", "body": {"type": "ping", "msg_id": seq}})
                  + "\n")

    while True:
        if not select.select([fd], [], [], 0.5)[0]:
            if me == "n0" and t0 > 0 and time.monotonic() - last > 0.5:
                for _ in range(window):
                    ping()
                out.flush()
                last = time.monotonic()
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            return
        lines = (buf + data).split(b"\n")
        buf = lines.pop()
        for line in lines:
            msg = json.loads(line)
            body = msg["body"]
            kind = body["type"]
            if kind == "init":
                me = body["node_id"]
                out.write(json.dumps({"src": me, "dest": msg["src"], "body": {
                    "type": "init_ok", "in_reply_to": body["msg_id"]}}) + "\n")
                if me == "n0":
                    print("START", file=sys.stderr, flush=True)
                    t0 = last = time.monotonic()
                    for _ in range(window):
                        ping()
            elif kind == "ping":
                out.write(json.dumps({"src": me, "dest": msg["src"], "body": {
                    "type": "pong", "in_reply_to": body["msg_id"]}}) + "\n")
            elif kind == "pong" and t0 > 0:
                count += 2  # the ping and its pong
                last = time.monotonic()
                if last - t0 >= seconds:
                    print(f"RATE {count / (last - t0):.1f} {count}", file=sys.stderr, flush=True)
                    t0 = -1.0
                    continue
                ping()
        out.flush()


# --- the modes ---------------------------------------------------------------------------


def _node_cmd(seconds: float, window: int) -> list[str]:
    return [sys.executable, str(HERE), "--node", "--seconds", str(seconds),
            "--window", str(window)]


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) so far of these processes and their children."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _result(line: str, cpu0: float, cpu1: float) -> tuple[float, float]:
    """(messages/s, CPU ms per 1000 messages) from n0's ``RATE r count`` line."""
    rate, count = line.split("RATE", 1)[1].split()[:2]
    return float(rate), (cpu1 - cpu0) * 1e6 / max(1, int(count))


def direct(seconds: float, window: int) -> tuple[float, float]:
    """Both programs joined by a minimal JSON-line router (Maelstrom's network, unfaulted)."""
    procs = {nid: subprocess.Popen(_node_cmd(seconds, window), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for nid in ("n0", "n1")}
    pids = [p.pid for p in procs.values()]
    cpu0 = 0.0
    try:
        ins = {nid: p.stdin.fileno() for nid, p in procs.items()}  # type: ignore[union-attr]
        outs = {p.stdout.fileno(): nid for nid, p in procs.items()}  # type: ignore[union-attr]
        for nid in ("n1", "n0"):
            os.write(ins[nid], (json.dumps({"src": "c0", "dest": nid, "body": {
                "type": "init", "msg_id": 1, "node_id": nid, "node_ids": ["n0", "n1"]}})
                + "\n").encode())
        err = procs["n0"].stderr.fileno()  # type: ignore[union-attr]
        partial = {fd: b"" for fd in outs}
        deadline = time.monotonic() + seconds + 30
        while time.monotonic() < deadline:
            ready = select.select([*outs, err], [], [], 1.0)[0]
            if err in ready:
                text = os.read(err, 4096).decode()
                if "START" in text:
                    cpu0 = _cpu(pids) + time.process_time()
                if "RATE" in text:
                    return _result(text, cpu0, _cpu(pids) + time.process_time())
            for fd in ready:
                if fd == err:
                    continue
                data = partial[fd] + os.read(fd, 1 << 16)
                lines = data.split(b"\n")
                partial[fd] = lines.pop()
                by_dest: dict[str, list[bytes]] = {}
                for ln in lines:
                    dest = loads(ln)["dest"]
                    if dest in ins:
                        by_dest.setdefault(dest, []).append(ln)
                for dest, lns in by_dest.items():
                    os.write(ins[dest], b"\n".join(lns) + b"\n")
        raise RuntimeError("direct: no rate reported")
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def carried(seconds: float, window: int, net: str) -> tuple[float, float]:
    """Both programs under maelstrom.host in a LocalCluster."""
    import shlex

    from harness.cluster import LocalCluster
    from nodes.common.clusterfile import write_cluster

    with tempfile.TemporaryDirectory() as tmp:
        cj = write_cluster(Path(tmp), 2, net=net)
        cmd = [sys.executable, "-m", "maelstrom.host", "--command",
               shlex.join(_node_cmd(seconds, window))]
        with LocalCluster(cj, cmd, Path(tmp) / "logs") as lc:
            lc.start_all()
            lc.wait_ready(20)
            log = Path(tmp) / "logs" / "n1.log"
            cpu0 = 0.0
            started = False
            deadline = time.monotonic() + seconds + 30
            while time.monotonic() < deadline:
                text = log.read_text() if log.exists() else ""
                if not started and "START" in text:
                    started, cpu0 = True, _cpu(lc.pids())
                if "RATE" in text:
                    return _result(text, cpu0, _cpu(lc.pids()))
                time.sleep(0.02)
    raise RuntimeError(f"carried ({net}): no rate reported")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--node", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--window", type=int, default=512,
                    help="pings in flight (512: bound by CPU; 64: by round trips)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="direct,carried,carried+proxy")
    args = ap.parse_args()
    if args.node:
        node(args.seconds, args.window)
        return 0
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.seconds:g} s per run, window {args.window}, median of {args.repeat}")
    results: dict[str, float] = {}
    costs: dict[str, float] = {}
    for mode in args.modes.split(","):
        runs = []
        for _ in range(args.repeat):
            if mode == "direct":
                runs.append(direct(args.seconds, args.window))
            else:
                runs.append(carried(args.seconds, args.window,
                                    "proxy" if mode.endswith("proxy") else "direct"))
        results[mode] = statistics.median(r for r, _ in runs)
        costs[mode] = statistics.median(c for _, c in runs)
        print(f"{mode:14} {results[mode]:10.0f} messages/s  {costs[mode]:6.1f} CPU ms per 1000 "
              f"messages  (runs: {', '.join(f'{r:.0f}' for r, _ in runs)})", flush=True)
    if "direct" in results:
        for mode, rate in results.items():
            if mode != "direct":
                print(f"{mode} / direct: throughput {rate / results['direct']:.2f} (target >= 0.80),"
                      f" CPU per message {costs[mode] / costs['direct']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
