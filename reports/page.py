"""Assembles RUN/index.html: one self-contained page that says at a glance whether
the run passed, what went wrong, which faults were active and how available the
cluster stayed.

Owns: `write_report(run_dir)` and the page's section order: verdict banner
with the anomaly sentence and the command that repeats the run; the violation
(if any); operation timeline; latency and throughput; cluster state with CPU
and memory; availability per fault; links to the raw files.

Invariants: the page references no network resource (inline CSS, JS and SVG
only; links go to files of the run folder by relative path); it is written
atomically (temp file, then rename) so a browser never sees half a page. It
draws what the run folder says (docs/run-folder.md): verdict, anomalies,
latency, availability and the bugs' mistakes come from results.json; only a
folder without them is checked (standalone checker) or measured here.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

from checker.history import HistoryError, Op, pair
from reports import charts, cluster, witness
from reports.analysis import (
    AVAILABILITY_FIELDS,
    WRITE_FS,
    FaultWindow,
    availability_of,
    counts,
    fault_windows,
    history_span,
    latency_percentiles_ms,
)
from reports.runfolder import RAW_FILES, Run, get, load_run, log_path, write_atomic
from reports.style import CSS, JS
from reports.svg import band_class, esc, fmt_ms, fmt_time, legend


def verdict_of(run: Run, checker: dict) -> str:
    v = run.results.get("verdict")
    if v in ("valid", "invalid", "unknown"):
        return v
    valid = checker.get("valid")
    return "valid" if valid is True else ("invalid" if valid is False else "unknown")


def checker_result(run: Run) -> tuple[dict, str]:
    """The checker's result from results.json; for a folder without one (a recorded
    history, a crashed run) the standalone checker checks it now."""
    checker = run.results.get("checker")
    if isinstance(checker, dict):
        return checker, ""
    if run.results:  # the run decided without a checker result (it crashed or gave up): say so
        return {}, "results.json holds no checker result."
    from checker import check_events

    try:  # the run's workload's model, as the runner checks (kv unless config.json says)
        if get(run.config, "workload") == "list-append":
            result = check_events(run.events, model="list-append", time_limit=60,
                                  consistency=get(run.config, "consistency") or None)
        else:
            result = check_events(run.events, model="kv", time_limit=60)
    except Exception as exc:  # noqa: BLE001 - the page must still be drawn; say why
        return {}, f"Checking the history for this report failed: {exc}"
    return (
        result.to_dict(),
        "Checked while drawing this report (results.json had no checker result).",
    )


def availability_rows(
    run: Run, ops: list[Op], windows: list[FaultWindow], horizon: int
) -> list[dict]:
    """Availability per fault window as results.json has it (the runner computed it with
    analysis.availability_of); computed here only for a folder that lacks it."""
    rows = run.results.get("availability")
    if (isinstance(rows, list) and (rows or not windows)
            and all(isinstance(r, dict) and r.keys() >= set(AVAILABILITY_FIELDS) for r in rows)):
        return rows
    return availability_of(ops, windows, horizon)


def write_report(run_dir: Path) -> Path:
    """Draws RUN/index.html from the run folder's files; returns its path."""
    run = load_run(Path(run_dir))
    out = run.folder.report
    write_atomic(out, render(run))
    return out


def render(run: Run) -> str:
    began = time.perf_counter()
    events = run.events
    try:
        ops = pair(events, str(run.folder.history))
        pair_note = ""
    except HistoryError as exc:  # a damaged history still gets a page that says so
        ops, pair_note = [], f"No operations are drawn: {exc}."
    windows = fault_windows(events)
    times = [int(e.get("time") or 0) for e in events] + [
        int(m.get("time") or 0) for m in run.metrics
    ]
    t0 = min(0, min(times, default=0))
    t1 = max(times, default=1)
    t1 = max(t1, t0 + 1)
    horizon = history_span(events)[1]
    checker, checker_note = checker_result(run)
    verdict = verdict_of(run, checker)
    ws = witness.witnesses(checker, ops)
    witness_ids = {o.id for w in ws for o in w.ops + w.stuck}
    rows = availability_rows(run, ops, windows, horizon)
    nodes = run.node_ids
    concurrency = get(run.config, "concurrency")  # results.json has no such field
    concurrency = concurrency if isinstance(concurrency, int) and concurrency > 0 else None
    title = run.results.get("name") or get(run.config, "name") or run.path.name
    note = " ".join(n for n in (pair_note, checker_note) if n)

    parts: list[str] = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(verdict.upper())} · {esc(title)}</title><style>{CSS}</style></head><body><main>",
        header(run, title, verdict, ops, ws, checker, note, in_short(ops, windows, rows, horizon)),
    ]
    if ws:
        parts.append('<h2 id="violation">What went wrong</h2>')
        for i, w in enumerate(ws):
            parts.append(
                witness.section(
                    w, i, ops, windows, run.metrics, run.logs, run.results, run.net, nodes, t1
                )
            )
    elif verdict == "invalid":
        parts.append(
            '<h2 id="violation">What went wrong</h2><p>The checker found no valid order for the '
            "history but named no operations; see results.json.</p>"
        )
    parts.append(section_workload(checker, run))
    mark = ws[0].moment if ws else None
    parts.append(section_timeline(ops, windows, t0, t1, concurrency, witness_ids, mark))
    parts.append(section_perf(ops, windows, t0, t1, witness_ids, mark))
    parts.append(section_cluster(run, windows, t0, t1, nodes, mark))
    parts.append(section_availability(ops, windows, rows, horizon))
    parts.append(section_files(run))
    parts.append(
        f'<p class="muted small">Drawn by consensus-harness in {time.perf_counter() - began:.2f} s '
        f"from {len(events)} history events. Hover over any shape for details.</p>"
    )
    parts.append(f'</main><div id="tip"></div><script>{JS}</script></body></html>')
    return "".join(parts)


def section_workload(checker: object, run: Run) -> str:
    """A workload's own verdict section, when its checker names a renderer
    (``checker.section.renderer = "module:attr"``, called as ``fn(section, run)``
    and returning escaped HTML): e.g. the Maelstrom workloads'. A renderer
    that fails costs its section, not the page."""
    sec = checker.get("section") if isinstance(checker, dict) else None
    if not (isinstance(sec, dict) and isinstance(sec.get("renderer"), str)):
        return ""
    mod, _, attr = sec["renderer"].partition(":")
    try:
        return str(getattr(importlib.import_module(mod), attr)(sec, run))
    except Exception as exc:  # noqa: BLE001 - a section must not cost the page
        return f'<p class="muted">The workload section failed: {esc(repr(exc))}</p>'


def header(
    run: Run,
    title: str,
    verdict: str,
    ops: list[Op],
    ws: list,
    checker: dict,
    note: str,
    short: str = "",
) -> str:
    r = run.results
    c = r.get("counts") if isinstance(r.get("counts"), dict) else counts(ops)
    lat = (
        r.get("latency_ms")
        if isinstance(r.get("latency_ms"), dict)
        else latency_percentiles_ms(ops)
    )
    if verdict == "invalid":
        big, why = (
            ws[0].finding.upper() if ws and witness.is_finding(ws[0]) else "NOT LINEARIZABLE",
            (ws[0].sentence if ws else "The history has no valid linearization."),
        )
    elif verdict == "valid":
        secs = checker.get("seconds")
        big = "LINEARIZABLE"
        why = (
            f"All {c.get('invoke', len(ops))} operations fit one order consistent with a single copy "
            f"of the data"
            + (f" (checked in {secs:.2f} s)." if isinstance(secs, (int, float)) else ".")
        )
    else:
        big = "UNKNOWN"
        why = (
            checker.get("reason")
            or note
            or "The checker could not decide within its time limit, or the run did not finish."
        )
    more = f' <a href="#violation">{len(ws)} anomalies below</a>' if len(ws) > 1 else ""
    started = r.get("started") or get(run.config, "started") or ""
    dur = r.get("duration_s")
    meta = [
        ("system", r.get("system") or get(run.config, "system") or "?"),
        ("nodes", r.get("nodes") or len(run.node_ids) or "?"),
        ("faults", r.get("nemesis") or get(run.config, "nemesis") or "none"),
        ("started", str(started).replace("T", " ")[:19]),
        ("duration", f"{dur:.1f} s" if isinstance(dur, (int, float)) else "?"),
        ("operations", f"{c.get('invoke', len(ops))}"),
        ("ok / fail / info", f"{c.get('ok', 0)} / {c.get('fail', 0)} / {c.get('info', 0)}"),
        ("ops/s", r.get("ops_per_s", "?")),
        ("latency p50 / p99", f"{fmt_ms(lat.get('p50'))} / {fmt_ms(lat.get('p99'))}"),
        ("seed", r.get("seed", get(run.config, "seed", default="?"))),
        (
            "checker",
            f"{checker.get('model', '?')}, {checker.get('seconds', 0) or 0:.2f} s"
            if checker
            else "–",
        ),
    ]
    command = r.get("command") or get(run.config, "command") or ""
    cmd = (
        f'<div class="cmd"><pre id="cmd">{esc(command)}</pre><button id="copy-cmd" type="button">copy'
        f"</button></div>"
        if command
        else '<p class="muted">No command recorded for this run.</p>'
    )
    run_notes = (
        [str(x) for x in r.get("notes") or [] if x] if isinstance(r.get("notes"), list) else []
    )
    bugs = bugs_of(run)
    if bugs:
        meta.insert(3, ("known bugs on", ", ".join(name for name, _ in bugs)))
        run_notes = [_bug_note(name, mistake) for name, mistake in bugs] + run_notes
    notes = "".join(f'<p class="muted">{esc(x)}</p>' for x in ([note] if note else []) + run_notes)
    # A fault whose evidence says it did nothing makes a green run a lie: say so loudly.
    ineffective = [x for x in r.get("ineffective_faults") or [] if isinstance(x, dict)]
    notes += "".join(
        f'<p class="ineffective" style="color:#b00020;font-weight:600">&#9888; ineffective fault: '
        f'{esc(x.get("kind", "?"))} {esc(json.dumps(x.get("value")))} at '
        f'{esc(x.get("at", "?"))} s had no effect ({esc(x.get("why", ""))})</p>'
        for x in ineffective)
    replay = r.get("replay")
    if isinstance(replay, dict):
        meta.append(("replay of", f"{replay.get('run')} ({replay.get('ops')} fault operations)"))
    shrunk = r.get("shrunk")
    if isinstance(shrunk, dict):
        meta.append(("shrunk from", (f"{shrunk.get('from')} ({shrunk.get('client_ops')} client "
                                    f"operations, {len(shrunk.get('faults') or [])} faults)")))
        notes += "".join(f'<p class="muted">shrink step: {esc(str(step))}</p>'
                         for step in shrunk.get("steps") or [])
    simulated = ""
    if r.get("simulated") is True:
        # A simulated run (harness/simrun.py): its times are simulated, its wall time apart.
        wall = r.get("wall_s")
        total = r.get("simulated_s")
        at = next(i for i, (k, _) in enumerate(meta) if k == "duration")
        meta[at] = ("duration", f"{meta[at][1]} simulated")
        meta.insert(at + 1, ("wall time", f"{wall:.2f} s" if isinstance(wall, (int, float)) else "?"))
        simulated = (
            '<p class="simulated"><b>Simulated run.</b> The nodes ran in one process on a '
            "simulated network, disks and clocks (docs/simulation.md); times are simulated: "
            + (f"{total:.1f} s simulated in " if isinstance(total, (int, float)) else "")
            + (f"{wall:.2f} s of wall time." if isinstance(wall, (int, float)) else "an unknown wall time.")
            + "</p>")
        sim_only = [str(x) for x in r.get("sim_only_faults") or []]
        if sim_only:
            simulated += (f'<p class="ineffective" style="color:#b00020">Sim-only faults (no real '
                          f'network can produce them): {esc(", ".join(sim_only))}</p>')
    return (
        f'<h1>{esc(title)}{" <small>(simulated)</small>" if simulated else ""}</h1>'
        f'<div class="muted">{esc(run.path)}</div>{simulated}'
        f'<div class="banner {verdict}"><div class="big">{big}</div><div class="why">{esc(why)}{more}</div></div>'
        f'{short}{notes}<div class="meta">{"".join(f"<div><b>{esc(k)}</b>{esc(v)}</div>" for k, v in meta)}</div>'
        f"<h4>Repeat this run</h4>{cmd}"
    )


def in_short(ops: list[Op], windows: list[FaultWindow], rows: list[dict], t1: int) -> str:
    """One paragraph: the faults, how available the cluster stayed, how fast it recovered."""
    if not windows:
        return f'<p class="short">No faults were injected; {_share(counts(ops))} of operations succeeded.</p>'
    kinds = sorted({w.kind for w in windows})
    inside = [op for op in ops if any(w.start <= op.start < w.end_or(t1) for w in windows)]
    outside = [op for op in ops if not any(w.start <= op.start < w.end_or(t1) for w in windows)]
    worst = min(
        (a for a in rows if a["ok_share"] is not None), key=lambda a: a["ok_share"], default=None
    )
    # A heal after the last write was tried (the run's final heal) proves nothing either way.
    last_write = max((op.start for op in ops if op.f in WRITE_FS), default=-1)
    heals = [
        a["to_ack_after_heal_ms"]
        for a in rows
        if a["end_ns"] is not None and a["end_ns"] < last_write
    ]
    text = (
        f"{len(windows)} fault windows ({', '.join(kinds)}). While a fault was active "
        f"{_share(counts(inside))} of {len(inside)} operations succeeded, against "
        f"{_share(counts(outside))} outside faults"
    )
    if worst is not None:
        text += (
            f"; the hardest was {worst['kind']} {worst['target']} at {fmt_time(worst['start_ns'])} "
            f"({worst['ok_share'] * 100:.0f}% succeeded)"
        )
    if heals and all(h is not None for h in heals):
        text += f". After every heal a write was acknowledged within {fmt_ms(max(heals))}."
    elif heals:
        missing = sum(1 for h in heals if h is None)
        text += f". After {missing} of {len(heals)} heals no write was acknowledged again."
    else:
        text += "."
    return f'<p class="short">{esc(text)}</p>'


def fault_legend(windows: list[FaultWindow]) -> list[tuple[str, str]]:
    kinds = sorted({w.kind for w in windows})
    return [(band_class(k).split()[1], f"{k} fault") for k in kinds]


def section_timeline(
    ops: list[Op],
    windows: list[FaultWindow],
    t0: int,
    t1: int,
    concurrency: int | None,
    witness_ids: set[int],
    mark: int | None,
) -> str:
    items = [
        ("ok", "ok"),
        ("fail", "fail (certainly no effect)"),
        ("info", "info (outcome unknown)"),
    ]
    if witness_ids:
        items.append(("witness", "operation of the anomaly"))
    aggregated = len(ops) > charts.DETAIL_LIMIT
    note = (
        f'<p class="muted">{len(ops)} operations: ok operations are aggregated into time bins per worker; '
        f"info operations{' and the anomaly' if witness_ids else ''} are drawn one by one on top.</p>"
        if aggregated
        else ""
    )
    return (
        f'<h2>Timeline</h2><p class="muted">Each bar is an operation, from invoke to completion, on the '
        f"lane of the client worker that issued it; bands are fault windows.</p>"
        f"{legend(items + fault_legend(windows))}{note}"
        f'<div class="card">{charts.timeline(ops, windows, t0, t1, concurrency=concurrency, witness=witness_ids, mark=mark)}</div>'
    )


def section_perf(
    ops: list[Op],
    windows: list[FaultWindow],
    t0: int,
    t1: int,
    witness_ids: set[int],
    mark: int | None,
) -> str:
    items = [("ok", "ok"), ("fail", "fail"), ("info", "info")] + fault_legend(windows)
    return (
        f"<h2>Latency and throughput</h2>{legend(items)}"
        f'<div class="card">{charts.latency(ops, windows, t0, t1, witness_ids, mark)}</div>'
        f'<div class="card">{charts.throughput_chart(ops, windows, t0, t1, mark)}</div>'
    )


def section_cluster(
    run: Run, windows: list[FaultWindow], t0: int, t1: int, nodes: list[str], mark: int | None
) -> str:
    if not run.metrics:
        return '<h2>Cluster state</h2><p class="muted">No metrics.jsonl in this run folder.</p>'
    roles = [(f"role-{s}", s) for s in ("leader", "follower", "candidate", "paused", "down")]
    node_keys = [(cluster.colour_of(nd, nodes), nd) for nd in nodes]
    return (
        f'<h2>Cluster state</h2><p class="muted">Each node\'s role and term as it reported them '
        f"(t3 = term 3); the top lane names the leader"
        f"{'. Dashed red line: the violation' if mark is not None else ''}.</p>"
        f"{legend(roles + fault_legend(windows))}{legend([(c, f'{nd} leads') for c, nd in node_keys])}"
        f'<div class="card">{cluster.state_chart(run.metrics, windows, t0, t1, nodes, mark)}</div>'
        f"<h4>CPU and memory per node</h4>{legend(node_keys)}"
        f'<div class="card cols">{cluster.resource_chart(run.metrics, windows, t0, t1, nodes, "cpu")}'
        f"{cluster.resource_chart(run.metrics, windows, t0, t1, nodes, 'rss')}</div>"
    )


def section_availability(
    ops: list[Op], windows: list[FaultWindow], rows: list[dict], t1: int
) -> str:
    if not rows:
        return (
            '<h2>Availability</h2><p class="muted">No faults were injected: '
            f"{_share(counts(ops))} of all operations succeeded.</p>"
        )
    body = []
    for a in rows:
        share = a["ok_share"]
        bar = (
            "–"
            if share is None
            else f'<span class="bar"><i style="width:{share * 100:.0f}%"></i></span>{share * 100:.1f}%'
        )
        end = "never healed" if a["end_ns"] is None else fmt_time(a["end_ns"])
        body.append(
            f'<tr><td><i class="sw {band_class(a["kind"])}"></i>{esc(a["kind"])}</td><td class="wrap">{esc(a["target"])}</td>'
            f'<td class="num">{fmt_time(a["start_ns"])}</td><td class="num">{esc(end)}</td>'
            f'<td class="num">{fmt_ms(a["duration_ms"])}</td><td class="num">{a["ops"]}</td><td>{bar}</td>'
            f'<td class="num">{fmt_ms(a["to_ack_after_start_ms"])}</td>'
            f'<td class="num">{fmt_ms(a["to_ack_after_heal_ms"])}</td></tr>'
        )
    outside = [op for op in ops if not any(w.start <= op.start < w.end_or(t1) for w in windows)]
    return (
        '<h2>Availability per fault</h2><p class="muted">For each fault window: the operations invoked '
        "while it was active and the share that succeeded, and how long until the next acknowledged write "
        f"after the fault began and after it was healed. Outside any fault, {_share(counts(outside))} "
        f"of {len(outside)} operations succeeded.</p>"
        '<div class="card"><table><tr><th>fault</th><th>target</th><th class="num">from</th>'
        '<th class="num">to</th><th class="num">lasted</th><th class="num">ops</th><th>succeeded</th>'
        '<th class="num">to next write ack</th><th class="num">after heal</th></tr>'
        f"{''.join(body)}</table></div>"
    )


def _share(c: dict[str, int]) -> str:
    return "–" if not c["invoke"] else f"{c['ok'] / c['invoke'] * 100:.1f}%"


def section_files(run: Run) -> str:
    links = [f'<a href="{f}">{f}</a>' for f in RAW_FILES if (run.path / f).exists()]
    links += [f'<a href="{esc(log_path(nd))}">{esc(log_path(nd))}</a>' for nd in sorted(run.logs)]
    return f'<h2>Files</h2><p class="links">{" ".join(links)}</p>'


def bugs_of(run: Run) -> list[tuple[str, str | None]]:
    """(name, mistake) of each known bug the nodes ran with: results.json says both;
    a run without results.json has only the names in config.json."""
    listed = run.results.get("bugs")
    if isinstance(listed, list) and listed:
        return [(str(b.get("name")), b.get("mistake") if isinstance(b.get("mistake"), str) else None)
                for b in listed if isinstance(b, dict)]
    names = get(run.config, "bugs") or []
    return [(str(b), None) for b in names] if isinstance(names, list) else []


def _bug_note(name: str, mistake: str | None) -> str:
    """One line on a known bug the nodes ran with, for the reader."""
    if not mistake:
        return f"The nodes ran with the known bug {name}."
    return f"The nodes ran with the known bug {name}: {mistake}."
