"""The store's ledger (reports/ledger.py) and `harness ledger`: rows from run folders,
failure signatures, flake rates, rebuilding, and two writers at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main as harness_main
from reports import ledger
from reports.runfolder import write_json, write_results

ROOT = Path(__file__).resolve().parents[1]


def make_run(store: Path, name: str, stamp: str, *, verdict: str, bugs: tuple[str, ...] = (),
             kind: str | None = None, seed: int = 1, history: bool = True,
             shrunk: list | None = None) -> Path:
    run = store / name / stamp
    run.mkdir(parents=True)
    if history:
        (run / "history.jsonl").write_text("")
    write_json(run / "config.json", {"name": name, "system": "raft", "seed": seed,
                                     "bugs": list(bugs), "workload": "kv"})
    anomalies = [] if verdict != "invalid" else [
        {"key": "k1", "sentence": "stuck", "ops": [1], "prefix": [], **({"kind": kind} if kind else {})}]
    results = {"verdict": verdict, "exit_code": {"valid": 0, "invalid": 1}.get(verdict, 3),
               "name": name, "system": "raft", "seed": seed,
               "started": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:"
                          f"{stamp[13:15]}+00:00",
               "duration_s": 10.0, "nodes": 5, "nemesis": "default",
               "bugs": [{"name": b, "mistake": "m"} for b in bugs],
               "checker": {"valid": verdict == "valid" if verdict != "unknown" else None,
                           "model": "kv", "anomalies": anomalies}}
    write_results(run, results)
    if shrunk is not None:  # what the shrinker adds (issue 16); written raw on purpose
        data = json.loads((run / "results.json").read_text())
        data["shrunk"] = {"from": "x", "faults": shrunk}
        (run / "results.json").write_text(json.dumps(data))
    (run / "index.html").write_text("<html></html>")
    return run


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    s = tmp_path / "store"
    make_run(s, "raft", "20261130T010000", verdict="valid")
    make_run(s, "raft", "20261130T020000", verdict="invalid", bugs=("stale-read",))
    make_run(s, "raft", "20261201T030000", verdict="invalid", bugs=("stale-read",))
    make_run(s, "paxos", "20261201T040000", verdict="invalid", bugs=("no-adopt",), kind="G-single",
             shrunk=[{"f": "kill"}, {"f": "partition", "value": {"shape": "halves"}}])
    make_run(s, "paxos", "20261201T050000", verdict="valid", history=False)  # results only
    return s


def test_rows_signatures_and_flake_rates(store: Path) -> None:
    with ledger.open_ledger(store) as led:
        rows = led.rows()
    assert len(rows) == 5
    fails = ledger.failures(rows)
    assert [(f.count, f.signature) for f in fails] == [
        (2, "kv | non-linearizable | bugs: stale-read"),
        (1, "kv | G-single | bugs: no-adopt | story: kill > partition(halves)"),
    ]
    stale = fails[0]
    assert stale.first_seen == "2026-11-30T02:00:00+00:00"
    assert stale.last_seen == "2026-12-01T03:00:00+00:00"
    assert stale.newest_report == "raft/20261201T030000/index.html"
    flakes = {f.name: (f.runs, f.failed) for f in ledger.flakes(rows)}
    assert flakes == {"paxos": (2, 1), "raft": (3, 2)}


def test_a_shrunk_run_is_grouped_under_the_kind_it_kept_not_its_first() -> None:
    checker = {"model": "kv", "anomalies": [{"kind": "stale read", "ops": [0]},
                                             {"kind": "replicas-diverged", "ops": []}]}
    results = {"verdict": "invalid", "checker": checker, "bugs": [{"name": "forget-vote"}],
               "shrunk": {"from": "x", "faults": [{"f": "kill"}], "kind": "replicas-diverged"}}
    row = ledger.row_of("r", results, {"workload": "kv"})
    assert row.signature == "kv | replicas-diverged | bugs: forget-vote | story: kill"
    # a kind the run does not show is no reason to regroup it
    results["shrunk"]["kind"] = "lost write"
    assert ledger.row_of("r", results, {}).anomaly == "stale read"


def test_since_filters_by_start(store: Path) -> None:
    with ledger.open_ledger(store) as led:
        assert {r.path for r in led.rows("2026-12-01T00:00:00+00:00")} == {
            "raft/20261201T030000", "paxos/20261201T040000", "paxos/20261201T050000"}


def test_sync_picks_up_new_and_rewritten_runs(store: Path) -> None:
    with ledger.open_ledger(store) as led:
        assert led.sync() == 0  # nothing changed since open
    run = make_run(store, "raft", "20261201T060000", verdict="invalid", bugs=("early-ack",))
    ledger.record(store, run)
    with ledger.open_ledger(store) as led:
        assert len(led.rows()) == 6
    # results.json rewritten (e.g. `harness check` again): the row follows it
    data = json.loads((run / "results.json").read_text())
    data["verdict"] = "valid"
    (run / "results.json").write_text(json.dumps(data))
    import os
    st = (run / "results.json").stat()
    os.utime(run / "results.json", (st.st_atime, st.st_mtime + 5))
    with ledger.open_ledger(store) as led:
        row = next(r for r in led.rows() if r.path == "raft/20261201T060000")
    assert row.verdict == "valid" and row.signature == ""


def test_deleted_or_damaged_ledger_is_rebuilt(store: Path) -> None:
    with ledger.open_ledger(store) as led:
        before = led.rows()
    for side in ("", "-wal", "-shm"):
        (store / (ledger.LEDGER + side)).unlink(missing_ok=True)
    with ledger.open_ledger(store) as led:
        assert led.rows() == before
    (store / ledger.LEDGER).write_bytes(b"this is not a database" * 100)
    with ledger.open_ledger(store) as led:
        assert led.rows() == before
    assert (store / (ledger.LEDGER + ".damaged")).exists()


def test_record_outside_the_store_is_refused(store: Path, tmp_path: Path) -> None:
    other = make_run(tmp_path / "elsewhere", "raft", "20261201T070000", verdict="valid")
    with pytest.raises(ledger.LedgerError):
        ledger.record(store, other)


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[4])
from test_ledger import make_run
from reports import ledger
store, who, n = Path(sys.argv[2]), sys.argv[3], 40
for i in range(n):
    run = make_run(store, who, f"20261201T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}",
                   verdict="invalid" if i % 3 == 0 else "valid", bugs=("stale-read",), seed=i)
    ledger.record(store, run)
    if i % 10 == 0:
        with ledger.open_ledger(store) as led:
            led.rows()
"""


@pytest.mark.timeout(120)
def test_two_writers_at_once_corrupt_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(store), who,
                               str(Path(__file__).parent)], stderr=subprocess.PIPE)
             for who in ("sweep-a", "sweep-b")]
    try:
        errors = [p.communicate(timeout=100)[1].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], errors
    con = sqlite3.connect(store / ledger.LEDGER)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    with ledger.open_ledger(store) as led:
        rows = led.rows()
    assert len(rows) == 80
    assert {f.name: (f.runs, f.failed) for f in ledger.flakes(rows)} == {
        "sweep-a": (40, 14), "sweep-b": (40, 14)}


def test_cli_prints_signatures_and_rejects_bad_input(store: Path, capsys: pytest.CaptureFixture,
                                                     tmp_path: Path) -> None:
    assert harness_main(["ledger", str(store)]) == 0
    out = capsys.readouterr().out
    assert "2x  kv | non-linearizable | bugs: stale-read" in out
    assert "newest: raft/20261201T030000/index.html" in out
    assert any(line.split() == ["raft", "3", "2", "66.7%"] for line in out.splitlines())
    assert harness_main(["ledger", str(store), "--since", "yesterday"]) == 2
    assert "not a date" in capsys.readouterr().err
    assert harness_main(["ledger", str(tmp_path / "none")]) == 2
    assert "no such store" in capsys.readouterr().err
