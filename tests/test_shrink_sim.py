"""`harness shrink` of a simulated run, end to end: a raft run with early-ack fails; its
shrunk run folder is no larger in faults or client operations, says where it came from,
keeps its operations as a small ``keep_ops`` mask, and `--sim --replay` of it fails again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def harness(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=timeout)


def folder_of(out: subprocess.CompletedProcess) -> Path:
    lines = [line.split(": ", 1)[1] for line in out.stdout.splitlines()
             if line.startswith("run folder: ")]
    assert lines, out.stdout + out.stderr
    return Path(lines[-1])


@pytest.mark.slow  # ~30 s of CPU: a whole 60 s-budget search
@pytest.mark.timeout(300)
def test_a_simulated_run_shrinks_to_a_no_larger_story_that_replays(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run = harness("run", "--sim", "--system", "raft", "--bug", "early-ack", "--seed", "0",
                  "--time-limit", "10", "--store", str(store), "--no-progress", timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    original = folder_of(run)
    before = json.loads((original / "results.json").read_text())
    out = harness("shrink", str(original), "--budget", "60", timeout=200)
    assert out.returncode == 0, out.stdout + out.stderr
    shrunk = folder_of(out)
    results = json.loads((shrunk / "results.json").read_text())
    assert results["verdict"] == "invalid"
    assert results["shrunk"]["from"] == str(original)
    from reports.ledger import anomaly_kind

    # the kind it kept, which the ledger groups it under: the original's first
    assert results["shrunk"]["kind"] == anomaly_kind(before["checker"])
    n_faults = len(results["shrunk"]["faults"])
    before_faults = sum(1 for line in (original / "history.jsonl").read_text().splitlines()
                        if '"nemesis"' in line and '-end"' not in line)
    assert n_faults <= before_faults
    assert results["shrunk"]["client_ops"] <= before["counts"]["invoke"]
    mask = json.loads((shrunk / "config.json").read_text())["client_mask"]
    # only operations it kept: a few pairs, not the thousands of the original's skip list
    assert results["shrunk"]["client_ops"] <= len(mask["keep_ops"]) < before["counts"]["invoke"]
    replay = harness("run", "--sim", "--replay", str(shrunk), "--store", str(store),
                     "--no-progress", timeout=120)
    assert replay.returncode == 1, replay.stdout + replay.stderr
