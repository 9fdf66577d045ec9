"""``harness run --replay RUN_DIR``: the recorded fault operations, again.

A real run under the standard mix, then its replay: the same fault operations
in the same order, each start and end within 50 ms of the same offset (a
``leader`` target resolved again), the same workload seed, and a report that
says what it replayed. A replay of a history written by hand that pauses a
node it already killed shows the ineffective fault in results.json and on the
page. CLI: a folder that is not a run is one line, exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faults.plan import recorded_ops
from harness.config import RunConfig
from harness.runner import replay_config, run

REPO = Path(__file__).resolve().parent.parent
#: How close a replayed step must come to the recorded offset (s).
TOLERANCE_S = 0.05

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()
            if line.strip()]


def nemesis_steps(run_dir: Path) -> list[dict]:
    return [e for e in history(run_dir) if e.get("process") == "nemesis"]


def same_value(a: dict, b: dict) -> bool:
    """Equal, unless the op aimed at a role that may have moved."""
    role = a.get("target") == "leader" or (
        a["f"] == "partition" and isinstance(a["value"], dict)
        and a["value"].get("shape") == "leader")
    return role or a["value"] == b["value"]


def test_a_replay_repeats_the_fault_operations_at_the_same_offsets(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = run(RunConfig(system="raft", nodes=3, time_limit=6, nemesis="kill,pause,partition",
                          nemesis_interval=1.2, seed=3, store=str(store), progress=False,
                          net="proxy"))
    again = run(replay_config(first.run_dir, store=str(store), progress=False))
    assert again.config.seed == first.config.seed and again.config.replay == str(first.run_dir)
    a, b = recorded_ops(history(first.run_dir)), recorded_ops(history(again.run_dir))
    assert len(a) >= 4, a
    assert [(op["f"], op.get("target")) for op in a] == [(op["f"], op.get("target")) for op in b]
    for x, y in zip(a, b):
        assert same_value(x, y), (x, y)
        assert abs(x["at"] - y["at"]) <= TOLERANCE_S, (x, y)
    # every step the first run ended before its load stopped ends at the same offset
    ends_a = [e for e in nemesis_steps(first.run_dir) if e["f"].endswith("-end")]
    ends_b = [e for e in nemesis_steps(again.run_dir) if e["f"].endswith("-end")]
    limit = first.results["duration_s"] - 0.3
    timed = [(x, y) for x, y in zip(ends_a, ends_b) if x["at"] < limit]
    assert timed and all(x["f"] == y["f"] and abs(x["at"] - y["at"]) <= TOLERANCE_S
                         for x, y in timed), timed
    # the report says what it replayed
    replay = again.results["replay"]
    assert replay["run"] == str(first.run_dir) and replay["ops"] == len(a)
    assert first.results["replay"] is None
    assert again.report is not None and "replay of" in again.report.read_text()


def test_a_pause_of_a_dead_node_is_flagged_in_results_and_on_the_page(tmp_path: Path) -> None:
    store = tmp_path / "store"
    source = tmp_path / "handmade"
    source.mkdir()
    cfg = RunConfig(system="raft", nodes=3, time_limit=3, nemesis="kill,pause", seed=1,
                    store=str(store), progress=False, net="proxy").resolved()
    (source / "config.json").write_text(json.dumps(cfg.to_dict()))
    steps = [("kill", ["n2"], 0.3), ("pause", ["n2"], 0.8), ("pause-end", ["n2"], 1.2),
             ("kill-end", ["n2"], 1.8)]
    (source / "history.jsonl").write_text("".join(
        json.dumps({"index": i, "time": int(at * 1e9), "process": "nemesis", "type": "info",
                    "f": f, "value": v, "at": at, **({} if f.endswith("-end") else
                                                     {"target": v})}) + "\n"
        for i, (f, v, at) in enumerate(steps)))
    result = run(replay_config(source, store=str(store), progress=False))
    flagged = result.results["ineffective_faults"]
    assert [(x["kind"], x["value"]) for x in flagged] == [("pause", ["n2"])], flagged
    assert "n2 was not running" in flagged[0]["why"]
    kill_end = next(e for e in nemesis_steps(result.run_dir) if e["f"] == "kill-end")
    assert kill_end["evidence"]["effective"] is True, "the kill itself bit"
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["ineffective_faults"] == flagged
    page = result.report.read_text() if result.report else ""
    assert "ineffective fault" in page and "n2 was not running" in page


@pytest.mark.timeout(60)
def test_replay_of_a_folder_that_is_not_a_run_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--replay", str(tmp_path),
                           "--store", str(tmp_path / "store")],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=50)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--replay" in lines[0], proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("history,says", [
    (None, "no history.jsonl"),
    ("", "recorded no fault operations to replay"),
])
def test_replay_of_a_run_without_faults_to_replay_is_refused(tmp_path: Path, history: str | None,
                                                             says: str) -> None:
    # A replay that replays nothing would be a fault-free run passed off as a replay.
    from harness.config import RunConfig

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(RunConfig(nodes=3).to_dict()))
    if history is not None:
        (run_dir / "history.jsonl").write_text(history)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--replay", str(run_dir),
                           "--store", str(tmp_path / "store")],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=50)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr


@pytest.mark.timeout(60)
def test_replay_refuses_options_it_would_ignore(tmp_path: Path) -> None:
    # The replay repeats the recorded settings: a --seed given beside it would be ignored.
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--replay", str(tmp_path),
                           "--seed", "5", "--time-limit", "3"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=50)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--seed, --time-limit" in lines[0], proc.stderr
