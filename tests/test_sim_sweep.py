"""Simulated sweeps (harness/sweep.py): seeds over a pool, in seed order; failing
seeds keep their folder, passing ones only config.json and results.json;
--stop-on-fail; any concurrent.futures.Executor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import sweep
from harness.config import RunConfig
from harness.runner import run_series


def _cfg(tmp_path: Path, **kw: object) -> RunConfig:
    base = {"sim": True, "system": "raft", "bugs": ["early-ack"], "nodes": 3, "time_limit": 4.0,
            "nemesis_interval": 1.0, "store": str(tmp_path / "store"), "progress": False,
            "seed": 0, "test_count": 4, "workers": 2}
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


def test_failing_seeds_keep_their_folder_and_passing_ones_only_their_results(
        tmp_path: Path) -> None:
    rows = list(sweep.sweep(_cfg(tmp_path, test_count=8)))
    assert [r.seed for r in rows] == list(range(8))
    verdicts = [r.verdict for r in rows]
    # early-ack fails about a third of the seeds of this shape
    assert "invalid" in verdicts and "valid" in verdicts, verdicts
    for r in rows:
        files = {p.name for p in Path(r.run_dir).iterdir()}
        if r.verdict == "valid":
            assert files == {"config.json", "results.json"}
        else:
            assert {"history.jsonl", "results.json", "index.html", "metrics.jsonl"} <= files
    table = sweep.summary(rows, 1.0)
    bad = [r for r in rows if r.verdict == "invalid"]
    assert f"8 seeds: {8 - len(bad)} valid, {len(bad)} invalid" in table
    assert all(r.run_dir in table for r in bad)


def test_keep_all_keeps_every_folder(tmp_path: Path) -> None:
    rows = list(sweep.sweep(_cfg(tmp_path, seed=2, test_count=2, keep_all=True)))
    assert all((Path(r.run_dir) / "history.jsonl").exists() for r in rows)


def test_stop_on_fail_stops_soon_after_the_first_failure(tmp_path: Path) -> None:
    rows = list(sweep.sweep(_cfg(tmp_path, seed=0, test_count=40, workers=1, stop_on_fail=True)))
    first = next(i for i, r in enumerate(rows) if r.verdict == "invalid")
    assert len(rows) <= first + 2  # the run already queued finishes; no new one starts


def test_run_series_takes_any_executor_and_gives_run_results(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(run_series(_cfg(tmp_path, seed=2, test_count=2), executor=pool))
    assert [r.config.seed for r in results] == [2, 3]
    assert all(r.results["simulated"] is True for r in results)
