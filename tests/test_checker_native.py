"""The checker's compiled helpers (checker/native.py) and their twins.

The loader: a build is used only while its C source is unchanged, and
CHECKER_PURE=1 turns every helper off. The compiled search
(checker/_search.c) against the Python loop of checker/search.py: the same
``Outcome`` field for field (verdict, steps, held, prefix, window) on the
corpus's register partitions and on generated histories, with and without
the memory cap; the whole check gives the same results either way.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import types
from pathlib import Path

import pytest
from testkit.histories import generate, mutate

from checker import history, native, search
from checker.history import pair
from checker.models import make_model

ROOT = Path(__file__).resolve().parents[1]


def test_a_build_is_used_only_while_its_source_is_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "_x.c"
    src.write_bytes(b"/* v1 */")
    built = types.SimpleNamespace(SOURCE_SHA256=hashlib.sha256(b"/* v1 */").hexdigest())
    assert native.compiled(built, src) is built  # type: ignore[arg-type]
    src.write_bytes(b"/* v2: edited after the build */")
    with pytest.warns(RuntimeWarning, match="changed since its build"):
        assert native.compiled(built, src) is None  # type: ignore[arg-type]
    src.unlink()  # an installed copy without its source
    assert native.compiled(built, src) is built  # type: ignore[arg-type]


needs_build = pytest.mark.skipif(search.NATIVE is None,
                                 reason="checker/_search.c is not built (pip install -e .)")


@needs_build  # without a build there is nothing to turn off: the test could not fail
@pytest.mark.parametrize("switch", ["CHECKER_PURE", "CONSENSUS_HARNESS_PURE"])
def test_either_pure_switch_turns_the_compiled_search_off(switch: str) -> None:
    code = "from checker import search; print(search.NATIVE is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=False,
                         env={switch: "1", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


# --------------------------------------------------------------------------- the compiled search

CORPUS = ROOT.parent / "shared" / "corpus"


def _both(c, max_held: int | None) -> tuple[search.Outcome, search.Outcome | None]:
    """The Python loop's Outcome and the compiled one's (None: declined)."""
    py = search._linearize(c.calls, c.rets, c.step, c.init, c.pred, None, c.needs, c.viable,
                           max_held, len(c.calls))
    r = search.NATIVE.linearize_table(c.calls, c.rets, *c.table, c.init, c.pred, c.needs, None,
                                      max_held)
    return py, (None if r is None else search.Outcome(*r))


def _register_parts():
    """(file, model, partition) of every register partition of the corpus."""
    from checker.history import HistoryError, read_history
    from checker.manifest import load_manifest

    if not (CORPUS / "manifest.json").is_file():
        return
    for f, e in sorted(load_manifest(CORPUS / "manifest.json").entries.items()):
        if e.model not in ("cas-register", "kv"):
            continue
        try:
            ops = pair(read_history(CORPUS / f))
        except HistoryError:
            continue
        m = make_model(e.model, **e.semantics)
        for p in m.partition(ops):
            yield f, m, p


def _register_partitions():
    """(file, Compiled) of every register partition of the corpus with an op to search."""
    for f, m, p in _register_parts():
        c = m.compile(p)
        if c.calls:
            yield f, c


@needs_build
@pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(), reason="../shared/corpus is absent")
@pytest.mark.parametrize("max_held", [None, 40])
def test_the_compiled_search_gives_the_python_outcome_on_the_corpus(max_held) -> None:
    seen = 0
    for f, c in _register_partitions():
        assert c.table is not None
        py, cc = _both(c, max_held)
        assert cc == py, f
        seen += 1
    assert seen > 200  # every register partition of the corpus, none declined


def _generated(seed: int):
    rng = random.Random(seed)
    n = rng.choice([3, 8, 20, 60, 150])
    events = generate(rng, n, processes=rng.randint(1, 8), keys=rng.choice([0, 1, 3]),
                      info_rate=rng.choice([0.0, 0.1, 0.3, 0.6]), fail_rate=0.1)
    for _ in range(rng.choice([0, 1, 2, 4])):
        events = mutate(rng, events)
    semantics = rng.choice([{}, {"fail_cas": "observed"}, {"nil_read": "wildcard"},
                            {"fail_cas": "observed", "nil_read": "wildcard"}])
    return rng, events, make_model("kv", **semantics)


@needs_build
@pytest.mark.parametrize("chunk", [0, 1, *(pytest.param(c, marks=pytest.mark.slow) for c in (2, 3))])
def test_the_compiled_search_gives_the_python_outcome_on_generated_histories(chunk) -> None:
    # chunks 2 and 3 run with -m slow (the suite's budget: the default run
    # gains no time from this file beside what the twins save elsewhere)
    # valid ones, mutated ones (often invalid), indeterminate ops at up to 60%,
    # both failed-cas and both nil-read readings; memory caps from tiny (the
    # window of a stopped search) to ample
    for seed in range(chunk * 150, chunk * 150 + 150):
        rng, events, m = _generated(seed)
        for p in m.partition(pair(events)):
            c = m.compile(p)
            if not c.calls:
                continue
            py, cc = _both(c, rng.choice([20000, 3, 20, 100]))
            assert cc == py, seed


@needs_build
def test_the_compiled_search_declines_what_it_does_not_keep() -> None:
    # no table state (a string), an unknown kind, and a rank past 512 above
    # base (one op that stays open while 600 later ones complete): None
    calls, rets = [0, 1], [2, 3]
    assert search.NATIVE.linearize_table(calls, rets, [1, 0], [-1, 0], [0, 0], "s", None, None,
                                         None, None) is None
    assert search.NATIVE.linearize_table(calls, rets, [7, 0], [-1, 0], [0, 0], 0, None, None,
                                         None, None) is None
    n = 602
    calls = [0] + [2 * x + 1 for x in range(1, n)]
    rets = [2] + [2 * x + 2 for x in range(1, n)]
    kinds = [0] + [1] * (n - 1)  # op 0 reads the initial value, then 601 writes in turn
    seen = [0] + [-1] * (n - 1)
    writes = [0] + list(range(1, n))
    step = lambda s, i: writes[i] if kinds[i] == 1 else (s if s == seen[i] else search.NO)
    assert search.NATIVE.linearize_table(calls, rets, kinds, seen, writes, 0, None, None, None,
                                         None) is not None  # nothing wide: base follows
    rets[0] = 3 * n
    seen[0] = n - 1  # op 0 reads the last write: placed after all of them, 600 ranks up
    assert search.NATIVE.linearize_table(calls, rets, kinds, seen, writes, 0, None, None, None,
                                         None) is None
    out = search.linearize(calls, rets, step, 0, None, None, None, None, None,
                           (kinds, seen, writes))
    assert out.valid is True and len(out.prefix) == n  # the Python loop decided it


def test_the_whole_check_is_the_same_either_way(monkeypatch) -> None:
    from checker import check_events

    for seed in range(60):
        _, events, m = _generated(seed)
        sem = {"fail_cas": m.fail_cas, "nil_read": m.nil_read}
        a = check_events(events, "kv", every_key=True, **sem).to_dict(pair(events))
        monkeypatch.setattr(search, "NATIVE", None)
        b = check_events(events, "kv", every_key=True, **sem).to_dict(pair(events))
        monkeypatch.undo()
        a.pop("seconds"), b.pop("seconds")
        assert a == b, seed


# --------------------------------------------------------------------------- the compiled pairing

needs_pair_build = pytest.mark.skipif(history.PAIR_NATIVE is None,
                                      reason="checker/_pair.c is not built (pip install -e .)")


def _pure_pair(events, monkeypatch):
    monkeypatch.setattr(history, "PAIR_NATIVE", None)
    try:
        return history.pair(events)
    finally:
        monkeypatch.undo()


def _same_ops(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y) is history.Op
        assert tuple(x[:13]) == tuple(y[:13]) and x[13] is y[13] and x[14] is y[14], (x, y)
        assert [type(v) for v in x] == [type(v) for v in y]


@needs_pair_build
@pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(), reason="../shared/corpus is absent")
def test_the_compiled_pairing_gives_pairs_ops_on_the_corpus(monkeypatch) -> None:
    from checker.history import HistoryError, read_history
    from checker.manifest import load_manifest

    paired = 0
    for f in sorted(load_manifest(CORPUS / "manifest.json").entries):
        events = read_history(CORPUS / f)
        try:
            want = _pure_pair(events, monkeypatch)
        except HistoryError:
            assert history.PAIR_NATIVE.pair_dicts(events, history.Op, INF) is None, f
            continue
        got = history.PAIR_NATIVE.pair_dicts(events, history.Op, INF)
        if got is None:  # only what it does not read plainly: a process neither str nor int
            assert any(type(e.get("process")) not in (str, int) for e in events), f
            continue
        _same_ops(got, want)
        paired += 1
    assert paired > 200


INF = float("inf")


@needs_pair_build
def test_the_compiled_pairing_gives_pairs_ops_on_generated_and_odd_histories(monkeypatch) -> None:
    for seed in range(200):
        _, events, _ = _generated(seed)
        got = history.PAIR_NATIVE.pair_dicts(events, history.Op, INF)
        assert got is not None
        _same_ops(got, _pure_pair(events, monkeypatch))

    def ev(p, t, f="read", v=None, **kw):
        return {"process": p, "type": t, "f": f, "value": v, **kw}

    odd = [
        [ev(0, "invoke"), ev("nemesis", "info", "kill"), ev(0, "ok", v=3)],
        [ev(0, "invoke"), ev(0, "invoke", "write", 1), ev(0, "ok", "write", 1)],  # superseded
        [ev(1, "info", "note")],  # a client-side info without invoke: no operation
        [ev(0, "invoke", key="k", time=5), ev(1, "invoke", "write", 2)],  # both left open
        [ev(0, "invoke"), ev(0, "ok", None, 1, node="n1", error="e", time=9)],  # f absent
        [ev(0, "invoke"), ev(0, "info", v=7)],
        [ev("a", "invoke", "cas", [1, 2]), ev("a", "fail", "cas")],
    ]
    for events in odd:
        got = history.PAIR_NATIVE.pair_dicts(events, history.Op, INF)
        assert got is not None, events
        _same_ops(got, _pure_pair(events, monkeypatch))
    bad = [
        [ev(0, "ok")],  # no open invoke
        [ev(0, "invoke"), ev(0, "ok", "write")],  # f differs
        [ev(0, "begin")],  # unknown type
        [{"type": "invoke"}],  # no process
        [ev([0], "invoke")],  # unhashable process
    ]
    for events in bad:
        assert history.PAIR_NATIVE.pair_dicts(events, history.Op, INF) is None
        with pytest.raises((history.HistoryError, TypeError)):
            history.pair(events)  # pair itself answers (an unhashable process: TypeError)
    # not plainly read, but fine for pair: None, and pair's answer
    events = [ev(True, "invoke"), ev(True, "ok", v=1)]
    assert history.PAIR_NATIVE.pair_dicts(events, history.Op, INF) is None
    assert history.pair(events)[0].output == 1


# --------------------------------------------------------------------------- the compiled columns

needs_columns_build = pytest.mark.skipif(
    __import__("checker.registers").registers.COLUMNS_NATIVE is None,
    reason="checker/_registers.c is not built (pip install -e .)")


def _columns_both(ops, semantics: dict, init=None):
    from checker import registers

    observed = semantics.get("fail_cas") == "observed"
    wildcard = semantics.get("nil_read") == "wildcard"
    try:
        py = registers._columns(ops, observed, wildcard, init, "kv")
    except (ValueError, TypeError) as exc:
        py = exc
    try:
        cc = registers.COLUMNS_NATIVE.columns(ops, observed, wildcard, init, registers.hkey,
                                              registers.cas_args)
    except (ValueError, TypeError) as exc:
        cc = exc
    return py, cc


def _same_columns(py, cc) -> None:
    if isinstance(py, Exception):
        assert cc is None or (type(cc) is type(py) and str(cc) == str(py)), (py, cc)
        return
    assert cc is not None
    assert len(cc) == len(py)
    for a, b in zip(py, cc):
        assert a == b and type(a) is type(b)
        if isinstance(a, (list, dict)):  # the same objects and numbers, not merely equal ones
            xs = a.items() if isinstance(a, dict) else enumerate(a)
            ys = dict(b.items() if isinstance(b, dict) else enumerate(b))
            for k, v in xs:
                assert type(v) is type(ys[k]) and (v is ys[k] or v == ys[k])
    assert all(x is y for x, y in zip(py[0], cc[0]))  # O: the ops themselves


@needs_columns_build
def test_the_compiled_columns_are_the_register_compiles_first_pass() -> None:
    for seed in range(300):
        _, events, m = _generated(seed)
        sem = {"fail_cas": m.fail_cas, "nil_read": m.nil_read}
        for p in m.partition(pair(events)):
            _same_columns(*_columns_both(p, sem))

    def op(f, t, value=None, output=None, ret=5, call=1):
        return history.Op(0, 0, f, None, value, output, t, call, ret, None, None, None, None, {},
                          None)

    odd = [op("read", "ok", output=[1, {"a": 2}]), op("read", "ok", output=True),
           op("read", "ok", output=1.0), op("write", "info", 1, ret=INF),
           op("cas", "ok", {"expected": 1, "new": 2}), op("cas", "info", [3, 3], ret=INF),
           op("cas", "fail", (4, 5)), op("read", "ok", output=None)]
    for sem in ({}, {"fail_cas": "observed", "nil_read": "wildcard"}):
        _same_columns(*_columns_both(odd, sem, init=0))
        _same_columns(*_columns_both(odd[::-1], sem, init=True))
    for bad in ([op("incr", "ok")], [op("cas", "ok", [1])], [op(None, "ok")],
                [op("read", "ok", output={1, 2})]):
        _same_columns(*_columns_both(odd + bad, {}))


def _compiled_fields(c) -> tuple:
    return (c.ops, c.calls, c.rets, c.pred, c.init, c.needs, c.stale, c.dropped, c.notes,
            c.table, [type(x) for x in c.rets])


@needs_columns_build
def test_the_register_compile_is_the_same_either_way(monkeypatch) -> None:
    from checker import registers

    parts = []
    for seed in range(300):
        _, events, m = _generated(seed)
        parts += [(m, p) for p in m.partition(pair(events))]
    assert len(parts) > 400  # the generated histories alone; the corpus adds its own if present
    parts += [(m, p) for _, m, p in _register_parts()]
    for m, p in parts:
        a = m.compile(p)
        monkeypatch.setattr(registers, "COLUMNS_NATIVE", None)
        b = m.compile(p)
        monkeypatch.undo()
        assert _compiled_fields(a) == _compiled_fields(b)
        codes = range(len(set(a.table[1]) | set(a.table[2])) - 1)
        assert [a.decode(x) for x in codes] == [b.decode(x) for x in codes]
