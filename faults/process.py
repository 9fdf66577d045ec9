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
- Every end event carries ``evidence`` that the fault bit (docs/faults.md
  "Evidence"): a kill, the PIDs before and after and the time down; a pause,
  which paused nodes answered a ``status`` probe (``ctx.answers``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faults.api import NemesisContext

log = logging.getLogger(__name__)

TARGETS = ("one", "minority", "majority", "all", "leader")

#: Extra fields of an end event, or a function that gives them once the end took effect.
Fields = dict[str, Any] | Callable[[], dict[str, Any]] | None

#: A pause's probe asks the paused node for ``status`` this long after the
#: pause (unless the caller says when), and waits this long for the answer.
PROBE_AFTER_S = 0.1
PROBE_TIMEOUT_S = 0.2

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


@dataclass(slots=True)
class _Held:
    """One process fault kind and the nodes it holds now. ``begin`` runs off
    the event loop (it waits for the signal to take effect); ``end`` runs on
    the caller's thread (see ``ProcessFaults.restart``)."""

    f: str  # the nemesis event: f when it starts, f + "-end" when it ends
    begin: Callable[[str], None]
    end: Callable[[str], None]
    began: str  # for the log: "killed n1"
    ended: str
    nodes: list[str] = field(default_factory=list)
    # evidence (docs/faults.md "Evidence"), per node held:
    pid: dict[str, int | None] = field(default_factory=dict)  # before the signal
    since: dict[str, float] = field(default_factory=dict)  # loop time it took effect
    probe: dict[str, asyncio.Task] = field(default_factory=dict)  # pause: answered status?


class ProcessFaults:
    """Kill/restart and pause/resume through the ClusterHandle, recorded."""

    def __init__(self, ctx: NemesisContext,
                 record: Callable[..., None] | None = None) -> None:
        self.ctx = ctx
        #: record(f, value, **fields): the interpreter's recorder (adds ``at``).
        self.record = record or ctx.record
        cluster = ctx.cluster
        self._kills = _Held("kill", cluster.kill, self._start_again, "killed", "restarted")
        self._pauses = _Held("pause", cluster.pause, cluster.resume, "paused", "resumed")

    @property
    def killed(self) -> list[str]:
        """The nodes this nemesis has killed and not restarted yet, sorted."""
        return self._kills.nodes

    @property
    def paused(self) -> list[str]:
        """The nodes this nemesis has paused and not resumed yet, sorted."""
        return self._pauses.nodes

    async def targets(self, target: str) -> list[str]:
        leader = await current_leader(self.ctx.leader) if target == "leader" else None
        return pick_targets(target, list(self.ctx.cluster.node_ids), self.ctx.rng, leader)

    async def kill(self, nodes: list[str], **fields: Any) -> None:
        await self._begin(self._kills, nodes, fields)

    async def restart(self, nodes: list[str] | None = None, fields: Fields = None) -> None:
        """Start the given killed nodes (default: every node this nemesis
        killed), with the same data directory."""
        await self._end(self._kills, nodes, fields)

    async def pause(self, nodes: list[str], probe_after: float | None = None,
                    **fields: Any) -> None:
        """SIGSTOP ``nodes``; ``probe_after`` s later ask each for ``status`` (the
        evidence; default PROBE_AFTER_S; a pause ended sooner stays unproven)."""
        await self._begin(self._pauses, nodes, fields)
        if self.ctx.answers is not None:
            wait = PROBE_AFTER_S if probe_after is None else probe_after
            for node in nodes:
                self._pauses.probe[node] = asyncio.create_task(self._answers(node, wait))

    async def resume(self, nodes: list[str] | None = None, fields: Fields = None) -> None:
        await self._end(self._pauses, nodes, fields)

    def _start_again(self, node: str) -> None:
        # started from this thread: LocalCluster gives children started from
        # the main thread a parent-death signal
        if not self.ctx.cluster.is_running(node):
            self.ctx.cluster.start(node)

    async def _answers(self, node: str, wait: float) -> bool:
        await asyncio.sleep(wait)
        answers = self.ctx.answers
        assert answers is not None
        return await answers(node, PROBE_TIMEOUT_S)

    async def _begin(self, held: _Held, nodes: list[str], fields: dict[str, Any]) -> None:
        cluster = self.ctx.cluster
        for node in nodes:
            held.pid[node] = cluster.pid(node)  # None: it was not running
        held.nodes = sorted(set(held.nodes) | set(nodes))  # before the signal: see the header
        for node in nodes:
            await asyncio.to_thread(held.begin, node)
        now = asyncio.get_running_loop().time()
        for node in nodes:
            held.since[node] = now
        self.record(held.f, sorted(nodes), **fields)
        log.info("%s %s", held.began, ", ".join(nodes))

    async def _end(self, held: _Held, only: list[str] | None, fields: Fields) -> None:
        nodes = held.nodes if only is None else sorted(n for n in only if n in held.nodes)
        if not nodes:
            return
        answered = self._probed(held, nodes)  # before the resume
        for node in nodes:
            held.end(node)
        held.nodes = [n for n in held.nodes if n not in nodes]
        extra = fields() if callable(fields) else dict(fields or {})
        extra.setdefault("evidence", self._evidence(held, nodes, answered))
        self.record(f"{held.f}-end", nodes, **extra)
        log.info("%s %s", held.ended, ", ".join(nodes))

    # --- evidence (docs/faults.md "Evidence") -------------------------------------

    @staticmethod
    def _probed(held: _Held, nodes: list[str]) -> list[str] | None:
        """The paused nodes that answered their probe; None if any probe has not
        finished (unknown) or none was sent."""
        tasks = [held.probe.pop(n, None) for n in nodes]
        if not tasks or any(t is None or not t.done() or t.cancelled() for t in tasks):
            for t in tasks:
                if t is not None:
                    t.cancel()
            return None
        return [n for n, t in zip(nodes, tasks) if t.exception() is None and t.result() is True]

    def _evidence(self, held: _Held, nodes: list[str],
                  answered: list[str] | None) -> dict[str, Any]:
        before = {n: held.pid.pop(n, None) for n in nodes}
        why = [f"{n} was not running" for n, pid in before.items() if pid is None]
        if held.f == "kill":
            now = asyncio.get_running_loop().time()
            down = max(now - held.since.pop(n, now) for n in nodes)
            after = {n: self.ctx.cluster.pid(n) for n in nodes}
            why += [f"{n} kept PID {pid}" for n, pid in before.items()
                    if pid is not None and after[n] == pid]
            ev: dict[str, Any] = {"pid_before": before, "pid_after": after,
                                  "down_ms": round(down * 1000, 1), "effective": not why}
        else:
            for n in nodes:
                held.since.pop(n, None)
            why += [f"{n} answered status while paused" for n in answered or ()]
            ev = {"answered": answered,
                  "effective": False if why else (None if answered is None else True)}
        if why:
            ev["why"] = "; ".join(why)
        return ev
