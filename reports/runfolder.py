"""The run folder: its layout, the results.json schema, and reading it back (docs/run-folder.md).

Owns, for every writer and reader of a run folder:
- the layout: a store holds ``<name>/<stamp>/`` run folders and a ``latest``
  link; a run folder holds config.json, cluster.json, history.jsonl,
  results.json, index.html, metrics.jsonl, net.jsonl, nodes/<id>.log and the
  nodes' data/ (``RunFolder`` names every path; ``new_run_folder`` makes one,
  ``point_latest`` moves the link, ``find_runs`` lists a store);
- the results.json schema, version ``SCHEMA``: ``write_results`` stamps the
  version and refuses a field the schema does not name (``RESULT_FIELDS``);
  ``read_results`` accepts this version and older ones and raises
  ``SchemaError`` (one line) on a newer one;
- tolerant loading of everything into one ``Run`` the report draws from.

Invariants:
- Only history.jsonl is required to draw a report; every other file may be
  missing or partial (a crashed run still gets a report; a results.json field
  of the wrong type is dropped). A missing folder, an unreadable history, a
  newer schema or a file that cannot be written raises ``ReportError`` with a
  one-line message.
- A torn last line (the run was killed mid-write: no "\n", not JSON) is
  skipped, not fatal; any other bad line of history.jsonl is a ReportError.
- Everything a report shows is read from the folder: a folder copied from
  another machine redraws the same page. This module imports nothing of the
  harness's runtime (nor ``harness`` at all).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- layout -------------------------------------------------------------------------------

CONFIG = "config.json"
CLUSTER = "cluster.json"
HISTORY = "history.jsonl"
RESULTS = "results.json"
REPORT = "index.html"
METRICS = "metrics.jsonl"
NET = "net.jsonl"
LOGS = "nodes"
#: Logs in nodes/ that are no node's: the proxy's and the client workers' (the runner's).
PROXY_LOG = "proxy"
WORKERS_LOG = "workers"
SUPERSEDED = "superseded.json"  # a sweep seed's second run (reports/ledger.py): skipped by readers
#: store/latest: a relative symlink to the newest run folder.
LATEST = "latest"
#: store/index.html: every run of the store.
STORE_INDEX = "index.html"
#: The files the report links to, in the order it lists them.
RAW_FILES = (HISTORY, RESULTS, CONFIG, CLUSTER, METRICS, NET)
#: A run folder's name: its start in local time to the second (then ``-2``, ... when taken).
STAMP = "%Y%m%dT%H%M%S"

# --- results.json schema --------------------------------------------------------------------

#: Version of results.json this code writes and the newest it reads. Version 1:
#: anomalies name operations by ``Op.id`` (positions in ``pair(history)``).
#: Version 2 adds ``ineffective_faults`` and ``replay``; version 3 ``simulated``,
#: ``simulated_s``, ``sim_only_faults`` (simulated runs, harness/simrun.py), ``wall_s`` and
#: ``shrunk`` (a run harness/shrink.py made).
SCHEMA = 3
#: Every field of results.json (docs/run-folder.md describes each).
RESULT_FIELDS = (
    "schema", "verdict", "exit_code", "name", "system", "seed", "command", "started",
    "duration_s", "nodes", "nemesis", "bugs", "counts", "ops_per_s", "latency_ms", "checker",
    "availability", "ineffective_faults", "replay", "interrupted", "recovered", "notes",
    "simulated", "simulated_s", "sim_only_faults", "wall_s", "shrunk",
)
_NUMBER = (int, float)
#: The JSON type of each field; ``read_results`` drops a value of another type (null is
#: always allowed: the figure is unknown), so a reader may trust the type of what it gets.
RESULT_TYPES: dict[str, type | tuple[type, ...]] = {
    "schema": int, "verdict": str, "exit_code": int, "name": str, "system": str, "seed": int,
    "command": str, "started": str, "duration_s": _NUMBER, "nodes": int, "nemesis": str,
    "bugs": list, "counts": dict, "ops_per_s": _NUMBER, "latency_ms": dict, "checker": dict,
    "availability": list, "ineffective_faults": list, "replay": dict, "interrupted": bool,
    "recovered": bool, "notes": list, "simulated": bool, "simulated_s": _NUMBER,
    "sim_only_faults": list, "wall_s": _NUMBER, "shrunk": dict,
}
assert set(RESULT_TYPES) == set(RESULT_FIELDS)
#: The fields of results.json that depend on the wall clock (as key paths): a
#: simulated run's results.json is byte-identical for the same config and seed
#: once these are taken out (``without_wall_clock``; docs/simulation.md).
WALL_CLOCK_FIELDS: tuple[tuple[str, ...], ...] = (("started",), ("wall_s",),
                                                  ("checker", "seconds"))


def without_wall_clock(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``results`` without ``WALL_CLOCK_FIELDS``."""
    out = json.loads(json.dumps(results))
    for path in WALL_CLOCK_FIELDS:
        d = out
        for key in path[:-1]:
            d = d.get(key) if isinstance(d, dict) else None
        if isinstance(d, dict):
            d.pop(path[-1], None)
    return out


class ReportError(Exception):
    """A run folder the report cannot be drawn from; str is one line for the user."""


class SchemaError(ReportError):
    """results.json was written by a newer harness than this one."""

    def __init__(self, path: Path, version: int) -> None:
        self.version = version
        super().__init__(f"{path}: schema {version} is newer than this harness reads "
                         f"({SCHEMA}); upgrade consensus-harness to read it")


class StoreError(Exception):
    """The store cannot be written; str is one line for the user."""


def log_path(node: str) -> str:
    """Where a process's log sits inside a run folder, "/"-separated: the report links
    to it by this relative path."""
    return f"{LOGS}/{node}.log"


@dataclass(frozen=True, slots=True)
class RunFolder:
    """The paths of one run folder (nothing is created or read here)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def cluster(self) -> Path:
        return self.root / CLUSTER

    @property
    def history(self) -> Path:
        return self.root / HISTORY

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def net(self) -> Path:
        return self.root / NET

    @property
    def logs(self) -> Path:
        """nodes/: one ``<id>.log`` per node (and ``proxy.log``, ``workers.log``)."""
        return self.root / LOGS

    def log(self, node: str) -> Path:
        return self.root / log_path(node)

    def is_run(self) -> bool:
        return self.history.is_file()


def new_run_folder(store: Path, name: str) -> RunFolder:
    """Make ``store/name/<stamp>`` (``<stamp>-2``, ... when taken); StoreError if unwritable."""
    store = Path(store)
    stamp = dt.datetime.now().strftime(STAMP)
    try:
        (store / name).mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            run_dir = store / name / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                continue
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"cannot write to the store {store}: {exc.strerror or exc}") from None
    return RunFolder(run_dir)


def stamp_time(name: str) -> dt.datetime | None:
    """The local start time a run folder's name says (``STAMP``, with or without its
    ``-N``), as an aware time; None when the name is no stamp."""
    base, dash, n = name.rpartition("-")
    try:
        return dt.datetime.strptime(base if dash and n.isdigit() else name, STAMP).astimezone()
    except ValueError:
        return None


def started_time(results: dict) -> dt.datetime | None:
    """results.json's ``started`` as an aware time (it is UTC, so a naive one is read as
    UTC); None when absent or not ISO 8601."""
    s = results.get("started")
    if not isinstance(s, str):
        return None
    try:
        t = dt.datetime.fromisoformat(s)  # reads a trailing Z as UTC since 3.11
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def point_latest(store: Path, run_dir: Path) -> None:
    """Make store/latest a relative symlink to ``run_dir`` (atomically; best effort)."""
    store = Path(store)
    link = store / LATEST
    tmp = store / f".latest-{os.getpid()}-{threading.get_ident()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.path.relpath(run_dir, store))
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def find_runs(store: Path) -> list[Path]:
    """Run folders (they hold history.jsonl) at depth 1 or 2 under the store, symlinks skipped.

    A folder marked superseded.json (a sweep's seed that ran twice, reports/ledger.py) is left
    out, so the index, the ledger and `harness report` count every seed once."""
    store = Path(store)
    runs: list[Path] = []
    if not store.is_dir():
        return runs
    for first in sorted(store.iterdir()):
        if first.is_symlink() or not first.is_dir():
            continue
        if (first / HISTORY).exists():
            if not (first / SUPERSEDED).exists():
                runs.append(first)
            continue
        for second in sorted(first.iterdir()):
            if (
                not second.is_symlink()
                and second.is_dir()
                and (second / HISTORY).exists()
                and not (second / SUPERSEDED).exists()
            ):
                runs.append(second)
    return runs


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file and a rename: readers never see half of it.

    ReportError (one line) when it cannot be written; the temporary file is removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()  # no stray temporary file beside the one that could not be written
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_results(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Write results.json with the schema version first; returns what was written.

    A field the schema does not name is a programming error (ValueError): add
    it to ``RESULT_FIELDS`` and docs/run-folder.md first."""
    unknown = sorted(set(results) - set(RESULT_FIELDS))
    if unknown:
        raise ValueError(f"results.json has no field {', '.join(unknown)} (schema {SCHEMA})")
    data = {"schema": SCHEMA, **{k: v for k, v in results.items() if k != "schema"}}
    write_json(RunFolder(Path(run_dir)).results, data)
    return data


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; {} when it is missing, unreadable or not an object."""
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def read_results(run_dir: Path) -> dict:
    """results.json of a run folder ({} when absent or unreadable: the run crashed).

    A field whose value has the wrong JSON type (``RESULT_TYPES``) is dropped, as if
    it were missing: the page is still drawn. Accepts schema ``SCHEMA`` and older (a file without the field predates it);
    raises ``SchemaError`` on a newer one."""
    path = RunFolder(Path(run_dir)).results
    results = {k: v for k, v in read_json(path).items() if _typed(k, v)}
    version = results.get("schema")
    if isinstance(version, int) and version > SCHEMA:
        raise SchemaError(path, version)
    return results


def _typed(name: str, value: Any) -> bool:
    """``value`` has the type results.json gives ``name`` (a field it does not name is kept:
    an older reader of a newer file never gets this far)."""
    want = RESULT_TYPES.get(name)
    if want is None or value is None:
        return True
    if isinstance(value, bool) and want is not bool:
        return False  # JSON true is not a number
    return isinstance(value, want)


def read_config(run_dir: Path) -> dict:
    """config.json of a run folder ({} when absent or unreadable)."""
    return read_json(RunFolder(Path(run_dir)).config)


def anomaly_ops(anomaly: dict, field_name: str = "ops") -> list[int]:
    """The operation ids an anomaly of results.json names (``ops`` or ``prefix``).

    Ids index ``pair(history)``; anything else (the event dicts of results.json
    written before schema 1) names no operation."""
    ids = anomaly.get(field_name) if isinstance(anomaly, dict) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if type(i) is int]


# --- loading a run for the report -------------------------------------------------------------


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
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def net(self) -> list[dict]:
        """The message journal, read on first use: it is large and only a violation needs it."""
        if self._net is None:
            self._net = read_jsonl(self.folder.net)
        return self._net

    @property
    def node_ids(self) -> list[str]:
        listed = self.cluster.get("nodes")  # a dict or list in cluster.json; anything else is ignored
        ids: list[str] = [str(k) for k in listed] if isinstance(listed, (dict, list)) else []
        for m in self.metrics:
            n = m.get("node")
            if n is not None and str(n) not in ids:
                ids.append(str(n))
        if not ids:  # only when nothing better names the nodes: logs include the proxy's
            ids.extend(n for n in self.logs if n not in (PROXY_LOG, WORKERS_LOG))
        return sorted(ids, key=_natural)


def _natural(s: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


def read_jsonl(path: Path, *, required: bool = False) -> list[dict]:
    """JSON objects, one per line.

    A final line without its "\n" that does not parse is a torn write (the run was
    killed mid-write) and is skipped. Any other line that is not a JSON object is a
    ``ReportError`` (one line) when the file is ``required`` (history.jsonl), and
    skipped in an optional file (metrics, journal), which may be partial."""
    if not path.exists():
        if required:
            raise ReportError(f"{path}: no such file")
        return []
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    lines = text.splitlines()
    torn = len(lines) if text and not text.endswith("\n") else 0  # the line a write cut short
    out: list[dict] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if n == torn:
                continue
            obj = None
        if isinstance(obj, dict):
            out.append(obj)
        elif required:
            raise ReportError(f"{path}:{n}: not a JSON object")
    return out


def load_run(run_dir: Path) -> Run:
    folder = RunFolder(Path(run_dir))
    if not folder.root.is_dir():
        raise ReportError(f"{folder.root}: not a run folder")
    events = read_jsonl(folder.history, required=True)
    logs: dict[str, list[str]] = {}
    if folder.logs.is_dir():
        for p in sorted(folder.logs.glob("*.log")):
            try:
                logs[p.stem] = p.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
    return Run(
        path=folder.root,
        events=events,
        results=read_results(folder.root),
        config=read_json(folder.config),
        cluster=read_json(folder.cluster),
        metrics=read_jsonl(folder.metrics),
        logs=logs,
    )


def get(d: Any, *keys: str, default: Any = None) -> Any:
    """d[k1][k2]... or default when any level is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d
