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

from checker import native, search
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


def test_checker_pure_turns_the_compiled_search_off() -> None:
    code = "from checker import search; print(search.NATIVE is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=False,
                         env={"CHECKER_PURE": "1", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


# --------------------------------------------------------------------------- the compiled search

CORPUS = ROOT.parent / "shared" / "corpus"
needs_build = pytest.mark.skipif(search.NATIVE is None,
                                 reason="checker/_search.c is not built (pip install -e .)")


def _both(c, max_held: int | None) -> tuple[search.Outcome, search.Outcome | None]:
    """The Python loop's Outcome and the compiled one's (None: declined)."""
    py = search._linearize(c.calls, c.rets, c.step, c.init, c.pred, None, c.needs, c.viable,
                           max_held, len(c.calls))
    r = search.NATIVE.linearize_table(c.calls, c.rets, *c.table, c.init, c.pred, c.needs, None,
                                      max_held)
    return py, (None if r is None else search.Outcome(*r))


def _register_partitions():
    """(name, Compiled) of every register partition of the corpus."""
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
@pytest.mark.parametrize("chunk", range(4))
def test_the_compiled_search_gives_the_python_outcome_on_generated_histories(chunk) -> None:
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
