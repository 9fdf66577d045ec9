"""A list-append run's report: the anomaly's name, its sentence, and the cycle
drawn as a ring of transactions with one labelled arrow per dependency."""

from __future__ import annotations

import json
from pathlib import Path

from checker import check_events
from reports import write_report
from reports.runfolder import write_json, write_results

MS = 1_000_000


def g_single_events() -> list[dict]:
    """T0 appends 1 to x and 5 to y; T1, overlapping it, sees y's 5 but not x's 1."""
    rows = [
        (0, "invoke", [["append", "x", 1], ["append", "y", 5]]),
        (1, "invoke", [["r", "x", None], ["r", "y", None]]),
        (0, "ok", [["append", "x", 1], ["append", "y", 5]]),
        (1, "ok", [["r", "x", []], ["r", "y", [5]]]),
        (2, "invoke", [["r", "x", None]]),
        (2, "ok", [["r", "x", [1]]]),
    ]
    return [{"index": i, "time": (i + 1) * 10 * MS, "process": p, "type": t, "f": "txn",
             "key": None, "value": v} for i, (p, t, v) in enumerate(rows)]


def test_a_g_single_report_names_explains_and_draws_the_cycle(tmp_path: Path) -> None:
    events = g_single_events()
    res = check_events(events, model="list-append", consistency="serializable")
    assert res.valid is False
    checker = res.to_dict()
    a = checker["anomalies"][0]
    assert a["kind"] == "G-single"
    assert sorted(e["kind"] for e in a["cycle"]) == ["rw", "wr"]
    run = tmp_path / "run"
    (run / "nodes").mkdir(parents=True)
    with (run / "history.jsonl").open("w") as fh:
        for ev in events:
            fh.write(json.dumps(ev) + "\n")
    write_json(run / "config.json", {"name": "la", "workload": "list-append",
                                     "consistency": "serializable"})
    write_results(run, {"verdict": "invalid", "exit_code": 1, "name": "la", "system": "raft",
                        "checker": checker, "counts": {}, "notes": []})
    html = write_report(run).read_text()
    assert "Anomaly 1: G-single" in html
    assert "a cycle, G-single" in html
    assert 'class="chart cycle-chart"' in html
    assert html.count("<marker id=\"cyc0-") == 5
    for t in ("T0", "T1"):
        assert f">{t}</text>" in html
    assert "without 1, which T0 appended" in html  # the rw edge's reason, in words
    assert "rw x" in html and "wr y" in html  # the arrows' labels
    assert "append x 1, append y 5" in html  # the transactions' micro-operations
