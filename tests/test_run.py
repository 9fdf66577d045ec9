"""`harness run` end to end on real Raft processes: load, faults, interrupts, bad input.

Each test works in its own tmp_path store; "processes of the run" are found by
their command line naming that tmp_path (the cluster.json lives there), so a
test can prove nothing of its run is left without touching anyone else's.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from checker.history import read_history
from harness import RunConfig, run
from harness.cluster import wait_gone

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parent.parent
RUN_FILES = {"config.json", "cluster.json", "history.jsonl", "results.json", "metrics.jsonl",
             "nodes"}


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", *args]


def config(tmp_path: Path, **kw) -> RunConfig:
    base = {"system": "raft", "nodes": 3, "time_limit": 10, "nemesis": "none", "seed": 11,
                "store": str(tmp_path / "store"), "progress": False}
    base.update(kw)
    return RunConfig(**base)


def events_of(run_dir: Path) -> list[dict]:
    return read_history(run_dir / "history.jsonl")


@pytest.mark.timeout(120)
def test_a_run_without_faults_is_valid_with_thousands_of_ok_ops(
        tmp_path: Path, no_leftovers) -> None:
    # 4 s at full speed is tens of thousands of operations: enough for the checks below
    result = run(config(tmp_path, rate=0, time_limit=4))
    assert result.verdict == "valid" and result.exit_code == 0, result.results
    assert result.counts["ok"] >= 2000, result.counts
    names = {p.name for p in result.run_dir.iterdir()}
    assert RUN_FILES <= names, f"run folder lacks {RUN_FILES - names}"
    assert {f"n{i}.log" for i in (1, 2, 3)} <= {p.name for p in (result.run_dir / "nodes").iterdir()}
    assert (tmp_path / "store" / "latest").resolve() == result.run_dir.resolve()
    assert result.report == result.run_dir / "index.html" and result.report.is_file()

    saved = json.loads((result.run_dir / "config.json").read_text())
    assert RunConfig.from_dict(saved) == result.config and saved["seed"] == 11
    results = json.loads((result.run_dir / "results.json").read_text())
    assert results["verdict"] == "valid" and results["counts"] == result.counts
    assert results["latency_ms"]["p50"] > 0 and results["ops_per_s"] > 100
    assert "--seed 11" in results["command"]

    events = events_of(result.run_dir)
    assert [e["index"] for e in events] == list(range(len(events)))
    assert all(a["time"] <= b["time"] for a, b in itertools.pairwise(events))
    final = [e for e in events if e["type"] == "ok" and e["f"] == "read"
             and e["time"] > results["duration_s"] * 1e9]
    assert {e["key"] for e in final} == {f"k{i}" for i in range(result.config.keys)}, \
        "every key is read back after the load"

    metrics = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    status = [m for m in metrics if m["kind"] == "status" and m["up"]]
    assert {m["node"] for m in status} == {"n1", "n2", "n3"}
    assert any(m["role"] == "leader" for m in status)
    procs = [m for m in metrics if m["kind"] == "proc"]
    assert all(m["state"] == "running" and m["rss"] > 0 for m in procs)


@pytest.mark.timeout(120)
def test_kill_faults_are_recorded_with_restarts_and_the_history_stays_valid(
        tmp_path: Path, no_leftovers) -> None:
    result = run(config(tmp_path, nemesis="kill", nemesis_interval=1.5, time_limit=6))
    assert result.verdict == "valid" and result.exit_code == 0, result.results
    events = events_of(result.run_dir)
    kills = [e for e in events if e["process"] == "nemesis" and e["f"] == "kill"]
    ends = [e for e in events if e["process"] == "nemesis" and e["f"] == "kill-end"]
    assert kills and len(ends) == len(kills), "every kill is followed by its restart"
    metrics = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    pids: dict[str, set[int]] = {}
    for m in metrics:
        if m["kind"] == "proc" and m["pid"] is not None:
            pids.setdefault(m["node"], set()).add(m["pid"])
    killed = {n for e in kills for n in e["value"]}
    assert all(len(pids[n]) >= 2 for n in killed), f"a killed node was not restarted: {pids}"
    assert any(m["kind"] == "proc" and m["state"] == "dead" for m in metrics)
    assert result.counts["ok"] > 100


def start_harness(tmp_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        harness_cmd("--nodes", "3", "--time-limit", "60", "--nemesis", "none", "--seed", "5",
                    "--store", str(tmp_path / "store"), *extra),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def history_lines(tmp_path: Path) -> int:
    files = list((tmp_path / "store").glob("*/*/history.jsonl"))
    return sum(1 for _ in files[0].open()) if files else 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_an_interrupted_run_leaves_no_process_and_a_checkable_history(
        tmp_path: Path, no_leftovers, how: str) -> None:
    from checker import check_file

    harness = start_harness(tmp_path)
    try:
        wait_until(lambda: history_lines(tmp_path) > 200 or harness.poll() is not None, 60,
                   "the run to record operations")
        assert harness.poll() is None, harness.communicate()
        children = psutil.Process(harness.pid).children(recursive=True)
        assert len(children) >= 4, "three nodes and the proxy"
        harness.send_signal(getattr(signal, how))
        out, err = harness.communicate(timeout=60)
        if how == "SIGINT":
            assert harness.returncode == 3, (out, err)
            assert "verdict: VALID (interrupted)" in out
            run_dir = tmp_path / "store" / "latest"
            results = json.loads((run_dir / "results.json").read_text())
            assert results["interrupted"] and results["verdict"] == "valid"
        else:
            assert harness.returncode == -signal.SIGKILL
            run_dir = next((tmp_path / "store").glob("*/*/"))
        alive = wait_gone(children, time.monotonic() + 10)  # a zombie orphan is gone
        assert not alive, f"processes outlived the harness: {[p.pid for p in alive]}"
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()
    events = read_history(run_dir / "history.jsonl")
    assert len(events) > 200
    assert check_file(run_dir / "history.jsonl", model="kv").valid is True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--nodes", "0"], "--nodes must be at least 1"),
    (["--ops", "read,delete"], "unknown operation delete"),
    (["--nemesis", "meteor"], "unknown nemesis"),
    (["--system", f"{sys.executable} -c 'import sys; sys.exit(3)'", "--nemesis", "none"],
     "exited with code 3"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_left_running(
        tmp_path: Path, no_leftovers, args: list[str], message: str) -> None:
    store = ["--store", str(tmp_path / "store")] if "--store" not in args else []
    proc = subprocess.run(harness_cmd("--time-limit", "5", *store, *args), cwd=REPO,
                          capture_output=True, text=True, timeout=50, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_help_names_every_option_with_its_default() -> None:
    proc = subprocess.run(harness_cmd("--help"), cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for option in ("--system", "--nodes", "--time-limit", "--concurrency", "--rate", "--keys",
                   "--ops", "--nemesis", "--nemesis-interval", "--seed", "--test-count",
                   "--store", "--name", "--bug", "--net", "--journal"):
        assert option in text, option
    assert "(default: 5)" in text and "(default: 60)" in text and "2 per node" in text
    assert text.count("default") >= 16


def test_an_unwritable_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run(harness_cmd("--store", str(blocker), "--nemesis", "none"), cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "cannot write to the store" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.timeout(120)
def test_test_count_repeats_with_consecutive_seeds_and_prints_one_table(
        tmp_path: Path, no_leftovers) -> None:
    proc = subprocess.run(
        harness_cmd("--nodes", "3", "--time-limit", "2", "--nemesis", "none", "--seed", "40",
                    "--test-count", "2", "--store", str(tmp_path / "store"), "--no-progress"),
        cwd=REPO, capture_output=True, text=True, timeout=110, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    table = proc.stdout[proc.stdout.index("  #"):]
    rows = [line.split() for line in table.splitlines()[2:4]]
    assert [(r[1], r[2]) for r in rows] == [("40", "valid"), ("41", "valid")]
    assert "2 of 2 runs passed" in table
    seeds = sorted(json.loads(p.read_text())["seed"]
                   for p in (tmp_path / "store").glob("raft/*/config.json"))
    assert seeds == [40, 41]


@pytest.mark.timeout(150)
def test_a_real_sweep_over_two_workers_runs_two_clusters_at_once_on_their_own_ports(
        tmp_path: Path, no_leftovers) -> None:
    proc = subprocess.run(
        harness_cmd("--nodes", "3", "--time-limit", "3", "--nemesis", "none", "--seed", "60",
                    "--test-count", "2", "--workers", "2", "--keep-all",
                    "--store", str(tmp_path / "store"), "--no-progress"),
        cwd=REPO, capture_output=True, text=True, timeout=140, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    runs = sorted((tmp_path / "store").glob("raft/*/config.json"))
    assert sorted(json.loads(p.read_text())["seed"] for p in runs) == [60, 61]
    ports = [{addr for n in json.loads((p.parent / "cluster.json").read_text())["nodes"].values()
              for addr in (n["peer_bind"], n["client_bind"])} for p in runs]
    assert not ports[0] & ports[1]  # each task picked its own free ports
    spans = []
    for p in runs:
        r = json.loads((p.parent / "results.json").read_text())
        assert r["verdict"] == "valid" and r["counts"]["ok"] > 0, r
        began = datetime.fromisoformat(r["started"]).timestamp()
        spans.append((began, began + r["duration_s"]))  # started is to the second
    (_a0, a1), (b0, _b1) = sorted(spans)
    assert b0 < a1, spans  # the second cluster started before the first run ended


@pytest.mark.timeout(120)
def test_a_port_taken_before_the_node_binds_it_is_retried_with_fresh_ports(
        tmp_path: Path, no_leftovers, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import nodes.common.clusterfile as cluster_mod

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    real = cluster_mod.free_ports
    calls = []

    def first_port_taken(count: int) -> list[int]:
        ports = real(count)
        calls.append(count)
        if len(calls) == 1:
            ports[1] = squatter.getsockname()[1]  # n1's client port: someone else has it
        return ports

    monkeypatch.setattr(cluster_mod, "free_ports", first_port_taken)
    try:
        result = run(config(tmp_path, time_limit=1))
    finally:
        squatter.close()
    assert len(calls) == 2
    assert result.verdict == "valid", result.results
    assert "cannot bind" in (result.run_dir / "nodes" / "n1.log").read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("read_mode", ["log", "index"])
def test_read_mode_reaches_the_nodes_and_either_mode_serves_a_valid_run(
        tmp_path: Path, no_leftovers, read_mode: str) -> None:
    result = run(config(tmp_path, time_limit=2, read_mode=read_mode, ops=["read", "write"]))
    cluster = json.loads((result.run_dir / "cluster.json").read_text())
    assert cluster["options"]["read_mode"] == read_mode
    assert result.verdict == "valid", result.results
    reads = [op for op in result.operations if op.f == "read" and op.type == "ok"]
    assert len(reads) > 20, result.counts


@pytest.mark.timeout(180)
def test_stop_on_anomaly_ends_the_load_early_and_the_full_check_gives_the_verdict(
        tmp_path: Path, no_leftovers) -> None:
    # the stale-read bug with its own nemesis mix: stale reads within seconds,
    # which the streaming checker proves as they complete
    result = run(config(tmp_path, bugs=["stale-read"], nemesis="bug:stale-read", time_limit=60,
                        stop_on_anomaly=True))
    notes = result.results["notes"]
    streamed = [n for n in notes if n.startswith("streaming checker: anomaly on ")]
    assert streamed and "--stop-on-anomaly ended the load" in streamed[0], notes
    assert result.results["duration_s"] < 55, result.results["duration_s"]
    assert result.verdict == "invalid" and result.exit_code == 1
    # the report names the earliest anomaly over all keys first
    anomalies = result.results["checker"]["anomalies"]
    assert [a["ops"][0] for a in anomalies] == sorted(a["ops"][0] for a in anomalies)


def test_an_anomaly_beside_a_lost_client_worker_is_unknown_not_invalid(tmp_path: Path) -> None:
    """A worker that never sent its last batch may have sent writes the history
    lacks; a read of such a value looks like a read of a value nobody wrote. The
    same history is invalid when every worker's last batch came."""
    from harness.runner import finish_run

    def history() -> list[dict]:
        ns = 1_000_000
        evs = [{"process": 0, "type": "invoke", "f": "write", "value": ["k1", 1], "time": 1 * ns},
               {"process": 0, "type": "ok", "f": "write", "value": ["k1", 1], "time": 2 * ns},
               {"process": 1, "type": "invoke", "f": "read", "value": ["k1", None], "time": 3 * ns},
               {"process": 1, "type": "ok", "f": "read", "value": ["k1", 7], "time": 4 * ns}]
        for i, e in enumerate(evs):
            e["index"] = i
        return evs

    verdicts = {}
    for lost in ([], [1]):
        run_dir = tmp_path / f"lost{len(lost)}"
        run_dir.mkdir()
        cfg = RunConfig(seed=1, nemesis="none", store=str(tmp_path), net="direct").resolved()
        res = finish_run(cfg, run_dir, "20261202T000000", history(), {"ok": 2}, 1.0, [],
                         False, True, report=False, index=False, lost_workers=lost)
        verdicts[len(lost)] = (res.verdict, res.exit_code, res.results["notes"])
    assert verdicts[0][:2] == ("invalid", 1)
    assert verdicts[1][:2] == ("unknown", 3)
    assert any("client worker(s) 1 ended without their last batch" in n for n in verdicts[1][2])
