"""The recorder's merge of several writers: file order is time order, and only
what is final (older than every writer's horizon) is ever written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from harness.recorder import Clock, Recorder, frame, json_value, op_text


@pytest.mark.parametrize("event", [
    {"time": 5, "process": 3, "type": "invoke", "f": "cas", "key": "k2", "value": [4, 9]},
    {"time": 7, "process": 0, "type": "ok", "f": "read", "key": "k0", "value": None, "node": "n1"},
    {"time": 9, "process": 1, "type": "info", "f": "write", "key": "k\"é\n", "value": True,
     "node": "n2", "error": "timeout"},
    {"time": 2, "process": 2, "type": "ok", "f": "read", "key": "k1",
     "value": {"a": [1.5, "x"]}, "node": "n3"},
    {"time": 3, "process": 2, "type": "fail", "f": "read", "key": "k1", "value": -7,
     "error": "cas_mismatch"},
    {"time": 4, "process": 2, "type": "invoke", "f": "cas", "key": "k1", "value": [None, 8]},
    {"time": 4, "process": 2, "type": "ok", "f": "cas", "key": "k1", "value": [True, 8]},
    {"time": 4, "process": 2, "type": "ok", "f": "cas", "key": "k1", "value": [1, 2.5]},
])
def test_op_text_is_exactly_what_json_dumps_writes(event: dict) -> None:
    text = op_text(event["time"], event["process"], event["type"], event["f"],
                   json_value(event["key"]), event["value"],
                   json_value(event["node"]) if "node" in event else None, event.get("error"))
    assert '{"index": 4, ' + text == json.dumps({"index": 4, **event})


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _batch(times: list[int], horizon: int, process: int) -> bytes:
    texts = [op_text(t, process, "invoke", "read", '"k0"', None) for t in times]
    return frame(horizon, [len(times), 0, 0, 0], times, texts)


def test_writers_are_merged_by_time_and_held_back_until_every_horizon_passes(
        tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    rec = Recorder(path, Clock(start_ns=time.monotonic_ns() - 10**12))  # own events at ~1000 s
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    a, b = rec.attach(a_r), rec.attach(b_r)
    os.write(a_w, _batch([10, 50, 90], 100, process=1))
    _wait(lambda: a.horizon == 100, "writer a's horizon")
    rec.flush()
    assert path.read_text() == "", "b has said nothing: even a's oldest event may not be first"
    rec.nemesis("kill", ["n1"])  # this process's own event, at ~1000 s
    os.write(b_w, _batch([20, 95, 120], 200, process=2))
    _wait(lambda: b.horizon == 200, "writer b's horizon")
    rec.flush()
    assert [e["time"] for e in _lines(path)] == [10, 20, 50, 90, 95]  # below min(100, 200)
    os.close(a_w)  # EOF: a is done, so only b's horizon holds events back
    _wait(lambda: a.done, "a's EOF")
    rec.flush()
    assert [e["time"] for e in _lines(path)] == [10, 20, 50, 90, 95, 120]
    os.write(b_w, _batch([], 10**13, process=2))  # b's horizon passes the nemesis event
    _wait(lambda: b.horizon == 10**13, "writer b's new horizon")
    rec.flush()
    events = _lines(path)
    assert events[-1]["process"] == "nemesis" and events[-1]["f"] == "kill"
    assert [e["index"] for e in events] == list(range(len(events)))
    assert rec.counts["invoke"] == 6
    os.close(b_w)
    rec.close()
    os.close(a_r)
    os.close(b_r)


def test_record_without_writers_writes_through_and_close_writes_what_was_sent(
        tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    rec = Recorder(path, Clock())
    rec.record({"process": 0, "type": "invoke", "f": "read", "key": "k0", "value": None})
    assert len(path.read_text().splitlines()) == 1  # written before record returned
    r, w = os.pipe()
    rec.attach(r)
    rec.record({"process": 0, "type": "ok", "f": "read", "key": "k0", "value": None})
    rec.flush()
    assert len(path.read_text().splitlines()) == 1, "a live writer's horizon (0) holds it back"
    t = rec.now()  # a worker attached now stamps times from now on
    os.write(w, _batch([t + 1, t + 2], t + 3, process=5))
    _wait(lambda: rec.counts["invoke"] == 3, "the batch")
    rec.close()  # the run is over: everything received is final
    events = _lines(path)
    assert len(events) == 4
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    os.close(w)
    os.close(r)


def test_a_listener_gets_each_written_event_once_in_file_order(tmp_path: Path) -> None:
    seen: list[dict] = []
    rec = Recorder(tmp_path / "h.jsonl", Clock())
    rec.add_listener(seen.extend)
    for i in range(5):
        rec.record({"process": i, "type": "invoke", "f": "read", "key": "k0", "value": None})
    rec.close()
    assert seen == _lines(tmp_path / "h.jsonl")
    assert [e["index"] for e in seen] == list(range(5))
