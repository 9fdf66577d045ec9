"""The pytest plugin without node processes: where options come from, messages.

Option precedence is checked by running a small pytest session in a
subprocess (the plugin loads from the entry point, as for any user) whose test
only builds its RunConfig; the messages are checked on hand-made RunResults.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.pytest_plugin import ChaosResult, chaos_table, normalise, run_name
from harness.runner import RunResult
from reports.runfolder import SCHEMA, write_results

SENTENCE = "read of k7 returned 127 at 2.887 s, but write of 151 completed at 2.202 s"


INLINE = """
import json
import pytest

pytestmark = pytest.mark.chaos(nodes=3, time_limit=5, keys=4)

@pytest.mark.chaos(time_limit=7, nemesis="partition", bug="early-ack", ops="read,write",
                   rate=50)
@pytest.mark.parametrize("seed", [2])
@pytest.mark.parametrize("system", [pytest.param("paxos", marks=pytest.mark.chaos(rate=80))])
def test_layers(chaos_runner, system, seed):
    print("CONFIG", json.dumps(chaos_runner.config().to_dict()))
    print("OVERRIDE", json.dumps(chaos_runner.config(seed=9, keys=2).to_dict()))

@pytest.mark.chaos(system="raft", time_limt=5)
def test_typo(chaos):
    pass
"""


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One small pytest session (a subprocess, so the plugin loads from its entry
    point) whose tests only build configs: stdout and the folder it ran in."""
    where = tmp_path_factory.mktemp("inline")
    (where / "test_inline.py").write_text(INLINE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
         "--basetemp", str(where / "bt"), "-rA", "test_inline.py",
         "--chaos-time-limit", "9", "--chaos-seed", "5", "--chaos-system", "raft",
         "--chaos-store", "runs"],
        check=False, cwd=where, capture_output=True, text=True, timeout=180)
    return where, done.stdout + done.stderr


def printed(out: str, tag: str) -> dict:
    return json.loads(next(line.split(" ", 1)[1] for line in out.splitlines()
                           if line.startswith(tag + " ")))


def test_plugin_is_registered_through_the_entry_point(inline: tuple[Path, str]) -> None:
    _where, out = inline
    assert "plugins: " in out and "consensus-harness" in out


def test_options_layer_marker_command_line_parameters_in_that_order(
        inline: tuple[Path, str]) -> None:
    where, out = inline
    assert "PASSED test_inline.py::test_layers[paxos-2]" in out, out
    cfg, override = printed(out, "CONFIG"), printed(out, "OVERRIDE")
    assert cfg["nodes"] == 3 and cfg["keys"] == 4  # module marker
    assert cfg["nemesis"] == "partition" and cfg["bugs"] == ["early-ack"]  # the test's marker
    assert cfg["ops"] == ["read", "write"]
    assert cfg["rate"] == 80  # a pytest.param's marker beats the test's
    assert cfg["time_limit"] == 9  # --chaos-time-limit beats the markers
    assert cfg["system"] == "paxos" and cfg["seed"] == 2  # parameters beat the command line
    assert cfg["store"] == str(where / "runs")  # relative to where pytest was started
    assert cfg["name"] == "test_layers[paxos-2]" and cfg["progress"] is False
    assert override["seed"] == 9 and override["keys"] == 2  # run()'s own arguments win


def test_unknown_marker_option_fails_the_test_with_one_line(inline: tuple[Path, str]) -> None:
    _where, out = inline
    assert "ERROR test_inline.py::test_typo" in out, out
    assert "test_typo: chaos marker: unknown chaos option 'time_limt'" in out
    assert "Traceback" not in out


def test_runner_config_uses_its_store_and_the_test_name(tmp_path: Path) -> None:
    class Item:
        name = "test_x[raft]"
        nodeid = "t.py::test_x[raft]"

    from harness.pytest_plugin import ChaosRunner

    runner = ChaosRunner(Item(), tmp_path / "bt" / "chaos", [("marker", {"nodes": 3})])  # type: ignore[arg-type]
    cfg = runner.config()
    assert cfg.store == str(tmp_path / "bt" / "chaos") and cfg.name == "test_x[raft]"


def test_normalise_accepts_friendly_spellings() -> None:
    assert normalise({"bug": "stale-read", "ops": "read, cas"}, "here") == {
        "bugs": ["stale-read"], "ops": ["read", "cas"]}
    assert normalise({"bugs": ("a", "b")}, "here") == {"bugs": ["a", "b"]}
    with pytest.raises(ValueError, match="here: unknown chaos option 'test_count'"):
        normalise({"test_count": 3}, "here")


def test_run_names_are_plain_folder_names() -> None:
    assert run_name("test_x[raft-partition-1]") == "test_x[raft-partition-1]"
    assert run_name("test_x[a/b c]") == "test_x[a-b-c]"
    assert run_name("..") == "chaos"
    assert len(run_name("t" * 500)) == 120


def fake_result(tmp_path: Path, verdict: str, anomalies: list[dict] | None = None) -> ChaosResult:
    run_dir = tmp_path / "store" / "t" / "20260101T000000"
    run_dir.mkdir(parents=True)
    (run_dir / "index.html").write_text("<html></html>")
    cfg = RunConfig(system="raft", nodes=3, time_limit=5, nemesis="partition", seed=4,
                    bugs=["early-ack"], store=str(tmp_path / "store"), name="t").resolved()
    results = {"verdict": verdict, "name": "t", "seed": 4, "counts": {
        "invoke": 12, "ok": 9, "fail": 2, "info": 1}, "duration_s": 5.0, "ops_per_s": 2.4,
        "latency_ms": {}, "checker": {"valid": verdict == "valid", "anomalies": anomalies or []},
        "command": " ".join(cfg.argv()), "notes": []}
    results = write_results(run_dir, results)
    code = {"valid": 0, "invalid": 1, "unknown": 3}[verdict]
    return ChaosResult(RunResult(verdict, code, run_dir, cfg, results, run_dir / "index.html"))


def test_assert_valid_names_the_anomaly_and_the_report(tmp_path: Path) -> None:
    result = fake_result(tmp_path, "invalid", [{"key": "k7", "sentence": SENTENCE}])
    with pytest.raises(AssertionError) as err:
        result.assert_valid()
    message = str(err.value)
    assert message.splitlines()[0] == f"anomaly on key k7: {SENTENCE}"
    assert f"report: {result.run_dir / 'index.html'}" in message
    assert "repeat: harness run --nodes 3 --time-limit 5 --nemesis partition --seed 4" in message
    assert result.assert_anomaly() is result
    # a bare `assert chaos.valid` shows the repr: verdict, anomaly, report in one line
    assert SENTENCE in repr(result) and "INVALID" in repr(result)
    assert str(result.run_dir / "index.html") in repr(result)


def test_assert_anomaly_fails_on_a_valid_run(tmp_path: Path) -> None:
    result = fake_result(tmp_path, "valid")
    assert result.assert_valid() is result
    with pytest.raises(AssertionError, match="expected an anomaly but the verdict is valid "
                       r"\(9 ok, 2 fail, 1 info\)\nreport: "):
        result.assert_anomaly()


def test_unknown_verdict_is_not_valid(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="could not decide"):
        fake_result(tmp_path, "unknown").assert_valid()


def test_chaos_table_has_one_row_per_run_and_the_test_outcomes(tmp_path: Path) -> None:
    result = fake_result(tmp_path, "invalid", [{"key": "k7", "sentence": SENTENCE}])
    table = chaos_table([("ex.py::test_bug[raft]", "passed", result.run_dir),
                         ("ex.py::test_ok[raft]", "failed", result.run_dir)])
    assert "passed    invalid" in table and "failed    invalid" in table
    assert str(result.run_dir / "index.html") in table
    assert table.splitlines()[-1] == "2 chaos runs in 2 tests; 1 tests passed, 1 failed"


def test_chaos_table_shows_a_run_of_a_newer_schema_without_reading_it(tmp_path: Path) -> None:
    result = fake_result(tmp_path, "valid")
    newer = {**json.loads((result.run_dir / "results.json").read_text()), "schema": SCHEMA + 1}
    (result.run_dir / "results.json").write_text(json.dumps(newer))
    table = chaos_table([("ex.py::test_ok[raft]", "passed", result.run_dir)])
    assert "passed    ?" in table, table


SIMULATED = """
import pytest

@pytest.mark.chaos(sim=True, nodes=3, time_limit=10, seed=4)
def test_correct_raft_is_valid_in_simulation(chaos):
    chaos.assert_valid()
    print("SIMULATED", chaos.results.get("simulated"), chaos.run_dir)

@pytest.mark.chaos(nodes=3, time_limit=10, bug="early-ack", system="raft")
def test_a_bug_is_found_in_simulation(chaos_runner):
    found = chaos_runner.find_anomaly(attempts=10)
    print("FOUND", found.results.get("simulated"), found.verdict)

@pytest.mark.chaos(nodes=3, time_limit=3, seed=10, workers=2)
def test_a_sweep_runs_every_seed_once(chaos_runner):
    runs = chaos_runner.sweep(4)
    print("SWEEP", [r.config.seed for r in runs], sorted({r.verdict for r in runs}))

def test_a_sweep_takes_any_executor(chaos_runner):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        runs = chaos_runner.sweep(3, executor=pool, nodes=3, time_limit=3, seed=20)
    print("EXECUTOR", [r.config.seed for r in runs], sorted({r.verdict for r in runs}))
"""


@pytest.mark.timeout(300)
def test_chaos_runs_can_be_simulated(tmp_path: Path) -> None:
    (tmp_path / "test_sim.py").write_text(SIMULATED)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
         "--basetemp", str(tmp_path / "bt"), "-rA", "-s", "test_sim.py", "--chaos-sim",
         "--chaos-store", "runs"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "SIMULATED True" in out
    assert "FOUND True invalid" in out  # --chaos-sim made the unmarked test simulated too
    assert "SWEEP [10, 11, 12, 13] ['valid']" in out  # each seed once, in seed order
    assert "EXECUTOR [20, 21, 22] ['valid']" in out
    runs = [p.parent for p in (tmp_path / "runs").rglob("results.json")]
    assert runs and all(json.loads((r / "results.json").read_text())["simulated"] for r in runs)
