"""The example chaos suite and a failing chaos test, run as a user runs them.

Both run ``python -m pytest`` in a subprocess (the plugin comes from the
entry point) with ``-rA --junitxml``, then read its output, its JUnit XML and
the run folders it left. Everything the sessions write is under this test's
tmp_path, so "no process of the run is left" is checked by looking for
processes whose command line names tmp_path and, by PID, for every node and
proxy process the runs' metrics.jsonl recorded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
from testkit.procs import end_leftovers

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parent.parent
HAVE_XDIST = importlib.util.find_spec("xdist") is not None


def session(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    # COLUMNS: a wide "terminal", so the short summary keeps the failure message
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "250"})


def recorded_pids(run_dir: Path) -> set[int]:
    """Every node PID the run's metrics poller saw."""
    pids = set()
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "proc" and event.get("pid"):
            pids.add(event["pid"])
    return pids


def assert_nothing_left(tmp_path: Path, run_dirs: list[Path]) -> None:
    left = end_leftovers(tmp_path)  # by PID: their command lines name this test's tmp_path
    assert not left, f"processes of the runs were left running: {left}"
    for run_dir in run_dirs:
        pids = recorded_pids(run_dir)
        assert pids, f"{run_dir}: metrics.jsonl recorded no node process"
        for pid in pids:
            try:
                cmdline = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue  # gone, as it should be
            assert str(run_dir) not in cmdline, f"node pid {pid} of {run_dir} still runs"


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {case.get("name"): case for case in root.iter("testcase")}


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


@pytest.fixture(scope="module")
def example_suite(tmp_path_factory: pytest.TempPathFactory):
    """``pytest examples -rA --junitxml`` (on 2 xdist workers when installed), once."""
    tmp = tmp_path_factory.mktemp("examples")
    junit = tmp / "junit.xml"
    args = ["examples", "-rA", "--junitxml", str(junit), "--chaos-store", str(tmp / "store"),
            "--basetemp", str(tmp / "bt")]
    if HAVE_XDIST:
        args += ["-n", "2"]
    done = session(args, REPO, timeout=500)
    return tmp, done, junit


EXPECTED = {
    "test_linearizable_under_faults[raft-partition-seed1]": "valid",
    "test_linearizable_under_faults[paxos-partition-seed1]": "valid",
    "test_linearizable_under_faults[raft-kill+pause-seed1]": "valid",
    "test_linearizable_under_faults[paxos-kill+pause-seed1]": "valid",
    "test_early_ack_is_caught[raft]": "invalid",
    "test_early_ack_is_caught[paxos]": "invalid",
}


@pytest.mark.timeout(560)
def test_example_suite_passes_and_catches_the_known_bug(example_suite) -> None:
    tmp, done, junit = example_suite
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for name in EXPECTED:
        assert f"PASSED examples/test_chaos_example.py::{name}" in out, out
    assert re.search(r"=+ 6 passed", out), out
    if HAVE_XDIST:  # both workers ran chaos tests at the same time without clashing
        assert "[gw0]" in out and "[gw1]" in out
    # -rA shows each run's section with its report, and the session's table
    assert out.count("- chaos run: ") >= len(EXPECTED)
    assert "bug early-ack" in out and "anomaly on key" in out
    table = out.split("= chaos runs =", 1)[1]
    assert re.search(r"tests; 6 tests passed, 0 failed", table), table

    cases = junit_cases(junit)
    run_dirs = []
    for name, verdict in EXPECTED.items():
        props = properties(cases[name])
        # a known-bug test may have needed more than one seed; its last run found the bug
        verdicts = [p.get("value") for p in cases[name].iter("property")
                    if p.get("name") == "chaos_verdict"]
        assert verdicts[-1] == verdict, (name, verdicts)
        report = Path(props["chaos_report"])
        assert report.name == "index.html" and report.is_file()
        assert report.parent.parent.name == name  # one folder per test: no clashes
        assert f"report: {report}" in out
        if verdict == "invalid":
            assert props["chaos_anomaly"].startswith("anomaly on key ")
        run_dirs += [Path(p.get("value")) for p in cases[name].iter("property")
                     if p.get("name") == "chaos_run_dir"]
    assert len({d.parent for d in run_dirs}) == len(EXPECTED)
    assert_nothing_left(tmp, run_dirs)


FAILING = """
import pytest

@pytest.mark.chaos(system="raft", nodes=3, time_limit=5, nemesis="partition",
                   nemesis_interval=1.5, bug="early-ack", seed=1)
def test_raft_stays_linearizable(chaos_runner):
    # find_anomaly keeps this deterministic (timing decides whether one seed
    # hits the bug); then the assertion a user writes fails and says why
    result = chaos_runner.find_anomaly(attempts=4)
    result.assert_valid()
"""


@pytest.mark.timeout(300)
def test_a_failing_chaos_test_names_the_anomaly_and_the_report(tmp_path: Path) -> None:
    (tmp_path / "test_failing.py").write_text(FAILING)
    junit = tmp_path / "junit.xml"
    done = session(["test_failing.py", "-rA", "--junitxml", str(junit), "--basetemp",
                    str(tmp_path / "bt")], tmp_path, timeout=280)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    case = junit_cases(junit)["test_raft_stays_linearizable"]
    props = properties(case)
    run_dir = Path(props["chaos_run_dir"])
    # no --chaos-store: the runs go to the session's basetemp
    assert run_dir.is_relative_to(tmp_path / "bt" / "chaos" / "test_raft_stays_linearizable")
    results = json.loads((run_dir / "results.json").read_text())
    first = results["checker"]["anomalies"][0]
    anomaly = f"anomaly on key {first['key']}: {first['sentence']}"
    report = run_dir / "index.html"
    assert props["chaos_report"] == str(report) and report.is_file()

    failure = case.find("failure")
    assert failure is not None
    assert anomaly in failure.get("message") and str(report) in failure.get("message")
    assert re.search(rf"^E +AssertionError: {re.escape(anomaly)}$", out, re.MULTILINE), out
    assert re.search(rf"^E +report: {re.escape(str(report))}$", out, re.MULTILINE), out
    assert re.search(r"^E +repeat: harness run .*--seed \d+ ", out, re.MULTILINE), out
    assert "FAILED test_failing.py::test_raft_stays_linearizable - AssertionError: anomaly on key" in out
    assert "- chaos run: raft x3, nemesis partition, seed" in out  # the section, under the failure
    assert "failed    invalid" in out.split("= chaos runs =", 1)[1]
    run_dirs = [Path(p.get("value")) for p in case.iter("property") if p.get("name") == "chaos_run_dir"]
    assert_nothing_left(tmp_path, run_dirs)
