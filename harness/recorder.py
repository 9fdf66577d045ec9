"""The history writer: RUN/history.jsonl as it happens (docs/history.md, docs/run-folder.md).

Owns event numbering and the run clock. Invariants:
- ``index`` counts up from 0 with no gaps, in file order.
- ``time`` is nanoseconds since the run started on the monotonic clock; the
  metrics file uses the same clock (``Recorder.now``).
- Each event is one line, flushed to the OS before ``record`` returns, so a
  harness that is killed still leaves a checkable prefix.
- ``record`` may be called from any thread (the nemesis may use one).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any


class Clock:
    """Nanoseconds since the run started (monotonic)."""

    def __init__(self) -> None:
        self.start_ns = time.monotonic_ns()

    def now(self) -> int:
        return time.monotonic_ns() - self.start_ns


class Recorder:
    """Appends history events to a JSONL file and keeps counts of completions."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = Path(path)
        self.clock = clock
        # line-buffered, closed in close(); outlives any one with-block by design
        self._file: IO[str] | None = open(  # noqa: SIM115
            self.path, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self._index = 0
        self.counts = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}

    def now(self) -> int:
        return self.clock.now()

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``event`` with index and time, write it, and return it."""
        with self._lock:
            if self._file is None:
                return event  # closed: late events of a stopped run are dropped
            stamped = {"index": self._index, "time": self.clock.now(), **event}
            self._file.write(json.dumps(stamped, separators=(", ", ": ")) + "\n")
            self._file.flush()
            self._index += 1
            if stamped.get("process") != "nemesis":
                kind = stamped.get("type")
                if kind in self.counts:
                    self.counts[kind] += 1
            return stamped

    def nemesis(self, f: str, value: Any) -> None:
        """A nemesis event (``f`` is e.g. ``kill`` or ``kill-end``)."""
        self.record({"process": "nemesis", "type": "info", "f": f, "value": value})

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
