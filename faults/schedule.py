"""``--nemesis SPEC`` -> a Nemesis: the one way to build one (docs/faults.md).

- ``spec``: ``""`` or ``hunt``, the default: the hunting plan
  (faults/hunt.py), a reactive search over every kind the run's network
  allows (only kill and pause with ``--net direct``); comma-separated kinds
  from ``kill``, ``pause``, ``partition``, ``net`` (a network kind with
  ``--net direct`` is an error); ``all`` (every kind); ``none`` (a nemesis
  that does nothing); ``bug:NAME`` a known bug's demonstration mix
  (faults/mixes.py).
- Named kinds become a ``faults.plan.RandomPlan`` (every ``ctx.interval_s``
  one fault starts, holds 30% to 60% of the interval and ends; the first
  after half an interval of calm; one at a time) carried out by
  ``faults.interpret.Interpreter``; ``--replay`` a ``faults.plan.ReplayPlan``
  by the same interpreter.

Invariant: with the same seed and the same views (leader, statuses), the
sequence of fault kinds, targets, shapes and durations is the same.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any

from faults import disk
from faults.api import Nemesis, NemesisContext, link_faults_of
from faults.interpret import Interpreter, network_of
from faults.plan import BASE_KINDS, KINDS, FaultOp, Plan, RandomPlan, ReplayPlan

NETWORK_KINDS = ("partition", "net")
#: The spec naming the hunting plan (faults/hunt.py), also what ``""`` means.
HUNT = "hunt"


class NemesisSpecError(ValueError):
    """``--nemesis`` names something we cannot do; the message is one line."""


def parse_spec(spec: str, *, network: bool) -> tuple[str, ...]:
    """The fault kinds ``spec`` asks for (empty for ``none``)."""
    spec = (spec or "").strip().lower()
    if spec == "none":
        return ()
    if spec in ("", HUNT):  # the hunting plan: every kind the run's network allows
        return BASE_KINDS if network else tuple(k for k in BASE_KINDS if k not in NETWORK_KINDS)
    if spec == "all":
        return BASE_KINDS
    kinds: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if part not in KINDS:
            raise NemesisSpecError(
                f"unknown nemesis {part!r} (choose from {', '.join(KINDS)}, all, hunt, none)"
            )
        if part not in kinds:
            kinds.append(part)
    missing = [k for k in kinds if k in NETWORK_KINDS and not network]
    if missing:
        raise NemesisSpecError(
            f"nemesis {', '.join(missing)} needs --net proxy or --net netns, not --net direct"
        )
    return tuple(kinds)


class NoNemesis:
    """``--nemesis none``: waits for the end, heals nothing."""

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def heal(self) -> None:
        return None


def check_spec(spec: str, *, network: bool) -> None:
    """NemesisSpecError (one line) unless ``spec`` can run; ``network``: the run
    has a network backend (``--net proxy`` or ``netns``)."""
    from faults import mixes

    if mixes.mix_name(spec) is not None:
        mixes.check_spec(spec, network=network)
    kinds = [k for k in fault_kinds(spec, network=network) if k in disk.KINDS]
    reason = disk.unavailable_reason(kinds) if kinds else None
    if reason:
        raise NemesisSpecError(reason)


def fault_kinds(spec: str, *, network: bool) -> tuple[str, ...]:
    """The kinds of fault a spec may use, so the runner can set the cluster up
    for the disk and clock kinds (``faults.disk.needs``): the named kinds, the
    hunting plan's, or a ``bug:NAME`` mix's disk and clock kinds."""
    from faults import mixes

    if mixes.mix_name(spec) is not None:
        return mixes.get_mix(spec).kinds()
    kinds = parse_spec(spec, network=network)
    if (spec or "").strip().lower() in ("", HUNT):
        from faults.hunt import DISK_FAMILIES

        kinds += tuple(k for k in DISK_FAMILIES if disk.unavailable_reason([k]) is None)
    return kinds


def build_plan(spec: str, *, interval_s: float, rng: random.Random,
               link_faults: tuple[str, ...], network: bool,
               timing: Mapping[str, Any] | None = None,
               kinds_available: tuple[str, ...] = ()) -> Plan | None:
    """The one place a ``--nemesis`` spec becomes a plan (None for ``none``),
    for every interpreter (faults/interpret.py, the simulator's). ``network``:
    the run has a network backend; ``link_faults``: the link faults it can
    apply; ``timing``: cluster.json's ``timing`` (None: the nodes' defaults);
    ``kinds_available``: the disk and clock kinds the cluster was set up for
    (the hunting plan draws ``lose-unsynced`` and ``clock`` only then).
    NemesisSpecError (one line) for a bad spec."""
    from faults import mixes

    if interval_s <= 0:
        raise NemesisSpecError(f"nemesis interval must be > 0 s, not {interval_s}")
    if mixes.mix_name(spec) is not None:
        mixes.check_spec(spec, network=network)
        return mixes.mix_plan(mixes.get_mix(spec), rng, interval_s=interval_s,
                              link_faults=tuple(link_faults) if network else ())
    if (spec or "").strip().lower() in ("", HUNT):
        from faults.hunt import hunt_plan

        return hunt_plan(rng, interval_s=interval_s, network=network,
                         link_faults=link_faults if network else (), timing=timing,
                         kinds_available=kinds_available)
    kinds = parse_spec(spec, network=network)
    if not kinds:
        return None
    return RandomPlan(kinds, interval_s, rng)


def build_nemesis(spec: str, ctx: NemesisContext,
                  replay: Sequence[FaultOp] | None = None) -> Nemesis:
    """The one way to build a nemesis: ``replay`` (the operations a run
    recorded, faults.plan.recorded_ops) when given, else the ``bug:NAME``
    demonstration mix (faults/mixes.py), else a RandomPlan of the kinds
    ``spec`` names, each carried out by the interpreter (faults/interpret.py).
    NemesisSpecError for a bad spec."""
    net = network_of(ctx)
    if replay is not None:
        return Interpreter(ReplayPlan(replay), ctx, net)
    plan = build_plan(spec, interval_s=ctx.interval_s, rng=ctx.rng,
                      link_faults=link_faults_of(net), network=net is not None,
                      timing=timing_of(ctx), kinds_available=kinds_set_up(ctx))
    return NoNemesis() if plan is None else Interpreter(plan, ctx, net)


def kinds_set_up(ctx: NemesisContext) -> tuple[str, ...]:
    """The disk and clock kinds ``ctx``'s cluster was started for: a lazy file
    system under the data directories (``lose-unsynced``), libfaketime in the
    nodes (``clock``)."""
    cluster = ctx.cluster
    return tuple(k for k, attr in (("lose-unsynced", "lazyfs"), ("clock", "faketime"))
                 if getattr(cluster, attr, False) is True)


def timing_of(ctx: NemesisContext) -> Mapping[str, Any] | None:
    """The run's node timing: ``ctx.timing``, else cluster.json's ``timing``
    (read through the cluster handle's ``cluster_json``), else None."""
    timing = getattr(ctx, "timing", None)
    if timing is not None:
        return timing
    path = getattr(ctx.cluster, "cluster_json", None)
    if path is None:
        return None
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh).get("timing")
    except (OSError, ValueError, AttributeError):
        return None
    return raw if isinstance(raw, dict) else None
