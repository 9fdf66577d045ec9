"""checker.edn: the translation into JSON reads exactly what the tokenizer reads.

The reference is the tokenizer alone (``edn._read_slowly``, the reader the
checker had before the translation): every text here is read both ways and
must give the same events (``_line`` included, but for a history written as
one vector, where the tokenizer alone names the vector's line for every
event), or the same error naming the same line. Runs are
made small (``_CHUNK``) so that one file mixes translated runs, runs the
tokenizer reads, and forms that cross a run's end.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from checker import edn
from checker.history import HistoryError, read_history

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def translation(request, monkeypatch) -> str:
    """Every test on both translations into JSON: the compiled one
    (checker/_edn_json.c, built at install) and the pure-Python one."""
    if request.param == "pure":
        monkeypatch.setattr(edn, "_translate", None)
    elif edn._translate is None:
        pytest.skip("checker/_edn_json.c is not built (or changed since its build)")
    return request.param


def _slow(text: str, path: str = "x.edn") -> list[dict]:
    return edn._read_slowly(text, path, 1, 0)


def _outcome(fn, text: str) -> tuple[str, object]:
    try:
        return "events", fn(text, "x.edn")
    except HistoryError as exc:
        return "error", str(exc)


def _strip(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "_line"} for e in events]


_REFERENCE: dict[str, tuple[str, object]] = {}  # text -> the tokenizer's outcome (both translations)


def _same(text: str) -> None:
    if text not in _REFERENCE:
        _REFERENCE[text] = _outcome(_slow, text)
    fast, slow = _outcome(edn.parse_edn, text), _REFERENCE[text]
    if fast[0] == slow[0] == "events" and text.lstrip()[:1] in ("[", "("):
        # one vector of maps: the tokenizer alone gives every event the
        # vector's line, the reader each map's own line (what pairing names)
        fast, slow = ("events", _strip(fast[1])), ("events", _strip(slow[1]))
    if fast[0] == slow[0] == "events":
        # types too: 1 and 1.0 and True compare equal
        assert json.dumps(fast[1]) == json.dumps(slow[1]) or fast[1] == slow[1], text[:300]
        assert repr(fast[1]) == repr(slow[1]), text[:300]
    else:
        assert fast == slow, text[:300]


# --------------------------------------------------------------------------- generated EDN

_ODD_STRINGS = ["", "k1", "a b", "x, :y", "{:type :ok}", "[1 2]", "tab\there", 'quote \\" in',
                "back\\\\slash", "new\\nline", "é ü 中", "#tag", "semi;colon", "nil", "null",
                "true", "1", "-2.5", ":kw", "#{1}", "(a)", "\\u00e9"]
_KEYWORDS = [":a", ":read", ":ns/name", ":x?", ":n1", ":nil", ":true", ":false", ":a.b/c-d",
             ":nullable", ":invoke", ":f", ":value", ":k8", ":+", ":<=>"]


_PLAIN_STRINGS = ["", "k1", "ok", "nil", "null", "true", "1", "-2.5", "é", "a-b_c", "x/y"]


def _atom(r: random.Random, plain: bool = False) -> str:
    """An EDN atom; ``plain``: only what the translation into JSON takes
    (strings without separators, no tags, comments or EDN-only numbers),
    edges included (keywords named nil or 1, 20-digit integers, the symbol null)."""
    c = r.random()
    if plain:
        if c < 0.3:
            return str(r.randint(-10**6, 10**12))
        if c < 0.4:
            return r.choice(["nil", "true", "false", "1.5", "-0.25", "1e5", "0", "-0"])
        if c < 0.7:
            return r.choice(_KEYWORDS)
        if c < 0.97:
            return '"' + r.choice(_PLAIN_STRINGS) + '"'
        return r.choice(["123456789012345678901", "-9223372036854775809", "18446744073709551615",
                         "null", "sym", ":1", ":-2", '"s":1', "9007199254740993"])
    if c < 0.2:
        return str(r.randint(-10**6, 10**12))
    if c < 0.3:
        return r.choice(["nil", "true", "false"])
    if c < 0.45:
        return r.choice(_KEYWORDS)
    if c < 0.6:
        return '"' + r.choice(_ODD_STRINGS) + '"'
    if c < 0.66:
        return r.choice(["1.5", "-0.25", "1e5", "2.5E-3", "0", "-0", "7N", "3M", "1/3", "1.5M",
                         "123456789012345678901", "-9223372036854775809", "18446744073709551615"])
    if c < 0.7:
        return r.choice(["sym", "null", "a:b", "foo/bar", "\\a", "\\space", "#inst \"2020\"",
                         "#uuid \"x-1\""])
    return '"' + r.choice(_ODD_STRINGS) + '"'


def _form(r: random.Random, depth: int = 0, plain: bool = False) -> str:
    c = r.random()
    if depth > 2 or c < 0.55:
        return _atom(r, plain)
    n = r.randint(0, 3)
    items = [_form(r, depth + 1, plain) for _ in range(n)]
    if c < 0.75:
        return "[" + " ".join(items) + "]"
    if c < 0.82:
        return "(" + " ".join(items) + ")"
    if c < 0.88:
        return "#{" + " ".join(items) + "}"
    keys = [r.choice([":a", ":b", ":c", '"s"', "1"]) for _ in items]
    return "{" + ", ".join(f"{k} {v}" for k, v in zip(keys, items)) + "}"


def _op_line(r: random.Random, i: int, plain: bool = False) -> str:
    """One operation map, mostly as Clojure prints it, sometimes not."""
    t = r.choice([":invoke", ":ok", ":fail", ":info"])
    entries = [(":process", r.choice([str(r.randint(0, 9)), ":nemesis"])), (":type", t),
               (":f", r.choice([":read", ":write", ":cas", ":txn"])),
               (":value", _form(r, 0, plain)), (":index", str(i)), (":time", str(i * 1000))]
    if r.random() < 0.3:
        entries.append((":key", r.choice(['"k1"', "3", ":k"] + ['"a b"'] * (not plain))))
    if r.random() < 0.1:
        entries.append((":error", _form(r, 0, plain)))
    if r.random() < 0.05:
        entries = [e for e in entries if e[0] != r.choice([":process", ":type", ":f"])]
    r.shuffle(entries)
    sep = ", " if plain or r.random() < 0.9 else r.choice([" ", ",", ",  ", "\t"])
    body = "{" + sep.join(f"{k} {v}" for k, v in entries) + "}"
    c = r.random() + plain
    if c < 0.15:
        body = "#jepsen.history.Op" + body
    elif c < 0.17:
        body = body.replace(", ", ",\n ", 1)  # a map over two lines
    elif c < 0.18:
        body = "#_ " + body + " " + body
    elif c < 0.19:
        body = body + " ; a comment"
    elif c < 0.20:
        body = "\n" + body  # a blank line before
    return body


def _history(r: random.Random, n: int) -> str:
    plain = r.random() < 0.5
    lines = [_op_line(r, i, plain and r.random() < 0.97) for i in range(n)]
    text = "\n".join(lines) + r.choice(["\n", "", "\n\n"])
    c = r.random()
    if c < 0.1:
        text = "[" + text.rstrip("\n") + "]\n"
    elif c < 0.13:
        text = "(" + text.rstrip("\n") + ")"
    elif c < 0.15:
        text = text.replace("\n", "\r\n")
    return text


@pytest.mark.parametrize("seed", range(8))  # 1000 more: -m slow
def test_generated_histories_read_as_the_tokenizer_reads_them(monkeypatch, seed: int) -> None:
    r = random.Random(seed)
    monkeypatch.setattr(edn, "_CHUNK", r.choice([64, 200, 1000, 1 << 20]))
    _same(_history(r, r.randint(1, 30)))


@pytest.mark.slow
def test_many_generated_histories_read_as_the_tokenizer_reads_them(monkeypatch) -> None:
    for seed in range(8, 1008):  # one test, not 1000 to collect in the default run
        r = random.Random(seed)
        monkeypatch.setattr(edn, "_CHUNK", r.choice([64, 200, 1000, 1 << 20]))
        try:
            _same(_history(r, r.randint(1, 60)))
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from None


_OP = "{:type :ok, :f :read, :process 0, :value %s}"


_VALUES = [
    '{"s":1}', '{"s":true}', '{"s" :1}', ":a:b", ":1", "null", "nil", ":nil", ":null", "[nil nil]",
    "12345678901234567890123", "-9223372036854775809", "9223372036854775807", "1e400", "7N",
    "1/3", "1.5M", "01", "+1", "1.", ".5", '"a b"', '"a\\"b"', '"a\\nb"', '"line\nbreak"',
    "\\a", "#{1 2}", '#inst "2020-01-01"', "#_ 1 2", "(1 2)", "[1, 2]", "[1,2]", "{:a 1 :b 2}",
    "{}", "[]", "sym", "true", "false", '"é"', "-0", "-0.0", "1E5", "[[:r 1 nil] [:append 2 3]]",
    # strings holding delimiters and escapes
    '"a, b {c} [d] (e) ;f #g :h"', '"\\u00e9\\t\\/"', '"\\ud800"', '"\\x"', '"a\\\\"',
    '"tab\there"', '";"', '"}"', '"\\""',
    # nesting, tags, sets
    "{:a {:b {:c [1 #{2 (3)}]}}}", "#foo/bar {:a 1}", "#jepsen.history.Op{:a 1}", "#{}", "#t",
    "[#t]", "{#t :a 1}", "{:a #t 1}", "{:a}", "{1 2}", "{nil 1}", "{[1] 2}", "{:a 1 :b 2 :a 3}",
    '{"a" 1 :a 2}', "[" * 70 + "]" * 70, "#t/é 1", "#_1", "##Inf", '#"re"', "#:ns{:a 1}",
    "#{#{}}", "[:a :a]",
    # odd whitespace, comments, keywords and numbers at the edges
    "[1\t2\r3]", "[1\x0b2]", "[1\x0c2]", "[1\x1c2]", "[1\u00a02]", "[1\u20282]", "[1\x002]",
    ":é", ":a\\b", ":", "::a", ":a#b", ":read#jepsen.history.Op", ":ok#t", ":a'b", "\\newline",
    "[1 ; c ] 2]", "1e-400", "1e308",
    "1e309", "1.5e10", "0.1000000000000000055511151231257827", "1234567890123456789", "-", "-a",
    "1.5e+3", "00", "0.5", "-.5", "1e", "1e+", "[1 2]x", '"a"b', '"a":b', "nil,", "truex",
]


def test_values_the_translation_must_not_misread(monkeypatch) -> None:
    # one test looping over the values (not 100 items each way): pytest's cost per item
    plain = _OP % "1"
    for value in _VALUES:
        line = _OP % value
        for chunk in (64, 1 << 20):
            monkeypatch.setattr(edn, "_CHUNK", chunk)
            try:
                # a map per line, then two maps on one line
                _same(f"{plain}\n{line}\n{plain}\n{line}\n{plain} {plain}\n{line}\n{plain}\n")
            except AssertionError as exc:
                raise AssertionError(f"value {value!r}, runs of {chunk} bytes: {exc}") from None


# --------------------------------------------------------------------------- the translation is used

def _jepsen(events: list[dict]) -> str:
    """Jepsen's layout: one map per line, ", " between entries, keywords for
    type, f and a nemesis process, strings and numbers as JSON writes them."""
    def v(x: object) -> str:
        if x is None:
            return "nil"
        if x is True or x is False:
            return "true" if x else "false"
        if isinstance(x, list):
            return "[" + " ".join(v(y) for y in x) + "]"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{v(k)} {v(y)}" for k, y in x.items()) + "}"
        return json.dumps(x, ensure_ascii=False)
    out = []
    for e in events:
        parts = []
        for k, x in e.items():
            kw = k in ("type", "f") or (k == "process" and x == "nemesis")
            parts.append(f":{k} :{x}" if kw and isinstance(x, str) else f":{k} {v(x)}")
        out.append("{" + ", ".join(parts) + "}\n")
    return "".join(out)


def test_jepsen_printed_runs_are_translated_not_tokenized(monkeypatch) -> None:
    events = [{"process": i % 5, "type": t, "f": f, "key": f"k{i % 3}", "value": val,
               "index": i, "time": i * 10}
              for i, (t, f, val) in enumerate([("invoke", "cas", [1, 2]), ("ok", "cas", [1, 2]),
                                               ("invoke", "read", None), ("ok", "read", 3),
                                               ("fail", "write", 4), ("info", "txn",
                                                                      [["append", 1, 2]])] * 50)]
    text = _jepsen(events)
    slow = []
    monkeypatch.setattr(edn, "_read_forms", lambda *a, **k: slow.append(1) or [])
    monkeypatch.setattr(edn, "_CHUNK", 2000)
    got = edn.parse_edn(text, "x.edn")
    assert got == events and not slow
    record = "".join("#jepsen.history.Op" + line for line in text.splitlines(True))
    assert edn.parse_edn(record, "x.edn") == events and not slow


def test_the_corpus_as_jepsen_edn_reads_as_its_json_lines(tmp_path: Path) -> None:
    files = sorted(CORPUS.glob("*/*/*.jsonl"))[::10] if CORPUS.is_dir() else []
    if not files:
        pytest.skip("corpus not found")
    for f in files:
        if f not in _AS_EDN:  # written once for both translations
            events = read_history(f)
            _AS_EDN[f] = events, _jepsen(events)
        events, text = _AS_EDN[f]
        assert edn.parse_edn(text, f.name) == events, f


_AS_EDN: dict[Path, tuple[list[dict], str]] = {}


# --------------------------------------------------------------------------- errors and lines

@pytest.mark.parametrize("bad, line, says", [
    ("{:type :invoke, :f :read, :process 0", 3, "'{' is never closed"),
    ("{:type :invoke, :f :read, :process 0]", 3, "unbalanced ']'"),
    ("{:type :invoke, :f :read}", 3, "missing 'process'"),
    ("{:type :started, :f :read, :process 1}", 3, "'type' must be one of"),
    ("{:type :ok, :f :read, :process}", 3, "map with an odd number of forms"),
    ("[1 2]", 3, "expected an operation map"),
])
def test_a_bad_line_is_named_as_the_tokenizer_names_it(monkeypatch, bad: str, line: int,
                                                       says: str) -> None:
    good = "{:type :invoke, :f :read, :process 0, :value nil}\n"
    for chunk in (40, 1 << 20):
        monkeypatch.setattr(edn, "_CHUNK", chunk)
        for text in (good * 2 + bad + "\n" + good * 4, good * 2 + bad):
            with pytest.raises(HistoryError) as exc:
                edn.parse_edn(text, "x.edn")
            assert str(exc.value) == _outcome(_slow, text)[1]
            assert str(exc.value).startswith(f"x.edn:{line}: {says}"), str(exc.value)


def test_events_after_a_blank_line_or_a_long_map_name_their_own_line(monkeypatch) -> None:
    monkeypatch.setattr(edn, "_CHUNK", 60)
    op = "{:type :invoke, :f :read, :process 0, :value nil}"
    text = f"{op}\n\n{op}\n{{:type :ok,\n :f :read, :process 0}}\n{op}\n{op}\n"
    events = edn.parse_edn(text, "x.edn")
    assert [e.get("_line", i + 1) for i, e in enumerate(events)] == [1, 3, 4, 6, 7]
    assert events == _slow(text)


def test_bytes_and_text_read_alike_and_bad_utf8_is_named_as_read_history_names_it(tmp_path):
    text = '{:type :invoke, :f :read, :process 0, :value "é"}\n' * 3
    assert edn.parse_edn(text.encode(), "x.edn") == edn.parse_edn(text, "x.edn")
    p = tmp_path / "bad.edn"
    data = text.encode() + b'{:type :ok, :f :read, :process 0, :value "\xff"}\n'
    p.write_bytes(data)
    with pytest.raises(HistoryError) as exc:
        edn.parse_edn(data, str(p))
    assert str(exc.value).startswith(f"{p}: cannot read: 'utf-8' codec can't decode byte 0xff")


def test_keywords_are_strings_named_without_the_colon() -> None:
    forms = edn._read_forms('{:type :invoke} :ns/k "s"', "x.edn")
    kw = forms[1][0]
    assert isinstance(kw, edn.Keyword) and kw == "ns/k" and isinstance(forms[2][0], str)
    assert not isinstance(forms[2][0], edn.Keyword)
    assert forms[0][0] == {"type": "invoke"} and type(next(iter(forms[0][0]))) is str


# --------------------------------------------------------------------------- the compiled build

def test_checker_pure_and_a_stale_build_turn_the_compiled_translation_off(monkeypatch) -> None:
    # the decision is checker.native's (its own tests cover the hash); edn must ask it
    from checker import native

    monkeypatch.setenv("CHECKER_PURE", "1")
    assert edn._load_translate() is None
    monkeypatch.delenv("CHECKER_PURE")
    monkeypatch.setattr(native, "load", lambda name: None if name == "_edn_json" else 1 / 0)
    assert edn._load_translate() is None


def test_the_compiled_translation_is_the_build_of_the_source_beside_it(translation) -> None:
    if translation == "pure":
        pytest.skip("the compiled build only")
    import hashlib

    from checker import _edn_json

    source = Path(edn.__file__).with_name("_edn_json.c")
    assert _edn_json.SOURCE_SHA256 == hashlib.sha256(source.read_bytes()).hexdigest()
    data = b'xx{:type :ok, :f :read, :process 0, :value #{nil}}\n[1 "a b"]yy'
    assert _edn_json.translate(data, 2, len(data) - 2) == (
        b'[{"type":"ok","f":"read","process":0,"value":[null]},[1,"a b"]]')
    assert _edn_json.translate(data, 2, 20) is None  # ends inside a map
    with pytest.raises(ValueError):
        _edn_json.translate(data, 2, len(data) + 1)


_SOUP = ["{", "}", "[", "]", "(", ")", "#{", " ", ", ", ",", "\n", "\t", "\r", ":type", ":invoke",
         ":ok", ":info", ":f", ":read", ":process", ":value", "0", "1", "-1", "1.5", "1e5", "nil",
         "true", "false", '"k1"', '"a b"', '"x\\"y"', '"\\u00e9"', '"é"', '"\\\\"',
         "#jepsen.history.Op", "#t ", "#_", ";c", ":", "::a", "sym", "null", "\\a", "1N", "0.1", "-0",
         "007", "1/2", "#", '"', ":a:b", "\xa0", "\x0b", "12345678901234567890",
         "9223372036854775807", ":k\\x", "'", "#inst", "}\n", "]\n", "{:a {:b [1 2]}}"]


@pytest.mark.slow
def test_random_token_soup_reads_as_the_tokenizer_reads_it(monkeypatch) -> None:
    """Texts glued from EDN's delimiters, atoms and edge tokens, mostly as the
    value of an op map between two plain ones: both translations answer what
    the tokenizer answers (an event list or the same error)."""
    r = random.Random(7)
    for i in range(10_000):
        t = "".join(r.choice(_SOUP) for _ in range(r.randint(1, 40)))
        if r.random() < 0.7:
            t = "\n".join(f"{{:type :ok, :f :read, :process {j}, :value {t if j == 1 else 1}}}"
                          for j in range(3))
        monkeypatch.setattr(edn, "_CHUNK", r.choice([16, 64, 1 << 20]))
        try:
            _same(t)
        except AssertionError as exc:
            raise AssertionError(f"text {i}: {t!r}: {exc}") from None
