"""`harness shrink` of a node command's run on real processes (harness/shrink.py's
RealProcesses): a Maelstrom lin-kv node with stale reads (tests/maelstrom_nodes/lin_kv.py
--bug) fails a real run; shrinking it with --budget keeps a smaller real run that still
fails, labelled best effort; without --budget it is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE = f"maelstrom:{sys.executable} {ROOT / 'tests' / 'maelstrom_nodes' / 'lin_kv.py'} --bug"


def folder_of(out: subprocess.CompletedProcess) -> Path:
    lines = [line.split(": ", 1)[1] for line in out.stdout.splitlines()
             if line.startswith("run folder: ")]
    assert lines, out.stdout + out.stderr
    return Path(lines[0])


def harness(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # ~15 s quiet; at load ~20 the buggy node may see too few reads to fail
@pytest.mark.timeout(240)
def test_a_command_run_shrinks_on_real_processes_best_effort(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "store"
    for seed in ("1", "2", "3"):  # on a loaded machine a short run may see too few reads
        run = harness("run", "--system", NODE, "--workload", "lin-kv", "--nodes", "3",
                      "--time-limit", "1.5", "--nemesis-interval", "0.5", "--seed", seed,
                      "--store", str(store), "--no-progress", timeout=90)
        if run.returncode == 1:
            break
    assert run.returncode == 1, run.stdout + run.stderr  # the stale reads are found
    original = folder_of(run)
    before = json.loads((original / "results.json").read_text())

    from harness.cli import main

    assert main(["shrink", str(original)]) == 2  # a real search needs a time
    err = capsys.readouterr().err
    assert "--budget" in err and len(err.strip().splitlines()) == 1

    out = harness("shrink", str(original), "--budget", "12", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("best effort: shrunk on real processes")
    shrunk = folder_of(out)
    assert shrunk.parent.parent == store and shrunk.parent.name.endswith("-shrunk")
    after = json.loads((shrunk / "results.json").read_text())
    assert after["verdict"] == "invalid" and not after.get("simulated")
    assert after["shrunk"]["best_effort"] is True
    assert after["shrunk"]["from"] == str(original)
    assert after["shrunk"]["steps"][0].startswith("best effort")
    # smaller: a shorter run with fewer client operations (the first candidate halves it)
    assert after["counts"]["invoke"] < before["counts"]["invoke"]
    assert json.loads((shrunk / "config.json").read_text())["time_limit"] < 1.5
    assert "best effort" in (shrunk / "index.html").read_text()
    assert original.exists() and json.loads((original / "results.json").read_text()) == before
