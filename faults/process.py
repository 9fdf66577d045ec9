"""Process faults: kill (SIGKILL, restart later) and pause (SIGSTOP, SIGCONT).

Owns target selection (``one``, ``minority``, ``majority``, ``all``,
``leader``) and the bookkeeping of which nodes this nemesis has killed or
paused, so that ``heal_*`` brings back exactly those.

Invariants:
- A node is added to ``killed``/``paused`` *before* its signal is sent, so a
  heal that runs after an interrupted start still restores it.
- The start event is recorded once the signal has taken effect (the process
  is gone, or the kernel shows it stopped); the end event once the node is
  restarted or resumed. Start and end carry the same value: the sorted ids.
- Everything random comes from the caller's rng.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from faults.api import NemesisContext

log = logging.getLogger(__name__)

TARGETS = ("one", "minority", "majority", "all", "leader")

#: How long a leader lookup may take before the target falls back to a random node.
LEADER_TIMEOUT_S = 2.0


def pick_targets(
    target: str, nodes: Sequence[str], rng: random.Random, leader: str | None = None
) -> list[str]:
    """The nodes a fault aims at, sorted. ``leader`` without a known leader
    aims at one random node (a fault is still injected; its value says where)."""
    nodes = list(nodes)
    n = len(nodes)
    if target == "one" or (target == "leader" and leader not in nodes):
        return [rng.choice(nodes)]
    if target == "leader":
        return [leader]  # type: ignore[list-item]
    if target == "minority":
        k = max(1, (n - 1) // 2)
    elif target == "majority":
        k = n // 2 + 1
    elif target == "all":
        k = n
    else:
        raise ValueError(f"unknown target {target!r} (targets: {', '.join(TARGETS)})")
    return sorted(rng.sample(nodes, min(k, n)))


async def current_leader(leader: Callable[[], Awaitable[str | None]]) -> str | None:
    """The leader from the nodes' status, or None if unknown or too slow to say."""
    try:
        return await asyncio.wait_for(leader(), LEADER_TIMEOUT_S)
    except (TimeoutError, OSError) as exc:
        log.info("no leader for a leader-targeted fault: %s", exc or "timeout")
        return None


class ProcessFaults:
    """Kill/restart and pause/resume through the ClusterHandle, recorded."""

    def __init__(self, ctx: NemesisContext) -> None:
        self.ctx = ctx
        self.killed: list[str] = []
        self.paused: list[str] = []

    async def targets(self, target: str) -> list[str]:
        leader = await current_leader(self.ctx.leader) if target == "leader" else None
        return pick_targets(target, list(self.ctx.cluster.node_ids), self.ctx.rng, leader)

    async def kill(self, nodes: list[str]) -> None:
        cluster = self.ctx.cluster
        self.killed = sorted(set(self.killed) | set(nodes))
        for node in nodes:
            await asyncio.to_thread(cluster.kill, node)
        self.ctx.record("kill", sorted(nodes))
        log.info("killed %s", ", ".join(nodes))

    async def restart(self) -> None:
        """Start every node this nemesis killed, with the same data directory."""
        if not self.killed:
            return
        nodes, cluster = self.killed, self.ctx.cluster
        for node in nodes:
            # started from this thread: LocalCluster gives children started from
            # the main thread a parent-death signal
            if not cluster.is_running(node):
                cluster.start(node)
        self.killed = []
        self.ctx.record("kill-end", nodes)
        log.info("restarted %s", ", ".join(nodes))

    async def pause(self, nodes: list[str]) -> None:
        cluster = self.ctx.cluster
        self.paused = sorted(set(self.paused) | set(nodes))
        for node in nodes:
            await asyncio.to_thread(cluster.pause, node)
        self.ctx.record("pause", sorted(nodes))
        log.info("paused %s", ", ".join(nodes))

    async def resume(self) -> None:
        if not self.paused:
            return
        nodes, cluster = self.paused, self.ctx.cluster
        for node in nodes:
            cluster.resume(node)
        self.paused = []
        self.ctx.record("pause-end", nodes)
        log.info("resumed %s", ", ".join(nodes))
