"""The HTML fault report: what it says for a passing and a failing run, availability
per fault, the store index, and the `harness report` / `harness serve` commands.

Run folders are synthetic (testkit.synthetic) or built from a recorded failing
history in ../shared/corpus (skipped when that folder is absent).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import UTC
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testkit.synthetic import write_synthetic_run

from checker.history import pair
from checker.nemesis import fault_windows
from reports import write_report, write_store_index
from reports.analysis import AVAILABILITY_FIELDS, availability

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
MS = 1_000_000


@pytest.fixture(scope="module")
def valid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = write_synthetic_run(
        tmp_path_factory.mktemp("store") / "synthetic" / "20260102T030405", ops=1500
    )
    write_report(d)
    return d


@pytest.fixture(scope="module")
def violation_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = write_synthetic_run(
        tmp_path_factory.mktemp("store") / "synthetic-violation" / "20260102T030405",
        ops=1500,
        violation=True,
    )
    write_report(d)
    return d


def page(run: Path) -> str:
    return (run / "index.html").read_text(encoding="utf-8")


def assert_self_contained(html: str) -> None:
    """No resource is fetched from anywhere: no src=, no stylesheet links, no remote URLs."""
    assert not re.search(r"\ssrc=", html), "the page loads an external resource"
    assert "<link" not in html
    assert not re.search(r"(href|url)\(?=?[\"']?(https?:)?//", html), (
        "the page refers to the network"
    )


# -- availability ---------------------------------------------------------------------------------


def ev(i: int, t_ms: float, process, typ: str, f: str, value=None, key="k") -> dict:
    return {
        "index": i,
        "time": int(t_ms * MS),
        "process": process,
        "type": typ,
        "f": f,
        "key": key,
        "value": value,
    }


def nem(i: int, t_ms: float, f: str, value) -> dict:
    """A nemesis event of the history."""
    return {"index": i, "time": int(t_ms * MS), "process": "nemesis", "type": "info", "f": f,
            "value": value}


def test_availability_counts_ops_in_each_fault_window_and_time_to_next_acked_write():
    events = [
        ev(0, 0, 0, "invoke", "write", 1),
        ev(1, 5, 0, "ok", "write", 1),
        nem(2, 1000, "kill", ["n1"]),
        ev(3, 1010, 0, "invoke", "write", 2),
        ev(4, 1200, 0, "info", "write", 2),
        ev(5, 1100, 1, "invoke", "read"),
        ev(6, 1105, 1, "fail", "read"),
        ev(7, 1250, 2, "invoke", "read"),
        ev(8, 1260, 2, "ok", "read", 1),
        ev(9, 1290, 3, "invoke", "cas", [1, 3]),
        ev(10, 1300, 3, "ok", "cas", [1, 3]),
        nem(11, 2000, "kill-end", ["n1"]),
        ev(12, 2100, 2, "invoke", "write", 4),
        ev(13, 2250, 2, "ok", "write", 4),
    ]
    events.sort(key=lambda e: e["time"])
    [a] = availability(events)
    assert (a["kind"], a["target"], a["start_ns"], a["end_ns"]) == (
        "kill",
        "n1",
        1000 * MS,
        2000 * MS,
    )
    assert (a["ops"], a["ok"], a["fail"], a["info"]) == (4, 2, 1, 1)
    assert a["ok_share"] == 0.5
    assert a["to_ack_after_start_ms"] == 300.0  # the cas acknowledged at 1.3 s
    assert a["to_ack_after_heal_ms"] == 250.0  # the write acknowledged at 2.25 s
    json.dumps(a)  # goes into results.json as is
    assert tuple(a) == AVAILABILITY_FIELDS  # the one list of its fields the page checks rows by


def test_a_fault_never_healed_lasts_to_the_end_and_open_invokes_are_info():
    events = [
        nem(0, 0, "partition", {"shape": "halves", "grudge": {"n1": ["n2"], "n2": ["n1"]}}),
        ev(1, 10, 0, "invoke", "write", 1),  # never completes
        ev(2, 20, 1, "invoke", "read"),
        ev(3, 30, 1, "ok", "read", None),
    ]
    [w] = fault_windows(events)
    assert w.end is None and w.target() == "halves: n1 | n2"
    ops = pair(events)
    assert [(o.f, o.type, o.end) for o in ops] == [("write", "info", None), ("read", "ok", 30 * MS)]
    [a] = availability(events)
    assert a["end_ns"] is None and a["ops"] == 2 and a["to_ack_after_heal_ms"] is None
    assert a["to_ack_after_start_ms"] is None  # no write was ever acknowledged


# -- the report of a passing run ----------------------------------------------------------------------


def test_valid_report_has_verdict_command_fault_bands_and_no_violation_section(valid_run: Path):
    html = page(valid_run)
    assert (
        'class="banner valid"' in html and "LINEARIZABLE" in html and "NOT LINEARIZABLE" not in html
    )
    assert "harness run --system raft --nodes 5 --concurrency 5 --seed 1" in html
    for kind in ("kill", "partition", "pause", "net"):  # every fault window is drawn as a band
        assert f'class="band band-{kind}"' in html, kind
    assert "halves: n1 n2 | n3 n4 n5" in html  # the partition named by its sides
    assert "What went wrong" not in html
    assert "4 fault windows (kill, net, partition, pause). While a fault was active" in html
    assert "Availability per fault" in html and html.count('<td class="wrap">') == 4
    for link in ("history.jsonl", "results.json", "nodes/n1.log", "metrics.jsonl"):
        assert f'href="{link}"' in html
    assert "n4 t4" in html  # the leader lane names who led at which term
    assert_self_contained(html)


# -- the report of a failing run --------------------------------------------------------------------


def test_violation_report_shows_sentence_witness_moment_logs_and_messages(violation_run: Path):
    html = page(violation_run)
    results = json.loads((violation_run / "results.json").read_text())
    sentence = results["checker"]["anomalies"][0]["sentence"]
    assert 'class="banner invalid"' in html and "NOT LINEARIZABLE" in html
    assert html.count(sentence) >= 2  # in the banner and above the witness
    # The witness: prefix ops numbered in linearization order, the stuck read in red.
    assert html.count('class="wop placed"') == 4 and html.count('class="wop stuck"') == 1
    assert "read → 1001 — cannot be placed" in html and "#4 read → 1002" in html
    assert 'class="lin"' in html  # the line through the linearization points
    assert html.count("op ok witness") == 2  # the anomaly's ops stand out in the timeline
    assert re.search(r"Faults at \d+\.\d+ s", html) and "halves: n1 n2 | n3 n4 n5 — healed" in html
    assert "served read k-stale locally (lease)" in html  # node log line next to the moment
    assert "Messages around the violation" in html and 'class="msg dropped"' in html
    for kind in ("kill", "partition", "pause", "net"):
        assert f'class="band band-{kind}"' in html, kind
    assert_self_contained(html)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_report_of_a_recorded_failing_history_checked_while_drawing(tmp_path: Path):
    """An etcd history Porcupine rejects: with no results.json the report checks it itself."""
    src = CORPUS / "porcupine" / "etcd" / "etcd_000.jsonl"
    run = tmp_path / "etcd_000"
    run.mkdir()
    with src.open() as fh, (run / "history.jsonl").open("w") as out:
        for line in fh:
            e = json.loads(line)
            e["time"] = e["time"] * 10 * MS  # event positions -> 10 ms apart
            out.write(json.dumps(e) + "\n")
    (run / "config.json").write_text(json.dumps({"model": "cas-register", "name": "etcd_000"}))
    html = write_report(run).read_text()
    assert 'class="banner invalid"' in html
    assert "read of the register returned 2" in html
    assert html.count('class="wop stuck"') == 1 and html.count('class="wop placed"') >= 5
    assert "Checked while drawing this report" in html
    assert_self_contained(html)


def test_a_run_that_crashed_still_gets_a_report(tmp_path: Path):
    run = tmp_path / "crashed"
    run.mkdir()
    lines = [
        json.dumps(ev(0, 0, 0, "invoke", "write", 1)),
        json.dumps(ev(1, 3, 0, "ok", "write", 1)),
        '{"index": 2, "time": 4000000, "proc',
    ]  # torn last line
    (run / "history.jsonl").write_text("\n".join(lines))
    html = write_report(run).read_text()
    assert "Timeline" in html and "No metrics.jsonl" in html


# -- store index and the command line ------------------------------------------------------------------


def test_store_index_lists_every_run_newest_first(tmp_path: Path):
    store = tmp_path / "store"
    old = write_synthetic_run(store / "raft" / "20260101T000000", ops=200, seed=2)
    new = write_synthetic_run(store / "paxos" / "20260103T000000", ops=200, seed=3, violation=True)
    for run, started in ((old, "2026-01-01T00:00:00+00:00"), (new, "2026-01-03T00:00:00+00:00")):
        r = json.loads((run / "results.json").read_text())
        r["started"] = started
        (run / "results.json").write_text(json.dumps(r))
        write_report(run)
    (store / "latest").symlink_to("paxos/20260103T000000")
    html = write_store_index(store).read_text()
    assert html.count('<tr><td><a href="') == 2  # store/latest is not listed twice
    assert html.index("paxos/20260103T000000/index.html") < html.index(
        "raft/20260101T000000/index.html"
    )
    assert "invalid" in html and "valid" in html and "kill,pause,partition,net" in html
    assert "2 runs: 1 valid, 1 with an anomaly" in html


def harness(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def test_harness_report_redraws_and_rejects_a_folder_that_is_not_a_run(tmp_path: Path):
    run = write_synthetic_run(tmp_path / "store" / "s" / "20260102T030405", ops=300)
    done = harness("report", str(run))
    assert done.returncode == 0, done.stderr
    assert (run / "index.html").exists() and "index.html" in done.stdout
    bad = harness("report", str(tmp_path / "nowhere"))
    assert bad.returncode == 2
    assert (
        bad.stderr.count("\n") == 1
        and "not a run folder" in bad.stderr
        and "Traceback" not in bad.stderr
    )


# -- the run folder: one owner, a versioned schema, redrawn anywhere -------------------------------

REPO = Path(__file__).resolve().parents[1]

#: Runs in a fresh interpreter where every import of the harness fails: what
#: reports needs to redraw a folder copied from another machine.
REDRAW_WITHOUT_HARNESS = """
import sys
class NoHarness:
    def find_spec(self, name, path=None, target=None):
        if name == "harness" or name.startswith("harness."):
            raise ImportError("the harness is not installed here: " + name)
        return None
sys.meta_path.insert(0, NoHarness())
from reports import write_report
print(write_report(sys.argv[1]))
print(sorted(m for m in sys.modules if m == "harness" or m.startswith("harness.")))
"""


def test_a_run_folder_copied_elsewhere_redraws_the_same_page_without_the_harness(tmp_path: Path):
    import shutil

    run = write_synthetic_run(tmp_path / "here" / "s" / "20260102T030405", ops=400,
                              violation=True)
    results = json.loads((run / "results.json").read_text())
    results["bugs"] = [{"name": "early-ack", "mistake": "acks a write before it is committed"}]
    (run / "results.json").write_text(json.dumps(results))
    (run / "config.json").write_text(json.dumps({**json.loads((run / "config.json").read_text()),
                                                 "bugs": ["early-ack"]}))
    before = write_report(run).read_text()
    there = tmp_path / "elsewhere" / "copied"
    shutil.copytree(run, there)
    (there / "index.html").unlink()
    done = subprocess.run([sys.executable, "-c", REDRAW_WITHOUT_HARNESS, str(there)],
                          cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]", "reports imported a harness module"
    after = (there / "index.html").read_text()
    assert "The nodes ran with the known bug early-ack: acks a write before it is committed." in after
    assert 'class="banner invalid"' in after and results["checker"]["anomalies"][0]["sentence"] in after

    def drawn(html: str) -> str:  # the page minus where it lies and how long it took to draw
        html = html.replace(str(run), "RUN").replace(str(there), "RUN")
        return re.sub(r"Drawn by consensus-harness in [0-9.]+ s", "", html)

    assert drawn(after) == drawn(before)


def test_no_module_of_reports_imports_the_harness():
    import ast

    for path in sorted((REPO / "reports").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("harness", "faults", "nodes"), (path, name)


def test_results_json_carries_its_schema_and_names_only_its_fields(tmp_path: Path):
    from reports.runfolder import SCHEMA, read_results, write_results

    written = write_results(tmp_path, {"verdict": "valid", "counts": {"ok": 1}})
    assert next(iter(json.loads((tmp_path / "results.json").read_text()))) == "schema"
    assert read_results(tmp_path) == written == {"schema": SCHEMA, "verdict": "valid",
                                                 "counts": {"ok": 1}}
    with pytest.raises(ValueError, match="no field colour"):
        write_results(tmp_path, {"verdict": "valid", "colour": "red"})


def test_a_results_json_from_a_newer_harness_is_one_line_and_exit_2(tmp_path: Path):
    store = tmp_path / "store"
    run = write_synthetic_run(store / "s" / "20260102T030405", ops=200)
    results = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**results, "schema": 99}))
    done = harness("report", str(run))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "schema 99 is newer than this harness reads" in done.stderr
    assert "Traceback" not in done.stderr
    index = write_store_index(store).read_text()  # the store index still lists it
    assert "s/20260102T030405/" in index and "results.json schema 99 is newer" in index


@pytest.mark.timeout(60)
def test_harness_serve_prints_its_address_and_serves_the_store(tmp_path: Path):
    store = tmp_path / "store"
    run = write_synthetic_run(store / "s" / "20260102T030405", ops=200)
    write_report(run)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--store", str(store), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # the server prints its address once it listens
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        base = m.group(0)
        deadline = time.monotonic() + 20
        while True:
            try:
                body = urllib.request.urlopen(
                    base + "s/20260102T030405/index.html", timeout=5
                ).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert b"LINEARIZABLE" in body
        assert b"s/20260102T030405/index.html" in urllib.request.urlopen(base, timeout=5).read()
    finally:
        if psutil.pid_exists(proc.pid):
            proc.kill()
        proc.wait(10)


# -- scale ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.slow  # the suite stays under 10 minutes
def test_a_100k_operation_history_renders_in_seconds_and_stays_small(tmp_path: Path):
    run = write_synthetic_run(tmp_path / "big", ops=100_000, clients=10, violation=True, net=False)
    began = time.process_time()  # CPU time: the machine is shared, wall time is noise
    html = write_report(run).read_text()
    seconds = time.process_time() - began
    size = len(html.encode())
    assert seconds < 15, f"rendering took {seconds:.1f} s of CPU"  # about 4 s here
    assert size < 6 * 1024 * 1024, f"page is {size / 1e6:.1f} MB"
    assert "ok operations are aggregated" in html
    assert html.count("op ok witness") == 2  # the anomaly stays visible among 100,000 ops
    assert html.count('class="wop stuck"') == 1


# -- reading what real runs write ------------------------------------------------------------------------


def test_log_lines_are_placed_on_the_run_clock():
    from datetime import datetime

    from reports.witness import line_time

    started = datetime(2026, 11, 26, 4, 50, 59).astimezone()  # nodes log their local time of day
    assert line_time("04:51:00.791 n1 became leader at term 2", started) == 1_791_000_000
    iso = datetime(2026, 11, 26, 4, 50, 59, tzinfo=UTC)
    assert line_time("2026-11-26T04:50:58.500+00:00 INFO n2 started", iso) == -500_000_000
    assert line_time("netproxy: stopped", started) is None


def test_message_journal_fields_of_the_proxy_are_understood(tmp_path: Path):
    from reports.witness import message_diagram

    net = [
        {"time": 1_000_000, "src": "n2", "dest": "n1", "type": "vote", "result": "delivered"},
        {
            "time": 2_000_000,
            "src": "n2",
            "dest": "n4",
            "type": "vote",
            "result": "dropped",
            "unreachable": True,
        },
    ]
    svg = message_diagram(net, ["n1", "n2", "n3", "n4"], 1_500_000)
    assert svg.count('class="msg dropped"') == 1 and svg.count('class="msg"') == 1
    assert "vote: n2 → n4&#10;dropped" in svg or "vote: n2 → n4\ndropped" in svg


def test_the_witness_axis_shortens_quiet_gaps_but_keeps_order():
    from reports.witness import GapScale

    s = 1_000_000_000
    times = [0, s // 10, s // 5, 12 * s, 12 * s + s // 10]  # a burst, 12 s of quiet, a late read
    x = GapScale(times, 0, 12 * s + s // 10, 100, 1100)
    xs = [x(t) for t in times]
    assert xs == sorted(xs) and xs[0] == 100 and xs[-1] == 1100
    assert xs[2] - xs[0] > 100  # the burst gets room instead of 1/60 of the width
    assert x.breaks == [(s // 5, 12 * s)]
    assert "shortened" in x.axis(0, 50)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["invoke", "ok", "fail", "info", "kill", "kill-end", "partition", "partition-end"]
            ),
            st.integers(0, 3),  # process
            st.sampled_from(["read", "write", "cas"]),
            st.integers(0, 5_000),  # time step in ms
        ),
        max_size=60,
    )
)
def test_any_history_gets_a_report(tmp_path_factory: pytest.TempPathFactory, steps):
    """Odd histories (completions without invokes, faults never healed, heals of
    nothing, empty) still give a page; nothing in the report may crash on them."""
    run = tmp_path_factory.mktemp("odd")
    t, lines = 0, []
    for i, (kind, process, f, dt) in enumerate(steps):
        t += dt * MS
        if kind in ("invoke", "ok", "fail", "info"):
            value = [1, 2] if f == "cas" else (i if f == "write" else None)
            lines.append(ev(i, t / MS, process, kind, f, value))
        else:
            lines.append(nem(i, t / MS, kind,
                             ["n1"] if kind.startswith("kill") else {"shape": "one"}))
    (run / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (run / "results.json").write_text(json.dumps({"verdict": "unknown"}))
    html = write_report(run).read_text()
    assert "UNKNOWN" in html and html.endswith("</html>")


# -- damaged files of a run folder: ignored, or one line and exit 2 --------------------------------


def test_a_cluster_json_whose_nodes_is_not_a_table_is_ignored(tmp_path: Path):
    run = write_synthetic_run(tmp_path / "s" / "20260102T030405", ops=100, nodes=3)
    (run / "cluster.json").write_text('{"nodes": 5}')
    html = write_report(run).read_text()
    assert "LINEARIZABLE" in html  # the nodes are named by metrics.jsonl instead


def test_a_results_field_of_the_wrong_type_is_dropped_and_the_page_still_draws(tmp_path: Path):
    from reports.runfolder import read_results

    run = write_synthetic_run(tmp_path / "s" / "20260102T030405", ops=100)
    results = json.loads((run / "results.json").read_text())
    bad = {"counts": 5, "latency_ms": [1], "duration_s": "long", "nodes": True, "notes": "x"}
    (run / "results.json").write_text(json.dumps({**results, **bad}))
    read = read_results(run)
    assert not set(bad) & set(read) and read["verdict"] == results["verdict"]
    assert "LINEARIZABLE" in write_report(run).read_text()


def test_a_report_that_cannot_be_written_is_one_line_and_exit_2(tmp_path: Path):
    run = write_synthetic_run(tmp_path / "s" / "20260102T030405", ops=100)
    (run / "index.html").mkdir()  # the page's path is taken by a folder
    done = harness("report", str(run))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"cannot write {run / 'index.html'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(run.glob(".index.html.*.tmp"))  # the temporary page is removed


def test_a_run_folder_name_is_its_local_start_time():
    from datetime import datetime

    from reports.runfolder import STAMP, stamp_time, started_time

    now = datetime.now().replace(microsecond=0)
    name = now.strftime(STAMP)
    assert stamp_time(name) == stamp_time(name + "-2") == now.astimezone()
    assert stamp_time("not-a-stamp") is None
    assert started_time({"started": "2026-01-01T00:00:00"}) == datetime(2026, 1, 1, tzinfo=UTC)


def test_the_store_index_orders_runs_without_results_by_their_local_folder_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TZ", "Etc/GMT-5")  # local time is UTC+5
    time.tzset()
    try:
        store = tmp_path / "store"
        # One with results, started 02:00 UTC (07:00 local); one killed, named 06:00 local
        # (01:00 UTC): the killed run is the older one.
        done = write_synthetic_run(store / "a" / "20260101T070000", ops=100)
        results = json.loads((done / "results.json").read_text())
        (done / "results.json").write_text(
            json.dumps({**results, "started": "2026-01-01T02:00:00+00:00"}))
        killed = write_synthetic_run(store / "b" / "20260101T060000", ops=100)
        (killed / "results.json").unlink()
        html = write_store_index(store).read_text()
    finally:
        monkeypatch.undo()  # TZ as it was, and the zone read again
        time.tzset()
    assert html.index("a/20260101T070000/") < html.index("b/20260101T060000/")


def test_only_a_torn_last_history_line_is_skipped_a_complete_bad_one_is_exit_2(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    good = "".join(json.dumps(e) + "\n" for e in (ev(0, 0, 0, "invoke", "write", 1),
                                                  ev(1, 3, 0, "ok", "write", 1)))
    (run / "history.jsonl").write_text(good + '{"index": 2, "ti')  # torn: no newline
    assert harness("report", str(run)).returncode == 0
    for bad in ('{"index": 2, "ti\n', "5\n"):  # a complete line that is no JSON object
        (run / "history.jsonl").write_text(good + bad)
        done = harness("report", str(run))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "history.jsonl:3: not a JSON object" in done.stderr


def test_the_workers_log_is_no_node_log(tmp_path: Path):
    from reports.runfolder import Run
    from reports.witness import log_excerpt

    logs = {"n1": ["2026-01-01T00:00:01+00:00 n1 up"], "proxy": ["proxy up"],
            "workers": ["2026-01-01T00:00:01+00:00 worker 0 up"]}
    assert Run(tmp_path, [], logs=logs).node_ids == ["n1"]
    html = log_excerpt(logs, {"started": "2026-01-01T00:00:00+00:00"}, 1_000_000_000)
    assert "n1 up" in html and "worker 0 up" not in html


# -- findings: what the nodes' own behaviour proves, with no operation to blame --------------------


@pytest.mark.parametrize("anomaly, headline, title", [
    ({"kind": "replicas-diverged", "finding": "replicas diverged", "node": "n2",
      "nodes": ["n2", "n4"], "time": 900 * MS, "ops": [],
      "sentence": "n2 and n4 applied different commands at index 17."},
     "REPLICAS DIVERGED", "replicas diverged: <code>n2</code>, <code>n4</code>"),
    # A run folder from before findings named themselves: the kind alone says durability.
    ({"kind": "refused-after-crash", "node": "n3", "time": 900 * MS, "ops": [],
      "sentence": "n3 refused to start after being killed."},
     "NOT DURABLE", "<code>n3</code> did not come back"),
])
def test_a_finding_is_headlined_by_its_own_name_and_names_its_nodes(
        tmp_path: Path, anomaly: dict, headline: str, title: str) -> None:
    d = write_synthetic_run(tmp_path / "store" / "finding" / "20260102T030405", ops=300)
    results = json.loads((d / "results.json").read_text())
    results["verdict"] = "invalid"
    results["checker"] = {"valid": False, "anomalies": [anomaly]}
    (d / "results.json").write_text(json.dumps(results))
    write_report(d)
    html = page(d)
    assert 'class="banner invalid"' in html and headline in html
    assert "NOT LINEARIZABLE" not in html
    assert title in html and "No client operation is to blame" in html
    assert html.count(anomaly["sentence"]) >= 2  # in the banner and in the finding's section
