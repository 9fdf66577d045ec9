"""Metrics: node ``status`` polls and per-process CPU/RSS into RUN/metrics.jsonl.

Owns the poller that also tells the nemesis who leads. Line formats are in
docs/run-folder.md ("metrics.jsonl"):
``{"time", "kind": "status", "node", "up", "role", "term", "leader",
"commit_index", "last_applied", "log_len"}`` and
``{"time", "kind": "proc", "node", "pid", "state", "cpu", "rss"}``.

Invariants:
- ``time`` uses the history's clock (ns since run start), so the report can
  line metrics up with operations and faults.
- One status request per node is in flight at a time (each node has its own
  socket), and a poll never takes longer than ``timeout``.
- The poller only reads; it never changes the cluster.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import IO, Any

import psutil

from harness.client import NodeClient
from harness.cluster import LocalCluster
from harness.recorder import Clock

STATUS_FIELDS = ("role", "term", "leader", "commit_index", "last_applied", "log_len")


def term_of(status: dict[str, Any] | None) -> int:
    """A ``status`` reply's term: Raft's term or Paxos's promised ballot round
    (0 when the node says neither)."""
    if not status:
        return 0
    term = status.get("term", status.get("ballot"))
    return term if isinstance(term, int) else 0


async def live_status(cluster: LocalCluster, client: NodeClient, node: str,
                      timeout: float) -> dict[str, Any] | None:
    """``node``'s status, or None when it is dead, paused (it cannot answer;
    don't queue requests for it) or silent for ``timeout`` seconds."""
    if not cluster.is_running(node) or cluster.is_paused(node):
        return None
    return await client.status(node, timeout)


class MetricsPoller:
    """Polls every node a few times a second; keeps the latest status of each."""

    def __init__(
        self,
        cluster: LocalCluster,
        path: Path,
        clock: Clock,
        *,
        interval_s: float = 0.25,
        timeout_s: float = 0.2,
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - see close()
        self._client = NodeClient(cluster.client_addrs, cluster.node_ids[0], follow_leader=False)
        self._procs: dict[int, psutil.Process] = {}
        self.latest: dict[str, dict[str, Any] | None] = {n: None for n in cluster.node_ids}

    async def poll_once(self) -> None:
        now = self.clock.now()
        try:
            # Bounded as a whole: one poll that never returns must not stop the
            # metrics (and the leader answer the nemesis relies on) for the run.
            replies = await asyncio.wait_for(
                asyncio.gather(
                    *(self._status(n) for n in self.cluster.node_ids), return_exceptions=True
                ),
                self.timeout_s * 2 + 1.0,
            )
        except TimeoutError:
            replies = [None] * len(self.cluster.node_ids)
        lines: list[dict[str, Any]] = []
        for node, reply in zip(self.cluster.node_ids, replies):
            status = reply if isinstance(reply, dict) else None
            self.latest[node] = status
            line: dict[str, Any] = {"time": now, "kind": "status", "node": node,
                                    "up": status is not None}
            for key in STATUS_FIELDS:
                value = (status or {}).get(key)
                if key == "term" and value is None and status is not None:
                    value = status.get("ballot")  # Paxos says ballot
                line[key] = value
            lines.append(line)
        for node in self.cluster.node_ids:
            lines.append(self._proc_sample(now, node))
        self._file.write("".join(json.dumps(line) + "\n" for line in lines))
        self._file.flush()

    async def _status(self, node: str) -> dict[str, Any] | None:
        return await live_status(self.cluster, self._client, node, self.timeout_s)

    def _proc_sample(self, now: int, node: str) -> dict[str, Any]:
        pid = self.cluster.pid(node)
        sample: dict[str, Any] = {"time": now, "kind": "proc", "node": node, "pid": pid,
                                  "state": "dead", "cpu": 0.0, "rss": 0}
        if pid is None:
            return sample
        sample["state"] = "paused" if self.cluster.is_paused(node) else "running"
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                proc.cpu_percent(None)  # the first call only sets the baseline
            sample["cpu"] = proc.cpu_percent(None)
            sample["rss"] = proc.memory_info().rss
        except psutil.Error:
            sample["state"] = "dead"
        return sample

    def has_leader(self) -> bool:
        """True when some node names a leader, or when no node's status says
        anything about leaders (a user's node may not), so nobody waits forever."""
        answered = [s for s in self.latest.values() if s]
        if answered and not any("leader" in s or "role" in s for s in answered):
            return True
        return self.leader() is not None

    def leader(self) -> str | None:
        """The node that says it leads in the highest term; else the most named hint."""
        best: tuple[int, str] | None = None
        hints: Counter[str] = Counter()
        for node, status in self.latest.items():
            if not status:
                continue
            term_key = term_of(status)
            if status.get("role") == "leader" and (best is None or term_key > best[0]):
                best = (term_key, node)
            hint = status.get("leader")
            if isinstance(hint, str) and hint in self.latest:
                hints[hint] += 1
        if best is not None:
            return best[1]
        return hints.most_common(1)[0][0] if hints else None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except TimeoutError:
                pass

    def close(self) -> None:
        self._client.close()
        if not self._file.closed:
            self._file.close()
