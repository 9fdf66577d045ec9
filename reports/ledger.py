"""The store's ledger: every run in one SQLite file, and what the failures have in common.

Owns ``store/ledger.sqlite`` (docs/ledger.md): one row per run (its config,
seed, system, verdict, durations and, for a run that did not pass, a failure
*signature*: the model, the anomaly's kind, the bugs on, and the shape of the
shrunk fault story when there is one), and the two summaries `harness ledger`
prints and the store index shows: failures grouped by signature (first seen,
last seen, count, newest report) and, per run name, the runs and the share
that failed (the flake rate).

Invariants:
- The run folders are the truth; the ledger is an index of them. ``sync``
  adds or refreshes the row of every run whose results.json changed since it
  was read, so a deleted ledger is rebuilt by the next ``open_ledger`` and a
  damaged one (not a database, or failing SQLite's integrity check) is moved
  aside as ``ledger.sqlite.damaged`` and rebuilt. A folder that keeps only
  config.json and results.json (a sweep's passing seed) is a run too.
- A folder marked ``superseded.json`` is not a run: a sweep marks the second
  folder of a seed that ran twice (a Dask worker died after the run ended and
  before it reported, and the task ran again), so every seed counts once. The
  folder stays (nothing recorded is lost); its row goes, also on a rebuild.
- Any number of processes may record into one store at once: every write is
  one short ``BEGIN IMMEDIATE`` transaction in WAL mode with a busy timeout,
  and a row is keyed by the run's path relative to the store, so a run
  recorded twice is one row.
- Reading the ledger never changes a run folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from reports.runfolder import (
    HISTORY,
    REPORT,
    RESULTS,
    SUPERSEDED,
    SchemaError,
    find_runs,
    read_config,
    read_results,
    stamp_time,
    started_time,
)

LEDGER = "ledger.sqlite"
#: How long a writer waits for another process's transaction, in ms.
BUSY_MS = 30_000
_SCHEMA = 1

_COLUMNS = ("path", "name", "system", "seed", "verdict", "exit_code", "started",
            "duration_s", "wall_s", "simulated", "nemesis", "bugs", "model", "anomaly",
            "story", "signature", "config", "report", "results_mtime")


class LedgerError(Exception):
    """The ledger cannot be opened or written (one line)."""


@dataclass(frozen=True)
class Row:
    """One run as the ledger keeps it."""

    path: str  # the run folder relative to the store (a results-only run: its recorded key)
    name: str
    system: str
    seed: int | None
    verdict: str
    exit_code: int | None
    started: str  # UTC, ISO 8601
    duration_s: float | None
    wall_s: float | None
    simulated: bool
    nemesis: str
    bugs: str  # the bugs on, sorted, comma-separated
    model: str
    anomaly: str
    story: str
    signature: str  # "" for a valid run
    config: str  # config.json as JSON text
    report: str  # the report's path relative to the store, "" when there is none
    results_mtime: float


# --- what a run's files say ---------------------------------------------------------


def anomaly_kind(checker: dict[str, Any] | None) -> str:
    """The kind of the first anomaly: the checker's ``kind`` (G-single, G1c, ... or
    the kv checker's), else ``non-linearizable``; "" without an anomaly."""
    kinds = anomaly_kinds(checker)
    return kinds[0] if kinds else ""


def anomaly_kinds(checker: dict[str, Any] | None) -> list[str]:
    """The kind of every anomaly, in order (see ``anomaly_kind``): a run can show a
    history anomaly and a finding (replicas-diverged, refused-after-crash) at once."""
    kinds = []
    for a in (checker or {}).get("anomalies") or []:
        a = a if isinstance(a, dict) else {}
        kinds.append(str(a.get("kind") or a.get("type") or "non-linearizable"))
    return kinds


def story_shape(results: dict[str, Any]) -> str:
    """The shape of a shrunk fault story: its fault kinds in order (``kill > partition``),
    "" when the run was not shrunk."""
    shrunk = results.get("shrunk") or {}
    faults = shrunk.get("faults") if isinstance(shrunk, dict) else None
    if not faults:
        return ""
    kinds = []
    for f in faults:
        kind = f.get("f") if isinstance(f, dict) else f
        if isinstance(f, dict) and isinstance(f.get("value"), dict) and f["value"].get("shape"):
            kind = f"{kind}({f['value']['shape']})"
        kinds.append(str(kind))
    return " > ".join(kinds)


def signature_of(verdict: str, model: str, anomaly: str, bugs: str, story: str) -> str:
    """What a failure is, for grouping: "" for a valid run."""
    if verdict == "valid":
        return ""
    if verdict != "invalid":
        what = model or "no results.json (crashed or still running)"
        return f"{verdict} | {what} | bugs: {bugs or 'none'}"
    parts = [model or "-", anomaly or "-", f"bugs: {bugs or 'none'}"]
    if story:
        parts.append(f"story: {story}")
    return " | ".join(parts)


def row_of(path: str, results: dict[str, Any], config: dict[str, Any], *,
           report: str = "", mtime: float = 0.0,
           started_fallback: dt.datetime | None = None) -> Row:
    """The ledger row of one run, from its results.json and config.json."""
    checker = results.get("checker") if isinstance(results.get("checker"), dict) else None
    verdict = str(results.get("verdict") or "unknown")
    bugs = ",".join(sorted(
        b.get("name", "") if isinstance(b, dict) else str(b)
        for b in (results.get("bugs") or config.get("bugs") or [])))
    model = str((checker or {}).get("model") or config.get("workload") or "")
    anomaly = anomaly_kind(checker)
    shrunk = results.get("shrunk") if isinstance(results.get("shrunk"), dict) else {}
    if shrunk.get("kind") in anomaly_kinds(checker):
        # A shrunk run fails the way its original did, which need not be its first anomaly
        # (a smaller forget-vote story can show a stale read before the divergence).
        anomaly = str(shrunk["kind"])
    story = story_shape(results)
    started = started_time(results) or started_fallback
    sim = results.get("sim") if isinstance(results.get("sim"), dict) else {}
    return Row(
        path=path,
        name=str(results.get("name") or config.get("name") or ""),
        system=str(results.get("system") or config.get("system") or ""),
        seed=results.get("seed") if isinstance(results.get("seed"), int) else config.get("seed"),
        verdict=verdict,
        exit_code=results.get("exit_code") if isinstance(results.get("exit_code"), int) else None,
        started=(started.astimezone(dt.UTC).isoformat(timespec="seconds") if started
                 else dt.datetime.fromtimestamp(mtime or time.time(), dt.UTC)
                 .isoformat(timespec="seconds")),
        duration_s=_number(results.get("duration_s")),
        wall_s=_number(sim.get("wall_s")) if sim else None,
        simulated=bool(results.get("simulated") or config.get("sim")),
        nemesis=str(results.get("nemesis") or config.get("nemesis") or "default"),
        bugs=bugs,
        model=model,
        anomaly=anomaly,
        story=story,
        signature=signature_of(verdict, model, anomaly, bugs, story),
        config=json.dumps(config, sort_keys=True),
        report=report,
        results_mtime=mtime,
    )


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# --- the database ---------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
    con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    # Switching to WAL may answer "locked" at once, without the busy handler, while
    # another process holds the file: retry it (it is persistent once set).
    deadline = time.monotonic() + BUSY_MS / 1000
    while True:
        try:
            con.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
    con.execute("PRAGMA synchronous = NORMAL")
    return con


def _create(con: sqlite3.Connection) -> None:
    cols = ", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'path' else ''}".strip() for c in _COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
    con.execute("CREATE INDEX IF NOT EXISTS runs_signature ON runs (signature, started)")
    con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(_SCHEMA),))


def _healthy(path: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_MS / 1000)
        try:
            ok = con.execute("PRAGMA quick_check").fetchone()
            con.execute("SELECT count(*) FROM runs").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False
    return bool(ok) and ok[0] == "ok"


@contextlib.contextmanager
def _write(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class Ledger:
    """An open ledger of one store; use ``open_ledger``."""

    def __init__(self, store: Path, con: sqlite3.Connection) -> None:
        self.store = store
        self.con = con

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing

    def put(self, rows: Iterable[Row]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        marks = ", ".join("?" for _ in _COLUMNS)
        with _write(self.con) as con:
            con.executemany(f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) "
                            f"VALUES ({marks})",
                            [tuple(getattr(r, c) for c in _COLUMNS) for r in rows])
        return len(rows)

    def sync(self) -> int:
        """Add or refresh the row of every run folder whose results.json changed (a
        run without results.json is a crashed or running one: listed as unknown).
        Returns how many rows were written."""
        known = dict(self.con.execute("SELECT path, results_mtime FROM runs").fetchall())
        gone = [rel for rel in (p.relative_to(self.store).as_posix()
                                for p in superseded_runs(self.store)) if rel in known]
        if gone:
            self.forget(gone)
        rows = []
        for run in ledger_runs(self.store):
            rel = run.relative_to(self.store).as_posix()
            mtime = _mtime(run / RESULTS)
            if rel in known and known[rel] == mtime:
                continue
            rows.append(folder_row(self.store, run, mtime))
        return self.put(rows)

    def forget(self, paths: Iterable[str]) -> None:
        """Drop the rows of these run paths (relative to the store)."""
        with _write(self.con) as con:
            con.executemany("DELETE FROM runs WHERE path = ?", [(p,) for p in paths])

    # --- reading

    def rows(self, since: str | None = None) -> list[Row]:
        sql, args = "SELECT * FROM runs", ()
        if since:
            sql, args = sql + " WHERE started >= ?", (since,)
        return [Row(*r) for r in self.con.execute(sql + " ORDER BY started, path", args)]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def folder_row(store: Path, run: Path, mtime: float | None = None) -> Row:
    """The row of a run folder (unknown when its results.json is missing or unreadable)."""
    try:
        results = read_results(run)
    except SchemaError:
        results = {}
    report = (run / REPORT).relative_to(store).as_posix() if (run / REPORT).exists() else ""
    started = stamp_time(run.name) or dt.datetime.fromtimestamp(
        _mtime(run / HISTORY) or _mtime(run / RESULTS), dt.UTC)
    return row_of(run.relative_to(store).as_posix(), results, read_config(run), report=report,
                  mtime=_mtime(run / RESULTS) if mtime is None else mtime,
                  started_fallback=started)


def open_ledger(store: Path | str) -> Ledger:
    """The store's ledger, created, or rebuilt when damaged, and synced with the run
    folders. LedgerError (one line) when the store cannot hold one."""
    store = Path(store)
    path = store / LEDGER
    try:
        store.mkdir(parents=True, exist_ok=True)
        if path.exists() and not _healthy(path):
            os.replace(path, path.with_name(LEDGER + ".damaged"))
            for side in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path.with_name(LEDGER + side))
        con = _connect(path)
        with _write(con):
            _create(con)
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"cannot open the ledger {path}: {exc}") from None
    ledger = Ledger(store, con)
    try:
        ledger.sync()
    except sqlite3.Error as exc:
        ledger.close()
        raise LedgerError(f"cannot update the ledger {path}: {exc}") from None
    return ledger


def record(store: Path | str, run_dir: Path | str) -> None:
    """Record one finished run folder of ``store`` at once (a sweep records each
    seed as it ends). LedgerError (one line) says why it could not."""
    root, run = Path(store).resolve(), Path(run_dir).resolve()
    if not run.is_relative_to(root):
        raise LedgerError(f"{run_dir} is not a run folder of the store {store}")
    if (run / SUPERSEDED).exists():
        return
    row = folder_row(root, run)
    try:
        con = _connect(root / LEDGER)
        try:
            with _write(con):
                _create(con)
            Ledger(root, con).put([row])
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot write the ledger {root / LEDGER}: {exc}") from None


def ledger_runs(store: Path) -> list[Path]:
    """The run folders (reports.runfolder.find_runs) and the folders at the same
    depths that keep only results.json (a sweep's passing seeds), without the
    superseded ones."""
    runs = set(find_runs(store)) | set(_results_folders(store))
    return sorted(r for r in runs if not (r / SUPERSEDED).exists())


def superseded_runs(store: Path) -> list[Path]:
    """The folders at run depths marked superseded (``mark_superseded``)."""
    return sorted(r for r in set(find_runs(store)) | set(_results_folders(store))
                  if (r / SUPERSEDED).exists())


def _results_folders(store: Path) -> Iterator[Path]:
    if not store.is_dir():
        return
    for first in store.iterdir():
        if first.is_symlink() or not first.is_dir():
            continue
        for d in (first, *(s for s in first.iterdir() if s.is_dir() and not s.is_symlink())):
            if (d / RESULTS).exists():
                yield d


def mark_superseded(store: Path | str, run_dir: Path | str, counted: Path | str,
                    why: str) -> None:
    """Mark ``run_dir`` as not a run of its own: ``counted`` (the folder the sweep counted
    for the same seed) stands for it. The folder is kept; the ledger drops its row
    now and skips it on every rebuild. LedgerError (one line) when it cannot."""
    root, run = Path(store).resolve(), Path(run_dir).resolve()
    marker = {"counted": os.path.relpath(Path(counted).resolve(), run), "why": why}
    tmp = run / f".{SUPERSEDED}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, run / SUPERSEDED)
    except OSError as exc:
        raise LedgerError(f"cannot mark {run} superseded: {exc.strerror or exc}") from None
    if (root / LEDGER).exists() and run.is_relative_to(root):
        try:
            con = _connect(root / LEDGER)
            try:
                Ledger(root, con).forget([run.relative_to(root).as_posix()])
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write the ledger {root / LEDGER}: {exc}") from None


# --- summaries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One failure signature over the ledger."""

    signature: str
    count: int
    first_seen: str
    last_seen: str
    newest: str  # the newest such run's path (relative to the store)
    newest_report: str  # its report, "" when none


@dataclass(frozen=True)
class Flake:
    """One run name (a test or a --name) over the ledger."""

    name: str
    runs: int
    failed: int

    @property
    def rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0


def failures(rows: Iterable[Row]) -> list[Failure]:
    """Failures grouped by signature, the most frequent first."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.signature:
            groups.setdefault(r.signature, []).append(r)
    out = []
    for sig, rs in groups.items():
        rs.sort(key=lambda r: (r.started, r.path))
        out.append(Failure(sig, len(rs), rs[0].started, rs[-1].started, rs[-1].path,
                           rs[-1].report))
    out.sort(key=lambda f: (-f.count, f.signature))
    return out


def flakes(rows: Iterable[Row]) -> list[Flake]:
    """Per run name: runs and failures (not valid), by name."""
    tally: dict[str, list[int]] = {}
    for r in rows:
        t = tally.setdefault(r.name or "-", [0, 0])
        t[0] += 1
        t[1] += r.verdict != "valid"
    return [Flake(n, t[0], t[1]) for n, t in sorted(tally.items())]


def render_text(rows: list[Row]) -> str:
    """What `harness ledger` prints."""
    lines = [f"{len(rows)} runs, {sum(r.verdict != 'valid' for r in rows)} not valid"]
    fails = failures(rows)
    lines.append("")
    lines.append("failures by signature:" if fails else "failures by signature: none")
    for f in fails:
        lines.append(f"  {f.count:>5}x  {f.signature}")
        lines.append(f"         first seen {f.first_seen}, last seen {f.last_seen}")
        lines.append(f"         newest: {f.newest_report or f.newest}")
    lines.append("")
    lines.append(f"{'name':<28} {'runs':>6} {'failed':>7} {'flake rate':>11}")
    for fl in flakes(rows):
        lines.append(f"{fl.name:<28} {fl.runs:>6} {fl.failed:>7} {fl.rate:>10.1%}")
    return "\n".join(lines)


def render_html(rows: list[Row]) -> str:
    """The same two tables as an HTML fragment, for the store index."""
    from reports.svg import esc

    out = ["<section class='ledger'><h2>Failures by signature</h2>"]
    fails = failures(rows)
    if not fails:
        out.append("<p>No failures in the ledger.</p>")
    else:
        out.append("<table><tr><th>count</th><th>signature</th><th>first seen</th>"
                   "<th>last seen</th><th>newest</th></tr>")
        for f in fails:
            target = f.newest_report or f.newest
            out.append(f"<tr><td>{f.count}</td><td>{esc(f.signature)}</td>"
                       f"<td>{esc(f.first_seen)}</td><td>{esc(f.last_seen)}</td>"
                       f"<td><a href='{esc(target)}'>{esc(f.newest)}</a></td></tr>")
        out.append("</table>")
    out.append("<h2>Flake rate by name</h2><table><tr><th>name</th><th>runs</th>"
               "<th>failed</th><th>flake rate</th></tr>")
    for fl in flakes(rows):
        out.append(f"<tr><td>{esc(fl.name)}</td><td>{fl.runs}</td><td>{fl.failed}</td>"
                   f"<td>{fl.rate:.1%}</td></tr>")
    out.append("</table></section>")
    return "".join(out)
