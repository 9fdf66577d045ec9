"""RunConfig, the seeded generator and the recorder: pure parts of `harness run`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.config import ConfigError, RunConfig
from harness.generator import Invocation, OpGenerator
from harness.recorder import Clock, Recorder
from harness.run_cli import config_from_args


def ops_of(seed: int, slot: int, n: int = 200, **kw) -> list[tuple]:
    gen = OpGenerator(seed, slot, keys=kw.get("keys", 4), ops=kw.get("ops", ["read", "write", "cas"]),
                      concurrency=kw.get("concurrency", 6), rate=kw.get("rate", 100))
    out = []
    for _ in range(n):
        op = gen.next_op()
        out.append((op.f, op.key, op.value[1] if op.f == "cas" else op.value, gen.gap()))
    return out


def test_the_same_seed_gives_the_same_operations_and_pacing() -> None:
    assert ops_of(7, 0) == ops_of(7, 0)
    assert ops_of(7, 0) != ops_of(8, 0)
    assert ops_of(7, 0) != ops_of(7, 1)


def test_written_values_are_unique_across_workers() -> None:
    written = [v for slot in range(6) for f, _, v, _ in ops_of(3, slot) if f != "read"]
    assert len(written) == len(set(written)) > 300


def test_the_rate_is_a_total_over_workers() -> None:
    gaps = [g for slot in range(10) for *_, g in ops_of(1, slot, 500, concurrency=10, rate=100)]
    mean = sum(gaps) / len(gaps)
    assert 0.09 < mean < 0.11, "10 workers at 100 ops/s in total: one op per 0.1 s each"
    assert all(g == 0 for *_, g in ops_of(1, 0, rate=0))


def test_cas_expects_what_the_worker_last_saw() -> None:
    gen = OpGenerator(1, 0, keys=1, ops=["cas"], concurrency=1, rate=0)
    first = gen.next_op()
    assert first.value[0] is None
    gen.observe(first, "ok", None)
    assert gen.next_op().value[0] == first.value[1]
    assert first.request() == {"op": "cas", "key": "k0", "expected": None, "value": first.value[1]}

    shared: dict = {}
    a, b = (OpGenerator(1, slot, keys=1, ops=["write", "cas"], concurrency=2, rate=0, seen=shared)
            for slot in (0, 1))
    write = Invocation("write", "k0", 12345)
    a.observe(write, "ok", None)
    assert all(op.value[0] == 12345 for op in (b.next_op() for _ in range(20)) if op.f == "cas"), \
        "workers of one run share what they saw"


def test_config_round_trips_through_json_and_resolves_defaults() -> None:
    cfg = RunConfig(nodes=3).resolved()
    assert cfg.concurrency == 6 and cfg.name == "raft" and isinstance(cfg.seed, int)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # A known bug brings its own fault mix and load (harness/bugs.py); it must
    # round-trip the same way, so a saved config.json repeats the run.
    buggy = RunConfig(nodes=3, bugs=["stale-read"]).resolved()
    assert RunConfig.from_dict(json.loads(json.dumps(buggy.to_dict()))) == buggy
    with pytest.raises(ConfigError, match="unknown run option"):
        RunConfig.from_dict({"nodez": 3})


@pytest.mark.parametrize("kw, message", [
    ({"nodes": 0}, "--nodes must be at least 1"),
    ({"time_limit": 0}, "--time-limit must be positive"),
    ({"ops": ["read", "append"]}, "unknown operation append"),
    ({"keys": 0}, "--keys"),
    ({"net": "carrier"}, "--net"),
    ({"name": "a/b"}, "--name"),
    ({"system": "'unclosed"}, "--system"),
    ({"read_mode": "lease"}, "--read-mode must be one of index, log"),
])
def test_bad_options_are_one_line_config_errors(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig(**kw).validate()
    assert "\n" not in str(info.value)


def test_the_recorded_command_line_repeats_the_run() -> None:
    cfg = RunConfig(system="paxos", nodes=3, time_limit=20, seed=7, nemesis="kill,pause",
                    bugs=["early-ack"], store="/tmp/s", net="direct", recovery_timeout=5,
                    check_time_limit=9, request_timeout=0.5, read_mode="log").resolved()
    argv = shlex.split(" ".join(cfg.argv()))
    assert "--read-mode log" in " ".join(argv)
    args = build_parser().parse_args(argv[1:])
    again = config_from_args(args).resolved()
    assert again == cfg


def test_read_mode_goes_into_the_cluster_options_only_when_chosen() -> None:
    assert "read_mode" not in RunConfig(bugs=["early-ack"]).cluster_options()  # the nodes' default
    assert RunConfig(read_mode="index", node_options={"max_batch": 1}).cluster_options() == {
        "max_batch": 1, "bugs": [], "read_mode": "index"}
    args = build_parser().parse_args(["run", "--read-mode", "log"])
    assert config_from_args(args).read_mode == "log"


def test_the_recorder_numbers_events_and_flushes_each_line(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "h.jsonl", Clock())
    rec.record({"process": 0, "type": "invoke", "f": "read", "key": "k0", "value": None})
    lines = (tmp_path / "h.jsonl").read_text().splitlines()  # readable before close
    assert json.loads(lines[0])["index"] == 0
    rec.nemesis("kill", ["n1"])
    rec.record({"process": 0, "type": "ok", "f": "read", "key": "k0", "value": None})
    rec.close()
    events = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [e["index"] for e in events] == [0, 1, 2]
    assert events[1] == {"index": 1, "time": events[1]["time"], "process": "nemesis",
                         "type": "info", "f": "kill", "value": ["n1"]}
    assert rec.counts == {"invoke": 1, "ok": 1, "fail": 0, "info": 0}


def test_result_anomalies_name_operations_by_id_and_carry_them_readable(tmp_path: Path) -> None:
    from testkit.synthetic import write_synthetic_run

    from harness.runner import RunResult

    run_dir = write_synthetic_run(tmp_path / "run", ops=300, violation=True)
    results = json.loads((run_dir / "results.json").read_text())
    result = RunResult("invalid", 1, run_dir, RunConfig(), results)
    [anomaly] = result.anomalies
    assert anomaly["ops"] == results["checker"]["anomalies"][0]["ops"]  # ids, as saved
    stale, missed = anomaly["operations"]
    assert stale == {**stale, "id": anomaly["ops"][0], "f": "read", "key": "k-stale",
                     "output": 1001, "type": "ok"}
    assert (missed["f"], missed["value"]) == ("write", 1002)
    assert result.operations[stale["id"]].output == 1001


def test_the_status_line_reads_faults_as_the_report_does() -> None:
    from harness.runner import Progress, _fault_label

    progress = Progress(enabled=False, time_limit=10)
    for f, value in [("kill", ["n2"]), ("partition", {"shape": "halves", "oneway": True}),
                     ("kill-end", ["n2"]), ("pause", ["n1", "n3"])]:
        progress.fault(f, value)
    assert [_fault_label(w.kind, w.value) for w in progress.faults.active] == [
        "partition halves one-way", "pause n1 n3"]
    progress.fault("pause-end", ["n3"])  # no window with that value: the oldest pause heals
    progress.fault("heal", None)  # a global heal closes what is left
    assert progress.faults.active == []


def test_the_summary_line_of_a_finding_names_its_kind_not_a_key_of_none() -> None:
    from harness.runner import describe

    finding = {"kind": "replicas-diverged", "finding": "replicas diverged", "key": None,
               "sentence": "n1 and n5 applied different commands by log index 464."}
    assert describe(finding) == ("replicas-diverged: n1 and n5 applied different commands "
                                 "by log index 464.")
    stale = {"kind": "non-linearizable", "key": "k3", "sentence": "read of k3 returned 4."}
    assert describe(stale) == "anomaly on key k3: read of k3 returned 4."
