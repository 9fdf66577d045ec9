"""Histories: reading them, and the one operation type with its one pairing.

Owns (docs/history.md is the contract):

- the two on-disk formats: our JSON Lines (one event object per line) and
  Jepsen/Knossos EDN (``history.edn`` or Knossos ``data/*.edn``: a sequence
  of maps, one per line or inside one vector, maybe wrapped in tagged
  literals such as ``#jepsen.history.Op{...}``). Both become the same event
  dicts (``index``, ``process``, ``type``, ``f``, ``key``, ``value``,
  ``time``); EDN keywords become plain strings (``:read`` -> ``"read"``),
  vectors and lists become lists. A problem raises ``HistoryError``, whose
  text is ``PATH:LINE: what is wrong``;
- ``Op``, the one operation type (an invoke and maybe its completion), and
  ``pair``, the one pairing of invokes with completions. Everything that
  reads a history (the checker, the runner, the analysis, the report) pairs
  it here, so an ``Op.id`` means the same operation to all of them.

Invariants: an event's position in the list is its real-time order (files
are appended as events happen); nemesis events are not operations; ``Op.id``
is the operation's position in ``pair``'s output (invoke order); an ``Op``
never changes once built.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, NamedTuple

from checker.native import load

try:  # a maintained C JSON reader (a dependency); the standard one if absent
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is in pyproject's dependencies
    _orjson = None
try:  # typed decoding of JSON Lines into small structs (a dependency): ``read_ops``
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - msgspec is in pyproject's dependencies
    _msgspec = None

__all__ = [
    "INF",
    "HistoryError",
    "Op",
    "is_client_event",
    "no_gc",
    "pair",
    "parse_edn",
    "parse_jsonl",
    "public",
    "read_history",
    "read_ops",
    "unwrap_independent",
]

TYPES = ("invoke", "ok", "fail", "info")
INF = float("inf")


class HistoryError(Exception):
    """A history that cannot be read; str() is ``PATH:LINE: what is wrong``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class Op(NamedTuple):
    """One client operation: its invoke and, maybe, its completion.

    ``call``/``ret`` are positions in the event list (real-time order);
    ``ret`` is ``INF`` for an indeterminate operation (``info``, or no
    completion at all). ``value`` is the invoke's value (a write's value,
    a cas's ``[expected, new]``, None for a read); ``output`` is the ok
    completion's value (what a read returned), else the invoke's.
    ``start``/``end`` are the events' ``time`` (ns since the run started;
    None where a history has no times); ``end`` is None when there is no
    completion. ``invoke`` and ``complete`` are the events themselves; they
    are left out of equality and repr.

    Immutable and without a per-instance dict (a tuple underneath): built
    about ten times faster than a frozen dataclass, whose ``__init__``
    goes through ``object.__setattr__`` once per field (measured 0.35 us
    against 4.4 us per op; docs/history.md). Do not unpack it by position.
    """

    id: int
    process: Any
    f: str
    key: Any
    value: Any
    output: Any
    type: str  # "ok" | "fail" | "info" (info also covers "never completed")
    call: int
    ret: float
    start: Any
    end: Any
    node: Any
    error: Any
    invoke: dict
    complete: dict | None

    @property
    def definite(self) -> bool:
        """Whether the outcome is known (ok or fail); info may take effect or not."""
        return self.type != "info"

    @property
    def latency(self) -> Any:
        """``end - start`` (ns), or None without a completion time."""
        if self.end is None or self.start is None:
            return None
        return self.end - self.start

    @property
    def invoke_index(self) -> Any:
        return self.invoke.get("index")

    @property
    def complete_index(self) -> Any:
        return None if self.complete is None else self.complete.get("index")

    # Equality, hashing and repr leave out the two event dicts (the fields
    # name everything that matters; a dict is neither hashable nor short).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Op):
            return NotImplemented
        return self[:13] == other[:13]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self[:13])

    def __repr__(self) -> str:
        return "Op(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._fields[:13], self)) + ")"


# --------------------------------------------------------------------------- reading


def read_history(path: str | Path) -> list[dict]:
    """Events of a history file (JSON Lines or EDN), in file order."""
    p = Path(path)
    data = _read_bytes(p, path)
    with no_gc():
        if not _looks_like_edn(p, data[:400].decode("utf-8", "ignore")):
            data = _without_torn_tail(data)
            events = _parse_jsonl_bytes(data, str(path))
            if events is not None:
                return events
        if _looks_like_edn(p, data[:400].decode("utf-8", "ignore")):
            return parse_edn(data, str(path))  # names bad UTF-8 as below
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HistoryError(str(path), None, f"cannot read: {exc}") from None
        del data
        if _looks_like_edn(p, text):
            return parse_edn(text, str(path))
        return parse_jsonl(text, str(path))


def iter_events(path: str | Path) -> Iterator[list[dict]]:
    """The events of a history file in runs of about 8 MB of JSON Lines each,
    in file order, so a reader that keeps only what it needs of each event
    never holds them all at once (the list-append check of a file). The same
    reading as ``read_history``: EDN and unusual files (blank lines) come as
    one run, a bad line is the same ``HistoryError``."""
    p = Path(path)
    data = _read_bytes(p, path)
    if _orjson is None or _looks_like_edn(p, data[:400].decode("utf-8", "ignore")) \
            or b"\n\n" in data:
        del data
        yield read_history(path)
        return
    data = _without_torn_tail(data)
    n = len(data)
    while n and data[n - 1] == 10:
        n -= 1
    loads = _orjson.loads
    start = yielded = 0
    while start < n:
        end = n if n - start <= _CHUNK else data.find(b"\n", start + _CHUNK, n)
        if end < 0:
            end = n
        try:
            events = loads(b"[" + data[start:end].replace(b"\n", b",") + b"]")
        except _orjson.JSONDecodeError:
            events = None
        if events is None or not _well_formed(events):
            # the full reading names the bad line (or reads what this cannot)
            del data
            rest = read_history(path)[yielded:]
            yield rest
            return
        yielded += len(events)
        yield events
        start = end + 1


def _read_bytes(p: Path, path: str | Path) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise HistoryError(str(path), None, "no such file") from None
    except IsADirectoryError:
        raise HistoryError(str(path), None, "is a folder, not a history file") from None
    except OSError as exc:
        raise HistoryError(str(path), None, f"cannot read: {exc}") from None


def _without_torn_tail(data: bytes) -> bytes:
    """``data`` less a last line that a killed writer left half written.

    Every line a recorder writes ends in a newline, but a SIGKILL can land
    in the middle of a write: a final line with no newline that is not JSON
    is that torn write, and dropping it leaves the history every event of
    which was recorded whole. Any other bad line stays an error."""
    if not data or data.endswith(b"\n"):
        return data
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        return data[:cut]
    return data


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector paused while a history's objects are built.

    Reading and pairing a million-operation history allocates millions of
    dicts and tuples and no cycles; each collection would walk all of them
    again (measured: about half the time of a 1M-op check). Nested uses
    are fine; the collector is re-enabled only if it was on.

    On the way out, what was allocated meanwhile joins the oldest generation
    (``gc.freeze`` then ``gc.unfreeze``, each a list splice) instead of
    waiting in the youngest: re-enabled as it was, the next allocation
    walked all of it at once (about 1 s for a million tuples, measured).
    Skipped when something else has frozen objects (its set stays its own).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _looks_like_edn(path: Path, text: str) -> bool:
    if path.suffix == ".edn":
        return True
    if path.suffix in (".jsonl", ".json"):
        return False
    head = text.lstrip()[:200]
    return head.startswith(("[", "#")) or bool(re.match(r"\{\s*:", head))


_TYPESET = frozenset(TYPES)


def parse_jsonl(text: str, path: str = "<history>") -> list[dict]:
    """Events of a JSON Lines history; blank lines are allowed.

    Fast path: the whole file is parsed as one JSON array (one C call) and
    checked; event i then sits on line i + 1. Anything unusual (a blank
    line, a bad line) takes the line-by-line path, which records ``_line``
    where positions and lines differ and names the bad line.
    """
    events = _parse_jsonl_bytes(text.encode("utf-8"), path) if _orjson is not None else None
    if events is not None:
        return events
    lines = text.splitlines()
    try:
        events = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        return _parse_jsonl_lines(lines, path)
    if not _well_formed(events):
        return _parse_jsonl_lines(lines, path)
    return events


_CHUNK = 1 << 23  # bytes parsed per orjson call: big enough to amortize, small for RSS


def _parse_jsonl_bytes(data: bytes, path: str) -> list[dict] | None:
    """The fast path on the file's bytes with orjson: runs of whole lines
    (about 8 MB each) joined into one array and parsed in one call, so the
    extra memory is a chunk, not a copy of the file. None when orjson is
    absent or the file is unusual (blank lines, a bad line, ...): the caller
    then takes the text path, which names the bad line."""
    if _orjson is None:
        return None
    n = len(data)
    while n and data[n - 1] == 10:  # trailing newlines
        n -= 1
    if not n:
        return [] if not data.strip() else None
    loads = _orjson.loads
    events: list = []
    start = 0
    view = memoryview(data)
    try:
        while start < n:
            end = n if n - start <= _CHUNK else data.find(b"\n", start + _CHUNK, n)
            if end < 0:
                end = n
            chunk = b"[" + bytes(view[start:end]).replace(b"\n", b",") + b"]"
            events.extend(loads(chunk))
            del chunk
            start = end + 1
    except _orjson.JSONDecodeError:
        return None
    finally:
        view.release()
    return events if _well_formed(events) else None


def _well_formed(events: list) -> bool:
    """Every event a dict with a known type, a process and (clients) an f."""
    typeset = _TYPESET
    for ev in events:
        if type(ev) is not dict:
            return False
        t = ev.get("type")
        if type(t) is not str or t not in typeset or "process" not in ev:
            return False  # an unhashable type is named by the slow path, not a TypeError
        if type(ev.get("f")) is not str and ev.get("process") != "nemesis":
            return False
    return True


def _parse_jsonl_lines(lines: list[str], path: str) -> list[dict]:
    events: list[dict] = []
    blank = False
    loads = json.loads
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            blank = True
            continue
        try:
            ev = loads(line)
        except ValueError as exc:
            raise HistoryError(path, lineno, f"not JSON ({exc.args[0].split(':')[0]})") from None
        if not isinstance(ev, dict):
            raise HistoryError(path, lineno, "expected a JSON object per line")
        _validate(ev, path, lineno)
        if blank:
            ev["_line"] = lineno
        events.append(ev)
    return events


def _validate(ev: dict, path: str, lineno: int) -> None:
    t = ev.get("type")
    if t not in TYPES:
        raise HistoryError(path, lineno, f"'type' must be one of {', '.join(TYPES)}, not {t!r}")
    if "process" not in ev:
        raise HistoryError(path, lineno, "missing 'process'")
    if ev.get("process") != "nemesis" and not isinstance(ev.get("f"), str):
        raise HistoryError(path, lineno, "missing 'f' (the operation name)")


# --------------------------------------------------------------------------- EDN


def parse_edn(text: str | bytes, path: str = "<history>") -> list[dict]:
    """Events of an EDN history (checker/edn.py reads it; the bytes of a file
    are read without a decoded copy)."""
    from checker.edn import parse_edn as read  # it imports this module

    return read(text, path)


def unwrap_independent(events: list[dict]) -> list[dict]:
    """Jepsen ``independent`` histories: value ``[k v]`` -> key k, value v.

    Jepsen's independent checker runs one register per key and records the
    key inside the value as a tuple. Client events without a key get it
    from their value; others are left alone.
    """
    out = []
    for ev in events:
        v = ev.get("value")
        if ev.get("process") != "nemesis" and ev.get("key") is None and isinstance(v, list) \
                and len(v) == 2:
            ev = {**ev, "key": v[0], "value": v[1]}
        out.append(ev)
    return out


# --------------------------------------------------------------------------- pairing


def is_client_event(ev: dict) -> bool:
    """Nemesis and other non-client events are not operations."""
    return ev.get("process") != "nemesis"


_new_op = tuple.__new__  # Op's fields in order, without NamedTuple's Python-level __new__
#: checker/_pair.c built and current (checker/native.py), else None: the
#: compiled twin of ``pair`` for a list of plain event dicts (the same Ops,
#: or None on anything unusual, and then the loop below runs and names it)
PAIR_NATIVE = load("_pair")


def pair(events: list[dict], path: str = "<events>") -> list[Op]:
    """The operations of a history, in invocation order (``Op.id`` = position).

    - A second invoke on a process whose operation is still open makes that
      earlier operation ``info`` (it may take effect later, or never) and
      opens the new one.
    - An invoke without completion is ``info`` with ``end`` None.
    - An ``info`` completion with no open invoke is ignored (a client-side
      note); an ok/fail with no open invoke, or a completion whose ``f``
      differs from its invoke's, raises HistoryError (``PATH:LINE: ...``).
    - After an ``info`` a worker goes on under a new process number
      (Jepsen's rule), so nothing here has to guess which invoke a later
      completion belongs to.
    """
    if PAIR_NATIVE is not None and type(events) is list:
        ops = PAIR_NATIVE.pair_dicts(events, Op, INF)
        if ops is not None:
            return ops
    # slots[id] holds the invoke event while the operation is open, its Op
    # after; open_ maps a process to its open operation's id. Plain ints and
    # list slots, no tuple per operation: fewer objects for the collector.
    slots: list[Any] = []
    calls: list[int] = []  # calls[id]: position of the invoke event
    open_: dict[Any, int] = {}
    pop_open = open_.pop
    new = _new_op
    completions = _COMPLETIONS
    pos = 0
    ev: dict = {}
    try:
        for pos, ev in enumerate(events):
            # Subscripts, not .get: a history event always has both (the readers
            # check it), and this loop is a good part of the checker's time.
            p = ev["process"]
            if p == "nemesis":
                continue  # faults are not operations
            t = ev["type"]
            if t == "invoke":
                prev = open_.get(p)
                if prev is not None:
                    slots[prev] = _unfinished(prev, calls[prev], slots[prev], p)
                open_[p] = len(slots)
                slots.append(ev)
                calls.append(pos)
                continue
            if t not in completions:
                raise HistoryError(path, _line(ev, pos), f"unknown event type {t!r}")
            oid = pop_open(p, None)
            if oid is None:
                if t == "info":
                    continue  # a client-side info note without invoke: no operation
                raise HistoryError(path, _line(ev, pos), f"{t} for process {p} with no open invoke")
            inv = slots[oid]
            iget = inv.get
            get = ev.get
            f = iget("f")
            cf = get("f")
            if cf != f and cf is not None:
                raise HistoryError(
                    path, _line(ev, pos), f"completion f {cf!r} does not match invoke f {f!r}"
                )
            v = iget("value")
            if t == "info":
                slots[oid] = new(Op, (oid, p, f, iget("key"), v, v, t, calls[oid], INF,
                                      iget("time"), get("time"), get("node"), get("error"), inv,
                                      ev))
            else:
                slots[oid] = new(Op, (oid, p, f, iget("key"), v, get("value"), t, calls[oid],
                                      pos, iget("time"), get("time"), get("node"),
                                      get("error"), inv, ev))
    except KeyError as exc:
        raise HistoryError(path, _line(ev, pos), f"missing {exc.args[0]!r}") from None
    for p, oid in open_.items():
        slots[oid] = _unfinished(oid, calls[oid], slots[oid], p)
    return slots


_COMPLETIONS = frozenset(("ok", "fail", "info"))


def _unfinished(oid: int, call: int, inv: dict, process: Any) -> Op:
    """An operation that never completed: info, may take effect later or never."""
    v = inv.get("value")
    return _new_op(Op, (oid, process, inv.get("f"), inv.get("key"), v, v, "info", call, INF,
                        inv.get("time"), None, None, None, inv, None))


def _line(ev: dict, pos: int) -> int:
    line = ev.get("_line")
    return int(line) if line is not None else pos + 1


def public(ev: dict) -> dict:
    """An event without reader bookkeeping (for reports and JSON output)."""
    return {k: v for k, v in ev.items() if k != "_line"}


# --------------------------------------------------------------------------- paired, fast


if _msgspec is not None:

    class Event(_msgspec.Struct, gc=False):
        """One JSON Lines event as ``read_ops`` decodes it: the fields an
        ``Op`` takes (others are not kept), ``type`` checked on decoding.
        ``get`` answers as a dict's would, so an ``Op`` built on it reads
        the same (``invoke_index``, ``explain.when``)."""

        process: Any
        type: Literal["invoke", "ok", "fail", "info"]
        f: Any = None
        key: Any = None
        value: Any = None
        time: Any = None
        index: Any = None
        node: Any = None
        error: Any = None

        def get(self, name: str, default: Any = None) -> Any:
            return getattr(self, name, default)

    _EVENTS = _msgspec.json.Decoder(Event)


class _Unusual(Exception):
    """``read_ops`` meets what only the full reading handles (or names)."""


def read_ops(path: str | Path) -> list[Op] | None:
    """The paired operations of a JSON Lines history, read straight into
    small typed structs (msgspec) and paired in one pass: what ``pair(
    read_history(path))`` gives, with each ``Op``'s ``invoke``/``complete``
    an ``Event`` holding the fields an operation has (not the file's other
    fields), at about half the time and memory of a 1M-op file (docs/history.md).

    None when the file is not plain (EDN, blank lines, a line that is not
    an event, a pairing error, msgspec absent): the caller then reads it
    with ``read_history`` and ``pair``, which read it or name the bad line.
    Pairing follows ``pair`` rule for rule (tests/test_history.py checks the
    two agree)."""
    if _msgspec is None:
        return None
    p = Path(path)
    data = _read_bytes(p, path)
    if _looks_like_edn(p, data[:400].decode("utf-8", "ignore")) or b"\n\n" in data:
        return None
    data = _without_torn_tail(data)
    with no_gc():
        try:
            events = _EVENTS.decode_lines(data)
        except (_msgspec.DecodeError, _msgspec.ValidationError):
            return None
        del data
        try:
            return _pair_events(events)
        except (_Unusual, TypeError):  # TypeError: an unhashable process
            return None


def _pair_events(events: list[Any]) -> list[Op]:
    """``pair`` on ``Event`` structs (attributes, not subscripts); anything
    ``pair`` would raise on raises ``_Unusual``."""
    slots: list[Any] = []
    calls: list[int] = []
    open_: dict[Any, int] = {}
    pop_open = open_.pop
    get_open = open_.get
    new = _new_op
    str_ = str
    for pos, ev in enumerate(events):
        p = ev.process
        if p == "nemesis":
            continue
        f = ev.f
        if type(f) is not str_:
            raise _Unusual
        t = ev.type
        if t == "invoke":
            prev = get_open(p)
            if prev is not None:
                slots[prev] = _unfinished_event(prev, calls[prev], slots[prev], p)
            open_[p] = len(slots)
            slots.append(ev)
            calls.append(pos)
            continue
        oid = pop_open(p, None)
        if oid is None:
            if t == "info":
                continue
            raise _Unusual
        inv = slots[oid]
        if f != inv.f:
            raise _Unusual
        v = inv.value
        if t == "info":
            slots[oid] = new(Op, (oid, p, f, inv.key, v, v, t, calls[oid], INF, inv.time,
                                  ev.time, ev.node, ev.error, inv, ev))
        else:
            slots[oid] = new(Op, (oid, p, f, inv.key, v, ev.value, t, calls[oid], pos,
                                  inv.time, ev.time, ev.node, ev.error, inv, ev))
    for p, oid in open_.items():
        slots[oid] = _unfinished_event(oid, calls[oid], slots[oid], p)
    return slots


def _unfinished_event(oid: int, call: int, inv: Any, process: Any) -> Op:
    v = inv.value
    return _new_op(Op, (oid, process, inv.f, inv.key, v, v, "info", call, INF, inv.time, None,
                        None, None, inv, None))
