"""The checker's semantics, explanations and result shape, on small histories."""

from __future__ import annotations

from checker import KV, MODELS, CheckResult, check_events
from checker.history import Op, pair
from checker.model import Model, by_key


def h(*ops: tuple) -> list[dict]:
    """Events from (process, type, f, key, value, time_s) tuples."""
    return [
        {"index": i, "process": p, "type": t, "f": f, "key": k, "value": v, "time": int(s * 1e9)}
        for i, (p, t, f, k, v, s) in enumerate(ops)
    ]


def test_stale_read_is_explained_with_times():
    ev = h(
        (0, "invoke", "write", "k3", 7, 10.0), (0, "ok", "write", "k3", 7, 10.5),
        (1, "invoke", "write", "k3", 9, 11.0), (1, "ok", "write", "k3", 9, 11.9),
        (2, "invoke", "read", "k3", None, 12.0), (2, "ok", "read", "k3", 7, 12.4),
    )
    res = check_events(ev)
    assert res.valid is False
    a = res.anomalies[0]
    assert a.key == "k3"
    assert a.sentence == ("read of k3 returned 7 at 12.400 s, but write of 9 completed at "
                          "11.900 s and no later write of 7 exists")
    # anomalies name operations by Op.id: positions in pair(history)
    ops = pair(ev)
    assert a.ops[0] == 2 and ops[a.ops[0]].f == "read"
    assert [ops[i].f for i in a.prefix] == ["write", "write"] and a.prefix == [0, 1]
    d = res.to_dict()
    assert set(d) >= {"valid", "seconds", "model", "anomalies"}
    assert d["anomalies"][0] == {"kind": "non-linearizable", "key": "k3", "sentence": a.sentence,
                                 "ops": [2], "prefix": [0, 1]}
    # spelled out for people (harness check --json): the operations, readable
    stuck = res.to_dict(res.history)["anomalies"][0]["operations"][0]
    assert stuck["id"] == 2 and stuck["f"] == "read" and stuck["output"] == 7
    assert (stuck["start"], stuck["end"], stuck["type"]) == (12_000_000_000, 12_400_000_000, "ok")


def test_fail_has_no_effect_and_info_may_take_effect_later_or_never():
    base = [(0, "invoke", "write", "a", 1, 1), (1, "invoke", "write", "a", 2, 2)]
    # a failed write never happened: reading its value is a violation
    assert check_events(h(*base, (1, "fail", "write", "a", 2, 3), (0, "ok", "write", "a", 1, 4),
                          (2, "invoke", "read", "a", None, 5), (2, "ok", "read", "a", 2, 6))).valid is False
    # an info write may take effect long after the client gave up...
    late = h(*base, (1, "info", "write", "a", 2, 3), (0, "ok", "write", "a", 1, 4),
             (2, "invoke", "read", "a", None, 5), (2, "ok", "read", "a", 1, 6),
             (3, "invoke", "read", "a", None, 7), (3, "ok", "read", "a", 2, 8))
    assert check_events(late).valid is True
    # ...or never
    never = h(*base, (1, "info", "write", "a", 2, 3), (0, "ok", "write", "a", 1, 4),
              (2, "invoke", "read", "a", None, 5), (2, "ok", "read", "a", 1, 6))
    assert check_events(never).valid is True
    # an invoke with no completion is the same as info
    pending = h(*base, (0, "ok", "write", "a", 1, 4),
                (2, "invoke", "read", "a", None, 5), (2, "ok", "read", "a", 2, 6))
    assert check_events(pending).valid is True


def test_nil_read_absent_or_wildcard():
    ev = h((0, "invoke", "write", None, 1, 1), (0, "ok", "write", None, 1, 2),
           (1, "invoke", "read", None, None, 3), (1, "ok", "read", None, None, 4))
    assert check_events(ev, "cas-register").valid is False
    assert check_events(ev, "cas-register", nil_read="wildcard").valid is True


def test_failed_cas_observed_or_no_effect():
    ev = h((0, "invoke", "write", None, 1, 1), (0, "ok", "write", None, 1, 2),
           (1, "invoke", "cas", None, [1, 2], 3), (1, "fail", "cas", None, [1, 2], 4))
    assert check_events(ev, "cas-register").valid is True
    assert check_events(ev, "cas-register", fail_cas="observed").valid is False


def test_violating_key_found_among_many_and_other_keys_not_needed():
    ev = []
    for k in range(20):
        ev += [(k, "invoke", "write", f"k{k}", k, k), (k, "ok", "write", f"k{k}", k, k + 0.1)]
    ev += [(99, "invoke", "read", "k5", None, 30), (99, "ok", "read", "k5", 6, 31)]
    res = check_events(h(*ev))
    assert res.valid is False and res.anomalies[0].key == "k5"
    assert res.partitions == 20


def test_time_limit_gives_unknown_not_a_guess():
    n = 40
    ev = [(p, "invoke", "write", None, p, p) for p in range(n)]
    ev += [(p, "ok", "write", None, p, 100 + p) for p in range(n)]
    ev += [(100 + p, "invoke", "read", None, None, 200 + p) for p in range(n)]
    ev += [(100 + p, "ok", "read", None, p, 300 + p) for p in range(n)]
    res = check_events(h(*ev), time_limit=0.05)
    assert res.valid == "unknown" and res.anomalies == []
    assert res.to_dict()["valid"] == "unknown"


def test_mutex_and_kv_append_models():
    m = h((0, "invoke", "acquire", None, None, 1), (0, "ok", "acquire", None, None, 2),
          (1, "invoke", "acquire", None, None, 3), (1, "ok", "acquire", None, None, 4))
    res = check_events(m, "mutex")
    assert res.valid is False and "acquire by process 1" in res.anomalies[0].sentence
    a = h((0, "invoke", "append", "x", "a", 1), (1, "invoke", "append", "x", "b", 2),
          (0, "ok", "append", "x", "a", 3), (1, "ok", "append", "x", "b", 4),
          (2, "invoke", "read", "x", None, 5), (2, "ok", "read", "x", "ba", 6))
    assert check_events(a, "kv-append").valid is True
    a[-1]["value"] = "b"
    assert check_events(a, "kv-append").valid is False


class Counter(Model):
    """A user model: a counter with inc and read, porcupine-style."""

    name = "counter"

    def init(self):
        return 0

    def step(self, state, op: Op):
        if op.f == "inc":
            return True, state + 1
        return op.output == state, state


def test_user_model_object():
    ev = h((0, "invoke", "inc", None, None, 1), (1, "invoke", "read", None, None, 2),
           (1, "ok", "read", None, 1, 3), (0, "ok", "inc", None, None, 4))
    assert check_events(ev, Counter()).valid is True
    ev[2]["value"] = 2
    res: CheckResult = check_events(ev, Counter())
    assert res.valid is False and res.model == "counter"


class GrowSet(Model):
    """A model the checker has never heard of: per-key grow-only sets.

    ``add`` puts its value in the key's set; ``read`` returns the whole set
    (a list). It plugs in by its methods alone: partition per key, step,
    describe. Nothing in the search or the check API knows it."""

    name = "grow-set"

    def init(self):
        return frozenset()

    def partition(self, ops):
        return by_key(ops)

    def partition_key(self, ops):
        return ops[0].key

    def step(self, state, op: Op):
        if op.f == "add":
            return True, state | {op.value}
        return frozenset(op.output or ()) == state, state

    def describe_op(self, op: Op) -> str:
        return f"read of {op.key} returned {sorted(op.output)}" if op.f == "read" else \
            f"add of {op.value} to {op.key}"

    def describe_state(self, state) -> str:
        return str(sorted(state))


def test_a_new_model_plugs_in_by_name_without_touching_the_search(monkeypatch):
    monkeypatch.setitem(MODELS, "grow-set", GrowSet)
    ev = h((0, "invoke", "add", "s", 1, 1), (1, "invoke", "add", "s", 2, 2),
           (0, "ok", "add", "s", 1, 3), (2, "invoke", "add", "t", 9, 4),
           (2, "ok", "add", "t", 9, 5),
           (3, "invoke", "read", "s", None, 6), (3, "ok", "read", "s", [1], 7),
           (1, "ok", "add", "s", 2, 8))
    res = check_events(ev, "grow-set")
    assert res.valid is True and res.partitions == 2 and res.model == "grow-set"
    ev[6]["value"] = [2]  # 1 was added (ok) before the read began: the read must see it
    res = check_events(ev, "grow-set")
    assert res.valid is False
    a = res.anomalies[0]
    assert a.key == "s" and a.ops[0] == 3
    assert a.sentence == (
        "read of s returned [2] (invoked 6.000 s, completed 7.000 s), but no order of the "
        "operations concurrent with it allows that: after the longest linearizable prefix "
        "(2 operations) the state of s is [1, 2]")
    assert a.prefix == [0, 1]


def test_kv_is_default_and_a_map_of_registers():
    assert isinstance(__import__("checker", fromlist=["make_model"]).make_model("kv"), KV)


def test_buried_stale_read_in_a_long_generated_history():
    import random

    from testkit.histories import generate

    events = generate(random.Random(5), 6000, processes=20, keys=4, info_rate=0.02)
    assert check_events(events).valid is True
    # make one late read return a value overwritten long before it began
    writes: dict = {}
    for e in events:
        if e["type"] == "ok" and e["f"] == "write":
            writes.setdefault(e["key"], []).append(e["value"])
        if e["index"] > len(events) * 2 // 3 and e["type"] == "ok" and e["f"] == "read" \
                and len(writes.get(e["key"], [])) > 5:
            stale = writes[e["key"]][-5]
            e["value"] = stale
            break
    res = check_events(events)
    assert res.valid is False
    a = res.anomalies[0]
    assert a.key == e["key"]
    assert a.sentence.startswith(f"read of {e['key']} returned {stale} at ")
    assert f"no later write of {stale} exists" in a.sentence
    assert a.prefix, "the longest linearizable prefix is reported"


def test_indeterminate_writes_that_nobody_sees_are_not_searched():
    # 30 concurrent info writes nobody reads, then a violation: exhaustive
    # search over their orders would take forever; the reduction drops them.
    ev = [(p, "invoke", "write", "k", 100 + p, p) for p in range(30)]
    ev += [(p, "info", "write", "k", 100 + p, 50 + p) for p in range(30)]
    ev += [(99, "invoke", "write", "k", 1, 90), (99, "ok", "write", "k", 1, 91),
           (98, "invoke", "read", "k", None, 92), (98, "ok", "read", "k", 2, 93)]
    res = check_events(h(*ev), time_limit=5)
    assert res.valid is False


def test_the_checker_imports_nothing_of_the_harness_faults_reports_or_nodes():
    import subprocess
    import sys

    code = ("import sys, checker, checker.manifest; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'harness', 'faults', 'reports', 'nodes'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_by_key_groups_by_key_in_order_of_first_appearance() -> None:
    from checker.history import pair

    def ops(keys):
        evs = []
        for p, k in enumerate(keys):
            evs += [{"process": p, "type": "invoke", "f": "read", "key": k, "value": None},
                    {"process": p, "type": "ok", "f": "read", "key": k, "value": None}]
        return pair(evs)

    def keys_of(groups):
        return [[op.key for op in g] for g in groups]

    assert by_key([]) == []
    for same in ([None] * 3, ["a"] * 4, ["a"]):
        o = ops(same)
        groups = by_key(o)
        assert keys_of(groups) == [same] and groups[0] is not o  # a copy, one group
    assert keys_of(by_key(ops(["a", "b", "a"]))) == [["a", "a"], ["b"]]
    assert keys_of(by_key(ops([1, True, 1]))) == [[1, 1], [True]]  # True is not 1
    assert keys_of(by_key(ops([[1], [1], None]))) == [[[1], [1]], [None]]
