"""Reads a run folder (DESIGN.md "Run folder") into one `Run` the report draws from.

Owns: tolerant loading of history.jsonl, results.json, config.json,
cluster.json, metrics.jsonl, net.jsonl and nodes/<id>.log.

Invariants:
- Only history.jsonl is required; every other file may be missing or partial
  (a crashed run still gets a report). A missing folder or unreadable history
  raises `ReportError` with a one-line message.
- A torn last line (the run was killed mid-write) is skipped, not fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ReportError(Exception):
    """A run folder the report cannot be drawn from; str is one line for the user."""


@dataclass
class Run:
    path: Path
    events: list[dict]
    results: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    cluster: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)  # node id -> lines
    _net: list[dict] | None = None

    @property
    def net(self) -> list[dict]:
        """The message journal, read on first use: it is large and only a violation needs it."""
        if self._net is None:
            self._net = read_jsonl(self.path / "net.jsonl")
        return self._net

    @property
    def node_ids(self) -> list[str]:
        ids: list[str] = []
        for src in (self.cluster.get("nodes") or {},):
            ids.extend(str(k) for k in src)
        for m in self.metrics:
            n = m.get("node")
            if n is not None and str(n) not in ids:
                ids.append(str(n))
        if not ids:  # only when nothing better names the nodes: logs include the proxy's
            ids.extend(n for n in self.logs if n != "proxy")
        return sorted(ids, key=_natural)


def _natural(s: str) -> tuple:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


def read_jsonl(path: Path, *, required: bool = False) -> list[dict]:
    """JSON objects, one per line; a torn final line is skipped."""
    if not path.exists():
        if required:
            raise ReportError(f"{path}: no such file")
        return []
    out: list[dict] = []
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                continue  # torn last line of a killed run
            if required:
                raise ReportError(f"{path}:{n}: not a JSON object") from None
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def read_history(path: Path) -> list[dict]:
    """history.jsonl, tolerating a torn last line (the run was killed mid-write).

    Only an EDN history (imported from Jepsen) goes through the checker's reader.
    """
    if path.suffix != ".edn":
        return read_jsonl(path, required=True)
    try:
        from harness.history import HistoryError
        from harness.history import read_history as checker_read
    except ImportError:
        raise ReportError(f"{path}: reading EDN needs harness.history") from None
    try:
        return list(checker_read(path))
    except HistoryError as exc:
        raise ReportError(str(exc)) from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None


def load_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a run folder")
    events = read_history(run_dir / "history.jsonl")
    logs: dict[str, list[str]] = {}
    nodes_dir = run_dir / "nodes"
    if nodes_dir.is_dir():
        for p in sorted(nodes_dir.glob("*.log")):
            try:
                logs[p.stem] = p.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
    return Run(
        path=run_dir,
        events=events,
        results=read_json(run_dir / "results.json"),
        config=read_json(run_dir / "config.json"),
        cluster=read_json(run_dir / "cluster.json"),
        metrics=read_jsonl(run_dir / "metrics.jsonl"),
        logs=logs,
    )


def get(d: Any, *keys: str, default: Any = None) -> Any:
    """d[k1][k2]... or default when any level is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d
