"""The nemesis events of a history, read into fault windows, and their descriptions.

Owns the one reading of nemesis events (docs/history.md, docs/faults.md
"Nemesis events"): ``FaultReader`` feeds them one at a time (the runner's live
status line, a replay's plan), ``fault_windows`` reads a whole history (the
report, results.json). The checker itself ignores nemesis events; they live
here because they are part of the history format, and both the faults and
the reports read them.

Invariants: nemesis events never become operations. A fault window is a
start event ``f=KIND`` matched with the first later ``f=KIND-end`` carrying
the same value (or, failing that, the oldest open one of that kind); a global
``heal`` closes every open window; a fault never healed lasts until the
history ends (``end`` None). Times stay in the history's unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class FaultWindow:
    """A fault from its start event to its heal event (end None: never healed)."""

    kind: str
    value: Any
    start: int
    end: int | None
    index: int | None = None
    extra: dict = field(default_factory=dict)

    def end_or(self, horizon: int) -> int:
        return horizon if self.end is None else self.end

    def target(self) -> str:
        """A short human description of what the fault hit."""
        return describe_fault_value(self.kind, self.value)


def describe_fault_value(kind: str, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        if kind == "partition":
            shape = value.get("shape", "")
            grudge = value.get("grudge")
            one = " one-way" if value.get("oneway") else ""
            if isinstance(grudge, dict) and grudge:
                return f"{shape}{one}: {grudge_sides(grudge)}".strip(": ")
            return f"{shape}{one}".strip() or "partition"
        if kind == "net":
            return describe_net(value)
        parts = [f"{k}={_short(v)}" for k, v in value.items()]
        return " ".join(parts) or "-"
    if value is None:
        return "-"
    return str(value)


def describe_net(value: dict) -> str:
    """'loss 10%, delay 20 ms, duplicate 10% on n4's links' from a net fault's value."""
    parts = []
    for k, v in value.items():
        if k == "links" or not isinstance(v, (int, float)) or isinstance(v, bool) or not v:
            continue
        if k.endswith("_ms"):
            parts.append(f"{k[:-3]} {v:g} ms")
        elif 0 < v <= 1:
            parts.append(f"{k} {v * 100:g}%")
        else:
            parts.append(f"{k} {v:g}")
    links = value.get("links")
    where = ""
    if isinstance(links, list) and links and all(isinstance(x, (list, tuple)) for x in links):
        common = set(map(str, links[0]))
        for link in links[1:]:
            common &= set(map(str, link))
        where = f" on {min(common)}'s links" if len(common) == 1 else f" on {len(links)} links"
    elif isinstance(links, str):
        where = f" on {links} links"
    return (", ".join(parts) or "net fault") + where


def grudge_sides(grudge: dict) -> str:
    """A partition as its sides, 'n1 n2 | n3 n4 n5': nodes grouped by whom they can hear."""
    everyone = set(map(str, grudge))
    for v in grudge.values():
        everyone |= set(map(str, v or []))
    sides: list[list[str]] = []
    seen: set[frozenset] = set()
    for node in sorted(everyone):
        hears = frozenset(everyone - set(map(str, grudge.get(node) or [])))
        if hears not in seen:
            seen.add(hears)
            sides.append(sorted(hears))
    if len(sides) <= 1:
        return "no link cut"
    # Symmetric partitions give disjoint sides; otherwise say who cannot hear whom.
    flat = [nd for side in sides for nd in side]
    if len(flat) == len(set(flat)):
        return " | ".join(" ".join(side) for side in sides)
    return "; ".join(
        f"{n} can't hear {','.join(map(str, v))}" for n, v in sorted(grudge.items()) if v
    )


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return s if len(s) <= 40 else s[:37] + "..."


class FaultReader:
    """Reads nemesis events into fault windows one at a time: the one reading, used
    whole by ``fault_windows`` (results.json, the report) and live by the runner's
    status line (which faults are active now)."""

    __slots__ = ("_open", "windows")

    def __init__(self) -> None:
        self.windows: list[FaultWindow] = []  # in start order
        self._open: list[tuple[str, str, FaultWindow]] = []  # (kind, value key, window)

    @property
    def active(self) -> list[FaultWindow]:
        """The windows started and not yet healed, oldest first."""
        return [w for _, _, w in self._open]

    def feed(self, f: str, value: Any, t: int, index: int | None = None) -> None:
        """One nemesis event: ``f`` (``kill``, ``kill-end``, ``heal``, ...) at time ``t``."""
        open_windows = self._open
        if f.endswith("-end"):
            kind = f[: -len("-end")]
            vkey = _value_key(value)
            match = next((w for w in open_windows if w[0] == kind and w[1] == vkey), None)
            if match is None:  # heal without a value match: heal the oldest of that kind
                match = next((w for w in open_windows if w[0] == kind), None)
            if match is not None:
                match[2].end = t
                open_windows.remove(match)
            return
        if f in ("heal", "heal-all", "stop"):  # a global heal closes whatever is open
            for _, _, w in open_windows:
                w.end = t
            open_windows.clear()
            return
        w = FaultWindow(kind=f, value=value, start=t, end=None, index=index)
        self.windows.append(w)
        open_windows.append((f, _value_key(value), w))


def fault_windows(events: Iterable[dict]) -> list[FaultWindow]:
    """Fault windows in start order, from nemesis start/-end event pairs."""
    reader = FaultReader()
    for ev in events:
        if ev.get("process") == "nemesis":
            reader.feed(str(ev.get("f") or ""), ev.get("value"), int(ev.get("time") or 0),
                        ev.get("index"))
    return reader.windows


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
