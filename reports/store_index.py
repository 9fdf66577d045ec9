"""store/index.html: every run in the store, newest first.

Owns: the table that lists a store's runs (name, time, system, faults,
verdict, ops/s) with links to each report. Which folders are runs, and what
their files hold, is reports.runfolder's (docs/run-folder.md).

Invariants: symlinks (store/latest) are not listed twice; a run folder
without results.json (a run that crashed) is still listed, as "unknown", and
so is one whose results.json is newer than this harness reads (with that
said); the page is self-contained like the run reports and written atomically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reports.runfolder import (
    HISTORY,
    REPORT,
    STORE_INDEX,
    SchemaError,
    find_runs,
    read_config,
    read_results,
    stamp_time,
    started_time,
    write_atomic,
)
from reports.style import CSS, JS
from reports.svg import esc


def _started(run: Path, results: dict) -> datetime:
    """When the run started: results.json says, else its folder's name (local time), else
    when its history was last written."""
    return (started_time(results) or stamp_time(run.name)
            or datetime.fromtimestamp((run / HISTORY).stat().st_mtime, tz=UTC))


def _ledger_html(store: Path) -> str:
    """The ledger's failures and flakes (reports/ledger.py) under the table; "" without one."""
    try:
        from reports import ledger
    except ImportError:
        return ""
    try:
        with ledger.open_ledger(store) as led:
            return ledger.render_html(led.rows())
    except (ledger.LedgerError, OSError):
        return ""


def write_store_index(store: Path) -> Path:
    """Draws store/index.html listing every run newest first; returns its path."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in find_runs(store):
        try:
            res, unread = read_results(run), ""
        except SchemaError as exc:
            res, unread = {}, f"results.json schema {exc.version} is newer than this harness reads"
        cfg = read_config(run)
        rows.append((_started(run, res), run, res, cfg, unread))
    rows.sort(key=lambda r: r[0], reverse=True)
    tally = {"valid": 0, "invalid": 0, "unknown": 0}
    body = []
    for started, run, res, cfg, unread in rows:
        verdict = res.get("verdict") if res.get("verdict") in tally else "unknown"
        tally[verdict] += 1
        rel = run.relative_to(store).as_posix()
        name = (
            res.get("name") or cfg.get("name") or run.parent.name
            if run.parent != store
            else run.name
        )
        report = f"{rel}/{REPORT}" if (run / REPORT).exists() else f"{rel}/"
        ops = res.get("ops_per_s")
        anomaly = ""
        anomalies = (
            (res.get("checker") or {}).get("anomalies")
            if isinstance(res.get("checker"), dict)
            else None
        )
        if anomalies and isinstance(anomalies[0], dict):
            anomaly = str(anomalies[0].get("sentence") or "")
        elif unread:
            anomaly = unread
        elif not res:
            anomaly = "no results.json: still running, or it crashed"
        body.append(
            f'<tr><td><a href="{esc(report)}">{esc(name)}</a><div class="muted">{esc(rel)}</div></td>'
            f"<td>{esc(started.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
            f"<td>{esc(res.get('system') or cfg.get('system') or '?')}"
            f"{' (simulated)' if res.get('simulated') is True else ''}</td>"
            f"<td>{esc(res.get('nemesis') or cfg.get('nemesis') or '–')}</td>"
            f'<td><span class="verdict {verdict}">{esc(verdict)}</span>'
            f'<div class="muted">{esc(anomaly[:120])}</div></td>'
            f'<td class="num">{esc("–" if ops is None else ops)}</td></tr>'
        )
    summary = (
        f"{len(rows)} runs: {tally['valid']} valid, {tally['invalid']} with an anomaly, "
        f"{tally['unknown']} unknown."
    )
    table = (
        '<div class="card"><table class="runs"><tr><th>run</th><th>time (UTC)</th><th>system</th>'
        '<th>faults</th><th>verdict</th><th class="num">ops/s</th></tr>'
        + "".join(body)
        + "</table></div>"
        if rows
        else '<p class="muted">No runs yet: start one with <code>harness run</code>.</p>'
    )
    html = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>consensus-harness runs</title>'
        f"<style>{CSS}td{{white-space:normal}}</style></head><body><main><h1>Runs</h1>"
        f'<p class="muted">{esc(store.resolve())} — {summary} Newest first.</p>{table}'
        f"{_ledger_html(store)}"
        f'</main><div id="tip"></div><script>{JS}</script></body></html>'
    )
    out = store / STORE_INDEX
    write_atomic(out, html)
    return out
