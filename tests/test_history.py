"""Reading histories (JSON Lines and Jepsen/Knossos EDN) and pairing ops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker import check_events, check_file
from checker.history import HistoryError, pair, parse_edn, read_history, read_ops
from harness.cli import main

INF = float("inf")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _jsonl(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


GOOD = [
    {"index": 0, "time": 10, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1},
    {"index": 1, "time": 11, "process": "nemesis", "type": "info", "f": "kill", "value": ["n1"]},
    {"index": 2, "time": 12, "process": 0, "type": "ok", "f": "write", "key": "a", "value": 1},
    {"index": 3, "time": 13, "process": 1, "type": "invoke", "f": "read", "key": "a", "value": None},
    {"index": 4, "time": 14, "process": 1, "type": "ok", "f": "read", "key": "a", "value": 1},
    {"index": 5, "time": 15, "process": 2, "type": "invoke", "f": "cas", "key": "a", "value": [1, 2]},
]


def test_jsonl_round_trip_and_pairing(tmp_path):
    p = _write(tmp_path, "h.jsonl", _jsonl(GOOD) + "\n")
    events = read_history(p)
    assert [e["index"] for e in events] == [0, 1, 2, 3, 4, 5]
    ops = pair(events)
    assert [(o.f, o.type) for o in ops] == [("write", "ok"), ("read", "ok"), ("cas", "info")]
    assert ops[1].output == 1 and ops[0].ret == 2 and ops[2].ret == INF  # no completion: info
    assert check_file(p).valid is True


def test_bad_json_names_file_and_line(tmp_path):
    p = _write(tmp_path, "h.jsonl", _jsonl(GOOD[:2]) + "{not json\n")
    with pytest.raises(HistoryError) as exc:
        read_history(p)
    assert str(exc.value).startswith(f"{p}:3: not JSON")


def test_missing_type_names_line(tmp_path):
    p = _write(tmp_path, "h.jsonl", _jsonl(GOOD[:1]) + '{"process": 1, "f": "read"}\n')
    with pytest.raises(HistoryError, match=r":2: 'type' must be one of"):
        read_history(p)


def test_completion_without_invoke(tmp_path):
    p = _write(tmp_path, "h.jsonl", _jsonl([GOOD[0], GOOD[2], GOOD[2]]))
    with pytest.raises(HistoryError, match=r"h.jsonl:3: ok for process 0 with no open invoke"):
        check_file(p)


def test_a_second_invoke_turns_the_open_operation_into_info():
    # The earlier write may take effect later or never; the new one is open.
    again = {**GOOD[0], "index": 1, "time": 11, "value": 5}
    done = {**GOOD[2], "index": 2, "time": 12, "value": 5}
    ops = pair([GOOD[0], again, done])
    assert [(o.id, o.type, o.value, o.ret, o.end) for o in ops] == [
        (0, "info", 1, INF, None), (1, "ok", 5, 2, 12)]
    assert ops[0].complete is None and ops[1].complete is done


def test_pairing_rules():
    ops = pair([
        {"process": 0, "type": "invoke", "f": "read", "key": "a", "value": None, "time": 5},
        {"process": "nemesis", "type": "info", "f": "kill", "value": ["n1"], "time": 6},
        {"process": 3, "type": "info", "f": "read", "value": None},  # no open invoke: a note
        {"process": 0, "type": "info", "f": "read", "value": None, "time": 9, "node": "n2",
         "error": "timeout"},
    ])
    assert len(ops) == 1
    op = ops[0]
    assert (op.type, op.call, op.ret, op.start, op.end, op.latency) == ("info", 0, INF, 5, 9, 4)
    assert (op.node, op.error, op.definite) == ("n2", "timeout", False)
    with pytest.raises(HistoryError, match=r"<events>:2: completion f 'read' does not match"):
        pair([GOOD[0], {**GOOD[2], "f": "read"}])
    with pytest.raises(HistoryError, match=r"<events>:2: missing 'process'"):
        pair([GOOD[0], {"type": "ok", "f": "write"}])
    with pytest.raises(HistoryError, match=r"<events>:1: unknown event type 'done'"):
        pair([{**GOOD[0], "type": "done"}])


def test_op_is_immutable_and_compares_without_its_events():
    a, b = pair([GOOD[0], GOOD[2]])[0], pair([dict(GOOD[0]), {**GOOD[2], "extra": 1}])[0]
    assert a == b and hash(a) == hash(b) and "invoke" not in repr(a)
    with pytest.raises(AttributeError):
        a.type = "fail"  # type: ignore[misc]
    assert not hasattr(a, "__dict__")


def test_missing_file():
    with pytest.raises(HistoryError, match="no such file"):
        read_history("/nonexistent/history.jsonl")


EDN_LINES = """\
{:type :invoke, :f :write, :value 3, :process 0, :time 100, :index 0}
{:type :info, :f :start, :value nil, :process :nemesis, :time 150, :index 1}
{:type :ok, :f :write, :value 3, :process 0, :time 200, :index 2}
{:type :invoke, :f :read, :value nil, :process 1, :time 300, :index 3}
{:type :ok, :f :read, :value 4, :process 1, :time 400, :index 4}
"""


def test_edn_one_map_per_line(tmp_path):
    p = _write(tmp_path, "history.edn", EDN_LINES)
    events = read_history(p)
    assert events[0]["type"] == "invoke" and events[0]["f"] == "write" and events[0]["value"] == 3
    assert events[1]["process"] == "nemesis"
    res = check_file(p, "cas-register")
    assert res.valid is False
    assert "no operation ever wrote 4" in res.anomalies[0].sentence


def test_edn_vector_tagged_and_nested():
    text = """; knossos style
    [#jepsen.history.Op{:process 0, :type :invoke, :f :cas, :value [1 2] :index 0}
     {:process 0, :type :fail, :f :cas, :value [1 2], :error [:temporarily-unavailable nil]}
     {:process 1 :type :invoke :f :txn :value [[:read :x nil] [:write :y 2]] #_ {:ignored 1}}
     {:process 1 :type :ok :f :txn :value [[:read :x 0] [:write :y 2]] :note "a \\"q\\""}]"""
    events = parse_edn(text, "x.edn")
    assert [e["type"] for e in events] == ["invoke", "fail", "invoke", "ok"]
    assert events[1]["error"] == ["temporarily-unavailable", None]
    assert events[3]["value"] == [["read", "x", 0], ["write", "y", 2]]
    assert events[3]["note"] == 'a "q"'
    assert check_events(events[2:], "multi-register", initial={"x": 0, "y": 0}).valid is True


def test_edn_errors_name_the_line():
    with pytest.raises(HistoryError, match=r"x.edn:2: unbalanced"):
        parse_edn("{:type :invoke :process 0 :f :read}\n]", "x.edn")
    with pytest.raises(HistoryError, match=r"x.edn:1: '\{' is never closed"):
        parse_edn("{:type :invoke", "x.edn")
    with pytest.raises(HistoryError, match=r"x.edn:1: expected an operation map"):
        parse_edn("[1 2]", "x.edn")


# --------------------------------------------------------------------------- the command


def test_cli_exit_codes(tmp_path, capsys):
    good = _write(tmp_path, "good.jsonl", _jsonl(GOOD))
    bad_events = [dict(e) for e in GOOD]
    bad_events[4]["value"] = 7
    bad = _write(tmp_path, "bad.jsonl", _jsonl(bad_events))
    broken = _write(tmp_path, "broken.jsonl", "nope\n")
    assert main(["check", str(good)]) == 0
    assert main(["check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "read of a returned 7" in out and "no operation ever wrote 7" in out
    assert main(["check", str(broken), str(good)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:1: not JSON" in err
    assert main(["check", str(tmp_path / "missing.jsonl")]) == 2


def test_cli_json_and_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _write(run, "history.jsonl", _jsonl(GOOD))
    _write(run, "metrics.jsonl", '{"kind": "status"}\n')  # not a history: skipped in a run folder
    assert main(["check", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["valid"] == 1 and doc["summary"]["files"] == 1
    f = doc["files"][0]
    assert f["path"].endswith("history.jsonl") and f["valid"] is True and f["seconds"] >= 0


def test_cli_counts_a_run_folders_durability_finding(tmp_path, capsys):
    """A run's history.jsonl whose fault evidence shows a node refusing to
    start after a power loss is invalid for `harness check` too, as for the
    run's results.json, although its operations are linearizable; a fault
    with nothing refused leaves it valid."""
    quiet = {"process": "nemesis", "type": "info", "f": "lose-unsynced-end", "time": 4_000_000_000,
             "value": {"nodes": ["n1"]}, "evidence": {"recovered": ["n1"]}}
    refused = {"process": "nemesis", "type": "info", "f": "lose-unsynced-end",
               "time": 5_000_000_000, "value": {"nodes": ["n2"]},
               "evidence": {"refused": {"n2": "meta file is corrupt: only 0 bytes"}}}
    ok_run = tmp_path / "ok"
    ok_run.mkdir()
    _write(ok_run, "history.jsonl", _jsonl([*GOOD, quiet]))
    assert main(["check", str(ok_run)]) == 0
    bad_run = tmp_path / "bad"
    bad_run.mkdir()
    _write(bad_run, "history.jsonl", _jsonl([*GOOD[:3], refused, *GOOD[3:]]))
    assert main(["check", str(bad_run)]) == 1
    out = capsys.readouterr().out
    assert "refused-after-power-loss: n2 refused to start after losing power" in out, out
    assert main(["check", str(bad_run), "--json"]) == 1
    f = json.loads(capsys.readouterr().out)["files"][0]
    assert f["valid"] is False and f["findings"] == 1
    assert f["anomalies"][-1]["kind"] == "refused-after-power-loss"
    # replicas that applied different commands at one index (faults/findings.py diverged)
    split = {"process": "nemesis", "type": "info", "f": "agreement-end", "time": 6_000_000_000,
             "value": {"index": 12, "nodes": ["n1", "n3"]},
             "evidence": {"reports": [{"node": "n1", "pid": 1, "hash": "aa"},
                                      {"node": "n3", "pid": 2, "hash": "bb"}]}}
    split_run = tmp_path / "split"
    split_run.mkdir()
    _write(split_run, "history.jsonl", _jsonl([*GOOD, split]))
    assert main(["check", str(split_run), "--json"]) == 1
    f = json.loads(capsys.readouterr().out)["files"][0]
    assert f["valid"] is False and f["anomalies"][-1]["kind"] == "replicas-diverged"


def test_cli_time_limit_gives_unknown(tmp_path, capsys):
    # A hard invalid history: many concurrent writes, one impossible read at the end.
    events = []
    n = 60
    for p in range(n):
        events.append({"process": p, "type": "invoke", "f": "write", "key": None, "value": p})
    for p in range(n):
        events.append({"process": p, "type": "ok", "f": "write", "key": None, "value": p})
    for p in range(n):
        events.append({"process": 100 + p, "type": "invoke", "f": "read", "key": None, "value": None})
    for p in range(n):
        events.append({"process": 100 + p, "type": "ok", "f": "read", "key": None, "value": p})
    h = _write(tmp_path, "hard.jsonl", _jsonl(events))
    assert main(["check", str(h), "--time-limit", "0.2"]) == 3
    assert "unknown" in capsys.readouterr().out


def test_jepsen_independent_keys(tmp_path, capsys):
    edn = """{:type :invoke, :f :write, :value [:k1 3], :process 0}
{:type :ok, :f :write, :value [:k1 3], :process 0}
{:type :invoke, :f :cas, :value [:k2 [nil 5]], :process 1}
{:type :fail, :f :cas, :value [:k2 [nil 5]], :process 1}
{:type :invoke, :f :read, :value [:k1 nil], :process 2}
{:type :ok, :f :read, :value [:k1 4], :process 2}
"""
    p = _write(tmp_path, "history.edn", edn)
    res = check_file(p, "kv", independent=True)
    assert res.valid is False and res.anomalies[0].key == "k1"
    assert main(["check", str(p), "--independent"]) == 1
    assert "read of k1 returned 4" in capsys.readouterr().out


def test_cli_folder_skips_non_histories_inside_run_folders(tmp_path, capsys):
    run = tmp_path / "store" / "r1"
    (run / "data" / "n1").mkdir(parents=True)
    _write(run, "history.jsonl", _jsonl(GOOD))
    _write(run, "net.jsonl", '{"msg": 1}\n')
    _write(run / "data" / "n1", "wal.jsonl", '{"term": 1}\n')
    _write(tmp_path, "other.jsonl", _jsonl(GOOD))
    assert main(["check", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(Path(f["path"]).name for f in doc["files"]) == ["history.jsonl", "other.jsonl"]


def test_a_manifest_in_a_parent_folder_changes_nothing(tmp_path, capsys):
    # If it were read, this manifest would check good.jsonl as a mutex (an error) and
    # expect it invalid. A verdict must not depend on a file the command was not given.
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"files": [{"file": "sub/good.jsonl", "model": "mutex", "expected_linearizable": False}]}))
    (tmp_path / "sub").mkdir()
    good = _write(tmp_path / "sub", "good.jsonl", _jsonl(GOOD))
    assert main(["check", str(good), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["files"][0]
    assert row["model"] == "kv" and "expected" not in row


def test_an_explicit_manifest_gives_model_semantics_and_expected_verdict(tmp_path, capsys):
    events = [{"process": 0, "type": "invoke", "f": "read", "key": None, "value": None},
              {"process": 0, "type": "ok", "f": "read", "key": None, "value": 0}]
    _write(tmp_path, "h.jsonl", _jsonl(events))
    m = _write(tmp_path, "corpus.json", json.dumps({"files": [
        {"file": "h.jsonl", "model": "cas-register", "initial_value": 0,
         "semantics": {"nil_read": "wildcard"}, "expected_linearizable": False}]}))
    assert main(["check", str(tmp_path / "h.jsonl"), "--manifest", str(m), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][0]["model"] == "cas-register" and doc["files"][0]["expected"] is False
    assert doc["summary"]["mismatches"] == [str(tmp_path / "h.jsonl")]


@pytest.mark.parametrize("text,says", [
    ("[1, 2]", 'expected a JSON object with a "files" list, not list'),
    ('{"files": [{"model": "kv"}]}', "files[0]: 'file' must be a path relative to the manifest"),
    ('{"files": [{"file": "h.jsonl", "model": "nope"}]}', "files[0]: 'model' must be one of"),
    ('{"files": [{"file": "h.jsonl", "model": ["kv"]}]}', "files[0]: 'model' must be one of"),
    ('{"files": [{"file": "h.jsonl", "semantics": {"fail_cas": ["x"]}}]}',
     "files[0]: semantics fail_cas must be one of"),
    ('{"files": [{"file": "h.jsonl", "semantics": {"fail_cas": "x"}}]}',
     "files[0]: semantics fail_cas must be one of noeffect, observed, not 'x'"),
    ("{not json", "not JSON"),
    (None, "no such file"),
])
def test_a_bad_manifest_is_one_line_and_exit_2(tmp_path, capsys, text, says):
    good = _write(tmp_path, "h.jsonl", _jsonl(GOOD))
    m = tmp_path / "manifest.json"
    if text is not None:
        m.write_text(text)
    assert main(["check", str(good), "--manifest", str(m)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"harness check: error: --manifest {m}: ") and says in err, err


def test_a_torn_last_line_is_dropped_but_a_complete_bad_line_is_an_error(tmp_path):
    # A SIGKILLed recorder can leave half a line at the end; nothing else is forgiven.
    good = '{"index": 0, "time": 1, "process": 0, "type": "invoke", "f": "read", "key": "k"}\n'
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + '{"index": 1, "time": 2, "proc')
    assert [e["index"] for e in read_history(torn)] == [0]
    whole = tmp_path / "whole.jsonl"
    whole.write_text(good + '{"index": 1, "time": 2, "proc\n')
    with pytest.raises(HistoryError):
        read_history(whole)


def _write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_read_ops_pairs_as_pair_does_over_generated_histories(tmp_path):
    """The fast reading (typed structs, its own pairing loop) gives the very
    operations of pair(read_history(...)): ids, fields, event indices, over
    histories with info, fails, unfinished invokes (completions dropped, so a
    second invoke on a process turns the first into info) and nemesis events."""
    import random

    from testkit.histories import generate

    for seed in range(60):
        rng = random.Random(seed)
        ev = generate(rng, rng.choice([10, 50, 200]), processes=rng.choice([2, 5]),
                      keys=rng.choice([1, 3]), info_rate=0.2, fail_rate=0.1)
        ev = [e for e in ev if e["type"] == "invoke" or rng.random() > 0.05]
        ev.insert(len(ev) // 2, {"process": "nemesis", "type": "info", "f": "start",
                                 "value": None})
        p = _write_jsonl(tmp_path / f"h{seed}.jsonl", ev)
        fast, full = read_ops(p), pair(read_history(p))
        assert fast is not None
        assert fast == full
        assert [(o.invoke_index, o.complete_index, o.start, o.end) for o in fast] == \
            [(o.invoke_index, o.complete_index, o.start, o.end) for o in full]


@pytest.mark.parametrize("lines", [
    ['{"process": 0, "type": "ok", "f": "read", "value": 1}'],  # ok without invoke
    ['{"process": 0, "type": "invoke", "f": "read"}', '{"process": 0, "type": "ok", "f": "write"}'],
    ['{"process": 0, "type": "nope", "f": "read"}'],
    ['{"process": 0, "type": "invoke"}'],  # no f
    ['{"process": 0, "type": "invoke", "f": "read"}', '', '{"process": 0, "type": "ok", "f": "read"}'],
    ['[1, 2]'],
])
def test_read_ops_leaves_anything_unusual_to_the_full_reading(tmp_path, lines):
    """None, so check_file reads it with read_history/pair, which name the line."""
    p = tmp_path / "h.jsonl"
    p.write_text("\n".join(lines) + "\n")
    assert read_ops(p) is None


def test_check_file_fast_path_names_a_bad_line_as_before(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"process": 0, "type": "invoke", "f": "read", "key": "a"}\n'
                 '{"process": 0, "type": "ok", "f": "write", "key": "a"}\n')
    with pytest.raises(HistoryError, match=r"h.jsonl:2: completion f"):
        check_file(p)


def test_an_unhashable_type_is_named_with_its_line_not_a_crash(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"index": 0, "time": 1, "process": 0, "type": [1], "f": "read", "key": "k"}\n')
    with pytest.raises(HistoryError, match=r"h.jsonl:1: 'type' must be one of"):
        read_history(p)
