"""The history writer: RUN/history.jsonl as it happens (docs/history.md, "How a run records").

Owns event numbering, the run clock and the merge of several writers.
Writers: this process (``record``: the nemesis, the final reads) and any
number of client worker processes (``attach``: each sends batches of
encoded events over a pipe, with a *horizon*: every event it will send later
has a time >= that horizon; see harness/workers.py).

Invariants:
- ``index`` counts up from 0 with no gaps, in file order.
- ``time`` is nanoseconds since the run started on CLOCK_MONOTONIC (shared
  by every process of the machine); the metrics file uses the same clock.
- File order is time order: an event is written only once its time is
  below every live writer's horizon, and the events written together are
  merged by time. So the file is always the exact time-prefix of the run,
  which is what makes it checkable after a SIGKILL: an operation that
  observed a value was invoked after the write it observed was invoked.
- With no attached writer, ``record`` writes through before it returns (one
  ``write`` per event, as the single-writer recorder always did); with
  writers, the reader thread writes what is final every ``flush_s`` seconds
  (0.05 by default), so a killed harness leaves at most ~0.1 s unwritten.
- ``record`` may be called from any thread.
"""

from __future__ import annotations

import bisect
import json
import os
import selectors
import threading
import time
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import Any

import msgpack

COUNT_TYPES = ("invoke", "ok", "fail", "info")
_INF = float("inf")
_by_time = itemgetter(0)
#: json.dumps's own formatting (", " and ": ", ASCII), for values that are not ints.
_dumps = json.JSONEncoder(separators=(", ", ": ")).encode


class Clock:
    """Nanoseconds since the run started (CLOCK_MONOTONIC)."""

    def __init__(self, start_ns: int | None = None) -> None:
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns

    def now(self) -> int:
        return time.monotonic_ns() - self.start_ns


def json_value(v: Any) -> str:
    """``json.dumps(v)`` with a fast path for the values a history mostly holds."""
    if v is None:
        return "null"
    if type(v) is int:
        return str(v)
    if type(v) is list and len(v) == 2:  # a cas's [expected, new]
        a, b = v
        if (a is None or type(a) is int) and type(b) is int:
            return f"[{'null' if a is None else a}, {b}]"
    return _dumps(v)


def op_text(t: int, process: int, type_: str, f: str, key_json: str, value: Any,
            node_json: str | None = None, error: str | None = None) -> str:
    """One client event as the text after ``{"index": N, `` (no newline): exactly what
    ``json.dumps({"index": N, "time": t, "process": ..., ...})`` writes after that
    prefix. ``key_json`` and ``node_json`` are already JSON (callers cache them)."""
    # The common values inline: this runs twice per operation on the workers' hot path.
    vj = "null" if value is None else value if type(value) is int else json_value(value)
    if node_json is None:
        if error is None:
            return (f'"time": {t}, "process": {process}, "type": "{type_}", "f": "{f}", '
                    f'"key": {key_json}, "value": {vj}}}')
        node_part = ""
    else:
        node_part = ', "node": ' + node_json
        if error is None:
            return (f'"time": {t}, "process": {process}, "type": "{type_}", "f": "{f}", '
                    f'"key": {key_json}, "value": {vj}{node_part}}}')
    return (f'"time": {t}, "process": {process}, "type": "{type_}", "f": "{f}", '
            f'"key": {key_json}, "value": {vj}{node_part}, "error": {_dumps(error)}}}')


def frame(horizon: int, counts: list[int], times: list[int], texts: list[str],
          extra: dict[str, Any] | None = None) -> bytes:
    """One worker batch on the pipe: events (time-sorted) and the writer's horizon."""
    return msgpack.packb([horizon, counts, times, "\n".join(texts), extra])


class _Writer:
    """What the recorder knows of one attached writer."""

    __slots__ = ("done", "extra", "fd", "horizon", "start", "texts", "times", "unpacker")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.horizon = 0
        self.times: list[int] = []
        self.texts: list[str] = []
        self.start = 0  # times[:start] were written
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=256 * 1024 * 1024)
        self.extra: dict[str, Any] = {}
        self.done = False


class Recorder:
    """Appends history events to a JSONL file and keeps counts of them."""

    def __init__(self, path: Path, clock: Clock, *, flush_s: float = 0.05) -> None:
        self.path = Path(path)
        self.clock = clock
        self.flush_s = flush_s
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.RLock()
        self._index = 0
        self.counts = dict.fromkeys(COUNT_TYPES, 0)
        self._own_times: list[int] = []
        self._own_texts: list[str] = []
        self._writers: list[_Writer] = []
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()

    def now(self) -> int:
        return self.clock.now()

    # --- this process's events -----------------------------------------------------

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``event`` with the time, queue it (or write it at once when no
        worker is attached) and return it stamped (without ``index``)."""
        with self._lock:
            if self._fd is None:
                return event  # closed: late events of a stopped run are dropped
            t = self.clock.now()
            stamped = {"time": t, **event}
            self._own_times.append(t)
            self._own_texts.append(_dumps(stamped)[1:])
            if event.get("process") != "nemesis" and event.get("type") in self.counts:
                self.counts[event["type"]] += 1
            if not self._live_writers():
                self._write_ready()
            return stamped

    def nemesis(self, f: str, value: Any) -> None:
        """A nemesis event (``f`` is e.g. ``kill`` or ``kill-end``)."""
        self.record({"process": "nemesis", "type": "info", "f": f, "value": value})

    def add_listener(self, fn: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call ``fn(events)`` after each write with the events just written (dicts
        with ``index``, in file order), e.g. for a streaming checker. It runs under
        the recorder's lock: keep it quick; what it raises propagates to the writer."""
        with self._lock:
            self._listeners.append(fn)

    # --- other writers -------------------------------------------------------------

    def attach(self, fd: int) -> _Writer:
        """Read batches (``frame``) from ``fd`` until EOF; returns the writer's
        state (``.extra``: the last non-None extra it sent, ``.done`` after EOF)."""
        writer = _Writer(fd)
        with self._lock:
            self._writers.append(writer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._read_loop, name="recorder",
                                                daemon=True)
                self._thread.start()
            else:
                os.write(self._wake_w, b"a")
        return writer

    def horizons(self) -> list[int]:
        with self._lock:
            return [w.horizon for w in self._writers if not w.done]

    def wait_detached(self, timeout: float) -> bool:
        """Wait until every attached writer reached EOF and its events are written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._live_writers():
                    self._write_ready()
                    return True
            time.sleep(0.005)
        return False

    def flush(self) -> None:
        """Write now what is final (the reader thread also does, every ``flush_s``)."""
        with self._lock:
            self._write_ready()

    def _live_writers(self) -> bool:
        return any(not w.done or w.start < len(w.times) for w in self._writers)

    def _read_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        known: set[int] = set()
        next_flush = time.monotonic() + self.flush_s
        while True:
            with self._lock:
                if self._fd is None:
                    break
                for w in self._writers:
                    if w.fd not in known and not w.done:
                        known.add(w.fd)
                        sel.register(w.fd, selectors.EVENT_READ, w)
            for key, _ in sel.select(max(0.0, next_flush - time.monotonic())):
                w = key.data
                if w is None:
                    os.read(self._wake_r, 4096)
                    continue
                try:
                    data = os.read(w.fd, 1 << 20)
                except OSError:
                    data = b""
                with self._lock:
                    if not data:
                        sel.unregister(w.fd)
                        w.done = True
                        w.horizon = _INF  # type: ignore[assignment]
                        continue
                    w.unpacker.feed(data)
                    for horizon, counts, times, text, extra in w.unpacker:
                        if times:
                            w.times.extend(times)
                            w.texts.extend(text.split("\n"))
                        for kind, n in zip(COUNT_TYPES, counts):
                            self.counts[kind] += n
                        w.horizon = horizon
                        if extra is not None:
                            w.extra = extra
            if time.monotonic() >= next_flush:
                next_flush = time.monotonic() + self.flush_s
                with self._lock:
                    if self._fd is None:
                        break
                    self._write_ready()
        sel.close()

    # --- writing -------------------------------------------------------------------

    def _write_ready(self) -> None:
        """Write every queued event older than every live writer's horizon. Lock held."""
        if self._fd is None:
            return
        bound = min((w.horizon for w in self._writers if not w.done), default=_INF)
        runs: list[list[tuple[int, str]]] = []
        n = bisect.bisect_left(self._own_times, bound)
        if n:
            runs.append(list(zip(self._own_times[:n], self._own_texts[:n])))
            del self._own_times[:n], self._own_texts[:n]
        for w in self._writers:
            end = bisect.bisect_left(w.times, bound, w.start)
            if end > w.start:
                runs.append(list(zip(w.times[w.start:end], w.texts[w.start:end])))
                w.start = end
                if end > 65536 or end == len(w.times):  # drop what is written
                    del w.times[:end], w.texts[:end]
                    w.start = 0
        self._writers = [w for w in self._writers if not w.done or w.start < len(w.times)]
        if not runs:
            return
        if len(runs) == 1:
            merged = runs[0]
        else:
            merged = [e for run in runs for e in run]
            merged.sort(key=_by_time)  # stable: ties keep writer order; runs are sorted
        base = self._index
        lines = [f'{{"index": {i}, {text}\n' for i, (_, text) in enumerate(merged, base)]
        data = "".join(lines).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._index = base + len(lines)
        if self._listeners:
            events = json.loads("[" + ",".join(lines) + "]")
            for fn in self._listeners:
                fn(events)

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            for w in self._writers:  # whatever a writer sent is final now
                w.done = True
            self._write_ready()
            os.close(self._fd)
            self._fd = None
        os.write(self._wake_w, b"c")
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)
