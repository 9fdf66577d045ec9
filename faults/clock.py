"""Clock faults through libfaketime: one node's wall and monotonic clocks moved.

Owns
- ``Clocks(node_ids)``: one libfaketime timestamp file per node in a folder
  of its own, the environment that makes a node read it (``env(node)``:
  ``LD_PRELOAD`` of Debian's libfaketimeMT, ``FAKETIME_TIMESTAMP_FILE``,
  ``FAKETIME_NO_CACHE=1`` so every clock call re-reads the file and a change
  bites at once); monotonic time is faked too (libfaketime's default), and
  so are the timeouts of ``poll``, ``select`` and ``nanosleep`` under a rate
  -- tests/test_clock.py shows ``time.monotonic``, pyzmq's poll timeouts and
  the driver's ticks moving. Each node has a *base* offset: where its clock
  stands when no fault holds it (0, until a drift leaves it ahead or behind);
- the clock fault kind (``clock``, docs/disk-and-clock.md): ``plan_fields``
  and ``resolve_value`` (pure, for faults/plan.py) and ``ClockFaults`` (the
  interpreter's part: set, strobe, restore, and the evidence);
- the cleaner of timestamp folders left by dead runs (faults/cleanup.py).

How libfaketime counts, and why the drift is calibrated: with a rate, the
fake time is ``s + off + rate * (t - s)`` where ``s`` is when libfaketime
started in that process (its first clock call, some time after the process
was created) and ``t`` the real time. A drift that starts at ``t1`` without
a jump needs ``off = base + (1 - rate) * (t1 - s)``; ``s`` is guessed from
the process's creation time, the node's own clock (``wall_ns`` in its
``status``) shows the guess's error, and the spec is rewritten once with the
measured ``s``. When the drift ends the rate returns to 1 and the clock stays
where the drift took it (the new base): clocks are not stepped back, since a
monotonic clock never is. (``FAKETIME_XRESET`` would smooth rate changes but
makes libfaketime ignore offset changes, so it is not used.)

Invariants:
- A spec is written atomically (temporary file, rename): a node never reads
  half of one. ``"+0 x1"`` is the true clock.
- The folder is claimed with an owner record (kind ``faketime``) before it is
  made and released after it is removed, so ``cleanup_stale`` can remove a
  SIGKILLed run's folder and nothing of a live run's.
- Everything random comes from the caller's rng.
"""

from __future__ import annotations

import glob
import logging
import os
import random
import re
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faults import owner

log = logging.getLogger(__name__)

KIND = "faketime"
TAG = re.compile(r"[0-9a-f]{6}")
MODES = ("offset", "bump", "strobe", "drift")
TRUE_SPEC = "+0 x1"
#: Where Debian puts libfaketime (multi-threaded variant: the node has zmq's I/O threads).
LIB_GLOBS = ("/usr/lib/*/faketime/libfaketimeMT.so.1", "/usr/lib/faketime/libfaketimeMT.so.1",
             "/usr/local/lib/faketime/libfaketimeMT.so.1")
#: The choices a plan draws from (seconds, rates, milliseconds).
OFFSETS_S = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
BUMPS_S = (-60.0, -20.0, -5.0, 5.0, 20.0, 60.0)
STROBE_S = (0.5, 2.0, 10.0)
STROBE_PERIOD_MS = (20, 100, 250)
RATES = (0.2, 0.5, 2.0, 4.0)
#: First guess of how long after its creation a process's libfaketime starts.
START_GUESS_S = 0.2


class ClockError(Exception):
    """Clock faults cannot be set up here; one line."""


def library() -> str | None:
    for pattern in LIB_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def unavailable_reason() -> str | None:
    """One line why clock faults cannot run here, else None."""
    if not sys.platform.startswith("linux"):
        return "clock faults need libfaketime (Linux only)"
    if library() is None:
        return "clock faults need libfaketime: apt-get install libfaketime"
    return None


def spec_of(offset_s: float = 0.0, rate: float = 1.0) -> str:
    """The timestamp-file line for a clock ``offset_s`` ahead running at ``rate``."""
    return f"{offset_s:+g} x{rate:g}"


class Clocks:
    """The timestamp files of one cluster's nodes (see the module header)."""

    def __init__(self, node_ids: Sequence[str]) -> None:
        reason = unavailable_reason()
        if reason:
            raise ClockError(reason)
        self.lib = library()
        for line in cleanup_stale():
            print(f"harness: removed {line}", file=sys.stderr)
        root = owner.state_dir()
        for _ in range(20):
            tag = secrets.token_hex(3)
            folder = root / f"faketime-{tag}"
            if owner.claim(KIND, tag, {"dir": str(folder)}) is not None:
                break
        else:  # pragma: no cover
            raise ClockError("could not claim a faketime tag")
        self.tag, self.dir = tag, folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.specs: dict[str, str] = {}
        self.base: dict[str, float] = {n: 0.0 for n in node_ids}  # seconds ahead, unfaulted
        self.drifting: dict[str, tuple[float, float]] = {}  # node -> (rate, t1) of its drift
        self._strobes: dict[str, tuple[threading.Event, threading.Thread]] = {}
        self._closed = False
        for node in node_ids:
            self.set(node, TRUE_SPEC)

    def path(self, node: str) -> Path:
        return self.dir / node

    def env(self, node: str) -> dict[str, str]:
        pre = os.environ.get("LD_PRELOAD", "")
        return {"LD_PRELOAD": f"{self.lib} {pre}".strip(),
                "FAKETIME_TIMESTAMP_FILE": str(self.path(node)),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_RESET": "1"}

    def set(self, node: str, spec: str) -> None:
        tmp = self.dir / f".{node}.tmp"
        tmp.write_text(spec + "\n")
        os.replace(tmp, self.path(node))
        self.specs[node] = spec

    def offset(self, node: str, extra_s: float = 0.0) -> None:
        """``node``'s clock ``extra_s`` ahead of its base (0: back to its base)."""
        self.set(node, spec_of(self.base.get(node, 0.0) + extra_s))

    def drift(self, node: str, rate: float, t1: float, started: float) -> None:
        """From ``t1`` on, ``node``'s clock runs at ``rate`` with no jump, for a
        process whose libfaketime started at ``started`` (epoch seconds)."""
        self.drifting[node] = (rate, t1)
        self.set(node, spec_of(self.base.get(node, 0.0) + (1.0 - rate) * (t1 - started), rate))

    def before_start(self, node: str) -> None:
        """``node`` is about to be (re)started: a drift under way goes on in the new
        process from where the machine's clock is (the spec is relative to each
        process's own libfaketime start, guessed as now + START_GUESS_S)."""
        held = self.drifting.get(node)
        if held is not None:
            rate, t1 = held
            started = time.time() + START_GUESS_S
            self.set(node, spec_of(self.base.get(node, 0.0) + (1.0 - rate) * (t1 - started),
                                   rate))

    def end_drift(self, node: str, rate: float, t1: float) -> float:
        """Back to rate 1 where the drift took the clock (the new base); the base."""
        b = self.base.get(node, 0.0) + (rate - 1.0) * (time.time() - t1)
        self.base[node] = b
        self.drifting.pop(node, None)
        self.offset(node)
        return b

    def strobe(self, node: str, offset_s: float, period_ms: float) -> None:
        """Flip ``node``'s clock between its base and ``offset_s`` ahead every ``period_ms``."""
        self.stop_strobe(node)
        stop = threading.Event()

        def flip() -> None:
            ahead = False
            while not stop.wait(period_ms / 1000.0):
                ahead = not ahead
                self.offset(node, offset_s if ahead else 0.0)

        t = threading.Thread(target=flip, name=f"strobe-{node}", daemon=True)
        self._strobes[node] = (stop, t)
        t.start()

    def stop_strobe(self, node: str) -> None:
        held = self._strobes.pop(node, None)
        if held is not None:
            held[0].set()
            held[1].join(2.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for node in list(self._strobes):
            self.stop_strobe(node)
        shutil.rmtree(self.dir, ignore_errors=True)
        owner.release(KIND, self.tag)


def cleanup_stale() -> list[str]:
    """Remove the timestamp folders of runs whose owner is provably gone."""
    from faults.disk_mounts import sweep

    def remove(rec: owner.Record) -> list[str]:
        folder = rec.data.get("dir")
        if folder and Path(folder).exists():
            shutil.rmtree(folder, ignore_errors=True)
            return [f"faketime folder {folder}"]
        return []

    return sweep(KIND, TAG, remove)


def unowned() -> list[str]:
    claimed = set(owner.names(KIND))
    root = owner.state_dir()
    if not root.is_dir():
        return []
    return [f"faketime folder {p}" for p in sorted(root.glob("faketime-*"))
            if p.is_dir() and p.name.removeprefix("faketime-") not in claimed]


# --- the fault kind ---------------------------------------------------------------------


def plan_fields(rng: random.Random) -> dict[str, Any]:
    """The planned fields of one ``clock`` operation (pure; draws only from ``rng``)."""
    mode = rng.choice(MODES)
    op: dict[str, Any] = {"target": rng.choice(("one", "leader")), "mode": mode}
    if mode == "offset":
        op["offset_s"] = rng.choice(OFFSETS_S)
    elif mode == "bump":
        op["offset_s"] = rng.choice(BUMPS_S)
    elif mode == "strobe":
        op["offset_s"] = rng.choice(STROBE_S)
        op["period_ms"] = rng.choice(STROBE_PERIOD_MS)
    else:
        op["rate"] = rng.choice(RATES)
    return op


PARAMS = ("offset_s", "period_ms", "rate")


def resolve_value(op: dict[str, Any], nodes: Sequence[str], rng: random.Random,
                  leader: str | None) -> dict[str, Any]:
    """The value of a ``clock`` operation: the node and what its clock does."""
    target = op.get("target", "one")
    if isinstance(target, list) and target:
        node = str(target[0])
    elif target == "leader" and leader in nodes:
        node = str(leader)
    else:
        node = rng.choice(list(nodes))
    value = {"node": node, "mode": op.get("mode", "offset")}
    value.update({k: op[k] for k in PARAMS if k in op})
    return value


class ClockFaults:
    """The interpreter's part of ``clock``: apply, restore, evidence.

    Evidence (docs/disk-and-clock.md): the node's own clocks, from ``wall_ns``
    and ``mono_ns`` in its ``status`` replies, against the harness's: at the
    start (after the change) and at the end (before the restore), the
    node's wall-clock offset; over the window, its monotonic rate.
    ``effective`` is true when the node's clock measurably moved as asked,
    false when it answered and did not, null when it could not be asked."""

    def __init__(self, ctx: Any, record: Callable[..., None]) -> None:
        self.ctx = ctx
        self.record = record
        self.active: dict[str, dict[str, Any]] = {}  # node -> value
        self._first: dict[str, tuple[int, int, int] | None] = {}
        self._t1: dict[str, float] = {}  # node -> when its drift began
        self._base: dict[str, float] = {}  # node -> its base offset when the fault began
        self._started: dict[int | None, float] = {}  # pid -> its libfaketime's start

    def _clocks(self) -> Any:
        return getattr(self.ctx.cluster, "clocks", None)

    async def _sample(self, node: str) -> tuple[int, int, int] | None:
        """(harness wall ns, node wall ns, node mono ns) or None."""
        status = self.ctx.status
        if status is None:
            return None
        t0 = time.time_ns()
        reply = await status(node)
        t1 = time.time_ns()
        if not reply or "wall_ns" not in reply or "mono_ns" not in reply:
            return None
        return (t0 + t1) // 2, int(reply["wall_ns"]), int(reply["mono_ns"])

    async def begin(self, value: dict[str, Any], fields: dict[str, Any]) -> None:
        node = value["node"]
        clocks = self._clocks()
        self.active[node] = value
        first = None
        if clocks is not None:
            self._base[node] = clocks.base.get(node, 0.0)
            mode = value["mode"]
            if mode == "strobe":
                clocks.strobe(node, float(value.get("offset_s", 1.0)),
                              float(value.get("period_ms", 100)))
            elif mode == "drift":
                first = await self._start_drift(clocks, node, float(value.get("rate", 1.0)))
            else:
                clocks.offset(node, float(value.get("offset_s", 0.0)))
        self.record("clock", value, **fields)
        if clocks is not None and first is None:
            first = await self._sample(node)
        self._first[node] = first

    async def _start_drift(self, clocks: Any, node: str,
                           rate: float) -> tuple[int, int, int] | None:
        """Start a drift with no jump (module header: the calibration)."""
        pid = self.ctx.cluster.pid(node)
        try:
            import psutil

            created = psutil.Process(pid).create_time() if pid else time.time()
        except Exception:  # noqa: BLE001 -- a node just gone: guess now
            created = time.time()
        started = self._started.get(pid, created + START_GUESS_S)
        t1 = time.time()
        clocks.drift(node, rate, t1, started)
        self._t1[node] = t1
        sample = await self._sample(node)
        if sample is None or abs(rate - 1.0) < 1e-9:
            return sample
        t, w = sample[0] / 1e9, sample[1] / 1e9
        want = t + clocks.base.get(node, 0.0) + (rate - 1.0) * (t - t1)
        started += (w - want) / (1.0 - rate)
        self._started[pid] = started
        clocks.drift(node, rate, t1, started)
        return await self._sample(node)

    async def end(self, value: dict[str, Any], fields: dict[str, Any]) -> None:
        node = value["node"]
        if self.active.pop(node, None) is None:
            return
        clocks = self._clocks()
        last = await self._sample(node) if clocks is not None else None
        if clocks is not None:
            clocks.stop_strobe(node)
            if value["mode"] == "drift" and node in self._t1:
                clocks.end_drift(node, float(value.get("rate", 1.0)), self._t1.pop(node))
            else:
                clocks.offset(node)
        fields = dict(fields)
        base = self._base.pop(node, 0.0)
        fields.setdefault("evidence", evidence(value, self._first.pop(node, None), last,
                                               clocks is not None, base))
        self.record("clock-end", value, **fields)

    async def heal(self) -> None:
        for node, value in list(self.active.items()):
            await self.end(value, {})


def evidence(value: dict[str, Any], first: tuple[int, int, int] | None,
              last: tuple[int, int, int] | None, preloaded: bool,
              base_s: float = 0.0) -> dict[str, Any]:
    if not preloaded:
        return {"effective": False, "why": "the nodes run without libfaketime "
                "(the cluster was started without clock faults)"}
    ev: dict[str, Any] = {}
    if first is not None:
        ev["offset_ms_start"] = round((first[1] - first[0]) / 1e6, 1)
    if last is not None:
        ev["offset_ms_end"] = round((last[1] - last[0]) / 1e6, 1)
    if first is not None and last is not None and last[0] > first[0]:
        ev["rate"] = round((last[2] - first[2]) / (last[0] - first[0]), 3)
    if not ev:
        ev["effective"] = None
        return ev
    mode = value["mode"]
    if mode == "drift":
        want = float(value.get("rate", 1.0))
        got = ev.get("rate")
        ok = got is not None and abs(got - want) <= 0.25 * max(abs(want - 1.0), 0.1) + 0.05
        if "rate" not in ev:
            ev["effective"] = None
            return ev
    elif mode == "strobe":
        offs = [abs(ev[k] - base_s * 1000.0) for k in ("offset_ms_start", "offset_ms_end")
                if k in ev]
        ok = any(o > 50.0 for o in offs) or (ev.get("rate") not in (None,) and
                                             abs(ev["rate"] - 1.0) > 0.02)
        if not ok:  # both samples may fall in the true phase: not provable
            ev["effective"] = None
            return ev
    else:
        want_ms = (base_s + float(value.get("offset_s", 0.0))) * 1000.0
        offs = [ev[k] for k in ("offset_ms_start", "offset_ms_end") if k in ev]
        ok = any(abs(o - want_ms) < max(100.0, 0.2 * abs(want_ms)) for o in offs)
    ev["effective"] = bool(ok)
    if not ok:
        ev["why"] = f"the node's clock did not move as asked ({mode})"
    return ev

