"""The nemesis schedule: which faults, when, and for how long, all from the seed.

``build_nemesis(spec, ctx)`` turns ``--nemesis`` into a ``Nemesis``:

- ``spec``: comma-separated kinds from ``kill``, ``pause``, ``partition``,
  ``net``; ``all`` (every kind); ``none`` (a nemesis that does nothing);
  ``""`` the default mix ``kill,pause,partition`` (``partition`` is left
  out of the default when the run has no network backend, i.e. ``--net
  direct``; asked for explicitly there, it is an error).
- Windows: every ``ctx.interval_s`` seconds one fault starts, holds for 30%
  to 60% of the interval, and ends; the rest of the interval is calm, so the
  history shows recovery after each fault. The first fault comes after half
  an interval of calm. One fault is active at a time.
- Each start and end goes through ``ctx.record`` (formats: docs/faults.md);
  ``heal()`` ends whatever is active and records its ``-end``.

Invariant: with the same seed and the same leader answers, the sequence of
fault kinds, targets, shapes and durations is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faults.api import Nemesis, NemesisContext, NetworkControl, link_faults_of
from faults.partition import SHAPES, make
from faults.process import TARGETS, ProcessFaults, current_leader

log = logging.getLogger(__name__)

KINDS = ("kill", "pause", "partition", "net")
DEFAULT_KINDS = ("kill", "pause", "partition")
NETWORK_KINDS = ("partition", "net")
#: Share of a one-way partition among partitions.
ONEWAY_P = 0.3
#: A fault holds for this share of the interval (uniform); the rest is calm.
HOLD = (0.3, 0.6)


class NemesisSpecError(ValueError):
    """``--nemesis`` names something we cannot do; the message is one line."""


def parse_spec(spec: str, *, network: bool) -> tuple[str, ...]:
    """The fault kinds ``spec`` asks for (empty for ``none``)."""
    spec = (spec or "").strip().lower()
    if spec == "none":
        return ()
    if spec == "":
        kinds = DEFAULT_KINDS if network else tuple(k for k in DEFAULT_KINDS if k not in NETWORK_KINDS)
        return kinds
    if spec == "all":
        return KINDS
    kinds: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if part not in KINDS:
            raise NemesisSpecError(
                f"unknown nemesis {part!r} (choose from {', '.join(KINDS)}, all, none)"
            )
        if part not in kinds:
            kinds.append(part)
    missing = [k for k in kinds if k in NETWORK_KINDS and not network]
    if missing:
        raise NemesisSpecError(
            f"nemesis {', '.join(missing)} needs --net proxy or --net netns, not --net direct"
        )
    return tuple(kinds)


def network_of(ctx: NemesisContext) -> NetworkControl | None:
    if ctx.network is not None:
        return ctx.network
    if ctx.proxy_control:
        from faults.proxyctl import ProxyControl

        return ProxyControl(ctx.proxy_control)
    return None


class NoNemesis:
    """``--nemesis none``: waits for the end, heals nothing."""

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def heal(self) -> None:
        return None


class FaultActions:
    """What every scheduled nemesis shares: the faults it holds, and how they
    are applied, recorded and healed. Subclasses decide only *when* and *which*
    (faults.schedule's random kinds, harness.bugs' fault mixes).

    Invariant: ``partition`` / ``links`` hold the value recorded at the start
    of the active network fault, so the ``-end`` event repeats it exactly.
    """

    def __init__(self, ctx: NemesisContext, net: NetworkControl | None) -> None:
        self.ctx = ctx
        self.net = net
        self.procs = ProcessFaults(ctx)
        self.partition: dict[str, Any] | None = None  # value of the active partition
        self.links: dict[str, Any] | None = None  # value of the active net fault
        self._lock = asyncio.Lock()

    async def apply_partition(self, p: Any, note: str = "") -> None:
        assert self.net is not None
        self.partition = p.value()
        await asyncio.to_thread(self.net.set_grudge, self.partition["grudge"])
        self.ctx.record("partition", self.partition)
        log.info("partition %s%s: %s", p.shape, note, self.partition["grudge"])

    async def apply_links(self, faults: dict[str, Any], links: Any) -> None:
        assert self.net is not None
        self.links = {"links": links, **faults}
        await asyncio.to_thread(self.net.set_links, faults, links)
        self.ctx.record("net", self.links)
        log.info("net faults %s", self.links)

    async def switch_partition(self, p: Any, note: str = "") -> None:
        """Replace the active partition by ``p`` in one step (no moment of full
        connectivity between the two), recording the old one's end first."""
        assert self.net is not None
        old, self.partition = self.partition, p.value()
        await asyncio.to_thread(self.net.set_grudge, self.partition["grudge"])
        if old is not None:
            self.ctx.record("partition-end", old)
        self.ctx.record("partition", self.partition)
        log.info("partition %s%s: %s", p.shape, note, self.partition["grudge"])

    async def clear_links(self) -> None:
        """End the active link faults, keeping the partition."""
        if self.net is None or self.links is None:
            return
        await asyncio.to_thread(self.net.set_links, None, "all")
        links = self.links["links"]
        if links != "all":
            await asyncio.to_thread(self.net.set_links, None, links)
        self.ctx.record("net-end", self.links)
        self.links = None

    async def heal_network(self) -> None:
        if self.net is None or (self.partition is None and self.links is None):
            return
        await asyncio.to_thread(self.net.heal)
        if self.partition is not None:
            self.ctx.record("partition-end", self.partition)
            self.partition = None
        if self.links is not None:
            self.ctx.record("net-end", self.links)
            self.links = None
        log.info("network healed")

    async def heal_all(self) -> None:
        """Heal network, paused and killed nodes; the caller holds the lock."""
        errors: list[BaseException] = []
        for step in (self.heal_network, self.procs.resume, self.procs.restart):
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 -- heal the rest even if one step fails
                log.error("heal: %s failed: %s", step.__name__, exc)
                errors.append(exc)
        if errors:
            raise errors[0]

    async def heal(self) -> None:
        async with self._lock:
            await self.heal_all()

    async def start_unless_stopped(self, stop: asyncio.Event,
                                   start: Callable[[], Awaitable[object]]) -> bool:
        """Await ``start()`` holding the lock, unless ``stop`` is set first
        (False then: the run is over and ``heal()`` has the lock next)."""
        async with self._lock:
            if stop.is_set():
                return False
            await start()
            return True

    async def run(self, stop: asyncio.Event) -> None:
        """The rhythm: half an interval of calm, then every ``ctx.interval_s``
        one fault window (``window``) followed by calm for the rest."""
        interval = self.ctx.interval_s
        if not await sleep_unless(stop, interval / 2):
            return
        while not stop.is_set():
            hold = await self.window(stop, interval)
            if hold is None or not await sleep_unless(stop, interval - hold):
                return

    async def window(self, stop: asyncio.Event, interval: float) -> float | None:
        """Start one fault, hold it and end it; the seconds it held, or None
        once ``stop`` is set (``heal()`` then ends what is active)."""
        raise NotImplementedError


class ScheduledNemesis(FaultActions):
    """One fault at a time on a seeded schedule of fault and calm windows."""

    def __init__(self, kinds: tuple[str, ...], ctx: NemesisContext) -> None:
        if ctx.interval_s <= 0:
            raise NemesisSpecError(f"nemesis interval must be > 0 s, not {ctx.interval_s}")
        super().__init__(ctx, network_of(ctx))
        self.kinds = kinds

    # --- the schedule -------------------------------------------------------------

    async def window(self, stop: asyncio.Event, interval: float) -> float | None:
        rng = self.ctx.rng
        kind = rng.choice(self.kinds)
        hold = interval * rng.uniform(*HOLD)
        if not (await self.start_unless_stopped(stop, lambda: self._start(kind))
                and await sleep_unless(stop, hold)):
            return None  # heal() ends what is active
        async with self._lock:
            await self._end(kind)
        return hold

    async def _start(self, kind: str) -> None:
        rng = self.ctx.rng
        if kind == "kill":
            await self.procs.kill(await self.procs.targets(rng.choice(TARGETS)))
        elif kind == "pause":
            await self.procs.pause(await self.procs.targets(rng.choice(TARGETS)))
        elif kind == "partition":
            shape = rng.choice(SHAPES)
            oneway = rng.random() < ONEWAY_P
            leader = await current_leader(self.ctx.leader) if shape == "leader" else None
            p = make(shape, list(self.ctx.cluster.node_ids), rng, oneway=oneway, leader=leader)
            await self.apply_partition(p, " (one-way)" if oneway else "")
        elif kind == "net":
            await self.apply_links(*self._net_fault())

    def _net_fault(self) -> tuple[dict[str, Any], Any]:
        """A seeded link-fault profile, on all links or on the links of one node."""
        rng = self.ctx.rng
        supported = link_faults_of(self.net)  # netns: loss only
        profiles = ("loss", "delay", "mixed") if "delay" in supported else ("loss",)
        profile = rng.choice(profiles)
        faults: dict[str, Any] = {}
        if profile in ("loss", "mixed"):
            faults["loss"] = rng.choice((0.05, 0.1, 0.2, 0.3))
        if profile in ("delay", "mixed"):
            dist = rng.choice(("fixed", "uniform", "exponential"))
            faults["delay_ms"] = rng.choice((5, 10, 20, 50))
            faults["delay_dist"] = dist
            if dist == "uniform":
                faults["delay_max_ms"] = faults["delay_ms"] * 4
        if profile == "mixed" and "duplicate" in supported:
            faults["duplicate"] = rng.choice((0.0, 0.05, 0.1))
            faults["reorder"] = rng.choice((0.0, 0.1, 0.3))
        nodes = list(self.ctx.cluster.node_ids)
        if rng.random() < 0.5:
            return faults, "all"
        x = rng.choice(nodes)
        links = [[x, y] for y in nodes if y != x] + [[y, x] for y in nodes if y != x]
        return faults, links

    async def _end(self, kind: str) -> None:
        if kind == "kill":
            await self.procs.restart()
        elif kind == "pause":
            await self.procs.resume()
        elif kind in NETWORK_KINDS:
            await self.heal_network()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; False (at once) if ``stop`` is set meanwhile.
    True means the window ran its course."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return True
    return False


def build_nemesis(spec: str, ctx: NemesisContext) -> Nemesis:
    """The nemesis for ``--nemesis spec``; NemesisSpecError for a bad spec."""
    kinds = parse_spec(spec, network=network_of(ctx) is not None)
    if not kinds:
        return NoNemesis()
    return ScheduledNemesis(kinds, ctx)
