"""EDN histories (Jepsen's ``history.edn``) read into the checker's event dicts.

Owns ``parse_edn`` and ``Keyword``. ``checker.history`` reads a file and hands
EDN text here; the events come back as ``parse_jsonl`` gives them for JSON
Lines: plain dicts, keywords as plain strings, ``key``/``value`` defaulted to
None, and ``_line`` only where an event's line is not its position + 1.

Three readers, one reading:

- **The tokenizer** (``_read_forms``) reads any EDN the checker accepts:
  maps, vectors, lists, sets (as lists), strings, characters, tags (ignored),
  ``#_`` discards, comments, numbers with ``N``/``M``, ratios. It names the
  bad line of a malformed file. It is the reference, and slow (a Python loop
  per token).
- **The translation into JSON** (``_fast_chunk``) reads a run of whole lines,
  about ``_CHUNK`` bytes: C-speed literal replacements of the history's
  frequent *fragments* (the text between two numbers or strings, cut after
  each keyword value, such as ``, :type :invoke`` or ``}\\n{:process ``,
  learnt from the text), then, for what they leave, one pass per distinct
  keyword, then one ``bytes.translate`` into JSON that orjson parses into the
  event dicts. It covers what Clojure prints (one map per line, ``, ``
  between entries, tagged records such as ``#jepsen.history.Op{...}``) and
  answers None for anything else, so that run is read by the tokenizer.

- **The compiled translation** (``checker/_edn_json.c``, built by setup.py
  at install, optional): the same run in one pass of C, a state machine
  that writes the JSON of every form it can translate exactly and answers
  None otherwise (its header lists what). Where it is built, it replaces
  the pure-Python translation (about 6x less CPU than its ~15 passes); it is
  used only while its source has the hash the build recorded, and not with
  ``CHECKER_PURE=1`` (``checker.native.load``), so an edited .c never runs
  as a stale build.

Invariant: the translations never read a different value from the
tokenizer; they answer the same events or None. Why that holds (for the
pure-Python one; the C one tokenizes as ``_TOKEN`` does and checks each atom):

- it runs only on text without the constructs it does not translate (``\\``,
  ``;``, tabs, ``#`` but known tags at the start of a token, integers past 64 bits, which orjson
  would read as floats, the bare symbol ``null``), and only where every
  string holds no separator, bracket, colon, ``#`` or ``;`` (so no pass can
  touch one); what else EDN has and JSON has not (``1N``, ``1/2``, ``\\a``,
  symbols) is left as it is, and orjson rejects it;
- each atom is translated on its own: ``:kw`` becomes ``"kw"`` (the tokenizer
  also ends as a plain string), ``nil`` becomes ``null``, numbers, strings,
  ``true`` and ``false`` stay; a keyword pass that cuts into a longer atom
  leaves text JSON rejects (``"kw"x``), and an atom no pass knows (a symbol,
  a keyword never seen) stays invalid JSON;
- a key pass (or a fragment) turns ``:key `` into ``"key":\\t``, the only way
  a colon reaches the JSON: the text must hold as many ``:`` as tabs, so a keyword left
  unconverted or a colon of the input is caught;
- separators become ``,`` (``, `` and `` `` both; the translate swaps comma
  and space so ``, `` becomes `` ,``), brackets stay brackets; JSON then only
  accepts the text if, in every map, the colons fall exactly after the
  entries the tokenizer would pair as keys.

Memory: a run of lines at a time, so the extra memory is a few copies of
``_CHUNK`` bytes besides the text and the events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from checker.history import TYPES, HistoryError, _validate

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is in pyproject's dependencies
    _orjson = None

__all__ = ["Keyword", "parse_edn"]

_Translate = Callable[[bytes, int, int], "bytes | None"]


def _load_translate() -> _Translate | None:
    """The compiled translation's ``translate`` (checker/_edn_json.c), or None
    for the pure-Python one: checker/native.py decides (not built, built from
    another source than the one beside it, or CHECKER_PURE=1)."""
    from checker import native

    module = native.load("_edn_json")
    return None if module is None else module.translate


_translate = _load_translate()


class Keyword(str):
    """An EDN keyword; behaves as its name without the colon."""


# --------------------------------------------------------------------------- the tokenizer

_TOKEN = re.compile(
    r"""(?P<ws>[\s,]+|;[^\n]*)
      |(?P<str>"(?:[^"\\]|\\.)*")
      |(?P<open>\#\{|[\[\({])
      |(?P<close>[\]\)}])
      |(?P<tag>\#[A-Za-z][\w.\-/]*)
      |(?P<discard>\#_)
      |(?P<char>\\(?:newline|space|tab|return|.))
      |(?P<atom>[^\s,\[\](){}"\;]+)""",
    re.VERBOSE,
)
_NUM = re.compile(r"^[+-]?\d+(N|M)?$|^[+-]?\d+\.\d*([eE][+-]?\d+)?M?$|^[+-]?\d+[eE][+-]?\d+M?$")
_RATIO = re.compile(r"^([+-]?\d+)/(\d+)$")
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r"}
_CLOSERS = {"[": "]", "(": ")", "{": "}", "#{": "}"}


def _atom(tok: str) -> Any:
    if tok == "nil":
        return None
    if tok == "true":
        return True
    if tok == "false":
        return False
    if tok.startswith(":"):
        return Keyword(tok[1:])
    if _NUM.match(tok):
        t = tok.rstrip("NM")
        return float(t) if any(c in t for c in ".eE") else int(t)
    m = _RATIO.match(tok)
    if m:
        return int(m.group(1)) / int(m.group(2))
    return tok  # a symbol: keep its name


class _Incomplete(Exception):
    """The text ends inside a form (or before the form a tag or #_ waits for)."""


def _read_forms(text: str, path: str, line: int = 1,
                whole: bool = True) -> list[tuple[Any, int]]:
    """The top-level forms of ``text`` with the line each starts on (the
    first line of ``text`` being ``line``). A malformed text raises
    HistoryError naming its line; with ``whole`` False, a text that ends
    inside a form raises _Incomplete instead (the caller reads on)."""
    stack: list[tuple[str, list, int]] = []  # (opener, items, line)
    top: list[tuple[Any, int]] = []
    pending_tag = False
    discards: list[int] = []  # stack depths at which a #_ waits for its form
    pos, n = 0, len(text)
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            raise HistoryError(path, line, f"cannot read EDN near {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        tok = m.group()
        pos = m.end()
        if kind == "ws":
            line += tok.count("\n")
            continue
        if kind == "tag":
            pending_tag = True
            continue
        if kind == "discard":
            discards.append(len(stack))
            continue
        if kind == "open":
            stack.append((tok, [], line))
            pending_tag = False
            continue
        start = line
        if kind == "close":
            if not stack or _CLOSERS[stack[-1][0]] != tok:
                raise HistoryError(path, line, f"unbalanced {tok!r}")
            opener, items, start = stack.pop()
            if opener == "{":
                if len(items) % 2:
                    raise HistoryError(path, start, "map with an odd number of forms")
                try:
                    value: Any = {_plain_key(items[i]): items[i + 1]
                                  for i in range(0, len(items), 2)}
                except TypeError:  # a vector, map or set as a key
                    raise HistoryError(path, start, "a map key that is a vector, map or set "
                                       "(the checker's events cannot hold it)") from None
            else:
                value = items
        else:
            pending_tag = False
            if kind == "str":
                try:
                    value = json.loads(tok)
                except ValueError:
                    value = tok[1:-1]
                line += tok.count("\n")
            elif kind == "char":
                value = _CHARS.get(tok[1:], tok[1:])
            else:
                value = _atom(tok)
        if discards and discards[-1] == len(stack):
            discards.pop()
        elif stack:
            stack[-1][1].append(value)
        else:
            top.append((value, start))
    if stack:
        if not whole:
            raise _Incomplete
        raise HistoryError(path, stack[-1][2], f"{stack[-1][0]!r} is never closed")
    if (discards or pending_tag) and not whole:
        raise _Incomplete
    return top


def _plain_key(k: Any) -> Any:
    return str(k) if isinstance(k, Keyword) else k


def _plain(v: Any) -> Any:
    if isinstance(v, Keyword):
        return str(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k) if isinstance(k, Keyword) else k: _plain(x) for k, x in v.items()}
    return v


def _events(forms: list[tuple[Any, int]], path: str, first: int) -> list[dict]:
    """Operation maps as events; ``first`` is the position of the first one
    in the whole history (its ``_line`` is recorded only where it differs
    from position + 1)."""
    events: list[dict] = []
    for pos, (value, line) in enumerate(forms, first):
        if not isinstance(value, dict):
            raise HistoryError(path, line, "expected an operation map like {:type :invoke ...}")
        ev = {k: _plain(v) for k, v in value.items()}
        ev.setdefault("key", None)
        ev.setdefault("value", None)
        _validate(ev, path, line)
        if line != pos + 1:
            ev["_line"] = line
        events.append(ev)
    return events


def _read_slowly(text: str, path: str, line: int, first: int) -> list[dict]:
    """The tokenizer's events of ``text``, which starts at top level on
    ``line`` and holds the history's operations from position ``first`` on.
    One vector (or list) holding the whole history gives its items."""
    forms = _read_forms(text, path, line)
    if first == 0 and len(forms) == 1 and isinstance(forms[0][0], list):
        forms = [(v, forms[0][1]) for v in forms[0][0]]
    return _events(forms, path, first)


# --------------------------------------------------------------------------- the translation

_CHUNK = 1 << 18  # bytes per translation: amortizes the passes, stays in cache (256 KB: 16% faster than 1 MB)
_MAX_NAMES = 96  # distinct keywords past which the passes cost more than the tokenizer

_NAME = rb"[A-Za-z_*+!?<>=.\-][^\s,\[\](){}\"\\;:#]*"
_KEY = re.compile(rb"(?:\{|, ):(" + _NAME + rb") ")
_KEYWORD = re.compile(rb":(" + _NAME + rb")(?![^\s,\[\](){}\"\\;])")
_TAG_AT = re.compile(rb"#[A-Za-z][\w.\-/]*")
_TAG_STARTS = (b"\n#", b" #", b",#", b"[#", b"(#", b"{#")  # a '#' that starts a token
# the numbers and strings between which a history's text repeats (fragments)
_BETWEEN_VALUES = re.compile(
    rb'"[^"]*"|(?<=[\s,\[{(])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[\s,\]})]|$)')
_MAX_FRAGMENTS = 64
_AFTER_KEYWORD_VALUE = re.compile(rb"(?<=[^\s,\[\](){}\"\\;])(?=, :)")
# a string the passes cannot touch: no separator, bracket, colon, #, ; or escape
_ALL_SAFE = re.compile(rb'(?:[^"]*+"[^"\s,:\[\](){}#;\\]*+")*+[^"]*+')
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_INT = b"0" * 19  # 19+ digits in a row: past what orjson keeps as an int
_TO_JSON = bytes.maketrans(b", ()\n", b" ,[],")
_TYPESET = frozenset(TYPES)


class _Passes:
    """The replacements of one history, learnt from its text as the runs are
    read (a history repeats the same few keywords and the same text between
    its numbers and strings).

    - ``fragments``: the frequent text between two numbers or strings (such
      as ``, :type :invoke, :f :read, :key ``, or the end of one line and the
      start of the next), each with its translation: one long needle per
      fragment, a few matches per line, instead of one pass per keyword;
    - ``key_passes``, ``value_passes``, ``nil_passes``, ``tag_passes``: the
      translation of what the fragments leave (and of the fragments).
    """

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.values: set[bytes] = set()
        self.tags: set[bytes] = set()
        self.fragments: list[tuple[bytes, bytes]] = []
        self._build()

    def learn(self, c: bytes) -> bool:
        """Adds the keywords, tags and fragments of ``c``; True if any was new."""
        before = (len(self.keys), len(self.values), len(self.tags))
        if b"#" in c:
            self.tags.update(_TAG_AT.findall(c))
        keys = set(_KEY.findall(c))
        self.keys |= keys
        rest = c
        for k in keys:
            rest = rest.replace(b":" + k + b" ", b"")
        self.values.update(_KEYWORD.findall(rest))
        new = (len(self.keys), len(self.values), len(self.tags)) != before
        if new:
            self._build()
        return self._learn_fragments(c) or new

    def _build(self) -> None:
        longest = sorted(self.tags, key=len, reverse=True)
        self.tag_passes = [(t + b" ", b"") for t in longest] + [(t, b"") for t in longest]
        self.key_passes = [(b":" + k + b" ", b'"' + k + b'":\t')
                           for k in sorted(self.keys, key=len, reverse=True)]
        self.value_passes = [(b":" + v, b'"' + v + b'"')
                             for v in sorted(self.values, key=len, reverse=True)]
        self.usable = len(self.keys) + len(self.values) <= _MAX_NAMES

    def _learn_fragments(self, c: bytes) -> bool:
        counts: dict[bytes, int] = {}
        for piece in _BETWEEN_VALUES.split(c):
            if b":" in piece or b"#" in piece:
                counts[piece] = counts.get(piece, 0) + 1
        # cut after each keyword value (", :type :invoke" | ", :f :read"): the
        # needles grow as the sum of the values a key takes, not their product
        entries: dict[bytes, int] = {}
        for piece, n in counts.items():
            for part in _AFTER_KEYWORD_VALUE.split(piece):
                if part:
                    entries[part] = entries.get(part, 0) + n
        counts = entries
        known = {f for f, _ in self.fragments}
        least = max(2, (c.count(b"\n") + 1) // 2000)
        added = False
        for piece, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if len(self.fragments) >= _MAX_FRAGMENTS or n < least:
                break
            if piece in known:
                continue
            out = self.translate(piece)
            if out.count(b":") == out.count(b"\t") and b"#" not in out:
                self.fragments.append((piece, out))
                added = True
        if added:
            self.fragments.sort(key=lambda f: len(f[0]), reverse=True)
        return added

    def translate(self, c: bytes) -> bytes:
        """``c`` with its tags, keywords and nils translated (not yet its
        separators and parentheses: see ``_TO_JSON``)."""
        if b"#" in c:
            for old, new in self.tag_passes:
                c = c.replace(old, new)
        for old, new in self.key_passes:
            c = c.replace(old, new)
        for old, new in self.value_passes:
            c = c.replace(old, new)
        if b"nil" in c:
            c = c.replace(b"\tnil", b"\tnull")
            if b"[" in c or b"(" in c:
                c = c.replace(b"[nil", b"[null").replace(b" nil", b" null").replace(b"(nil", b"(null")
        return c


def _fast_chunk(c: bytes, passes: _Passes) -> list | None:
    """The events of ``c`` through JSON, or None where the translation does
    not apply (see the module's header for why it never reads a different
    value). ``c`` is ``}\\n`` and whole lines, one map each, without the
    last newline."""
    if not passes.usable or b"\\" in c or b";" in c or b"\t" in c:
        return None
    if b'"' in c and _ALL_SAFE.fullmatch(c) is None:
        return None
    if b"null" in c or _LONG_INT in c.translate(_DIGITS):
        return None
    if b"#" in c and c.count(b"#") != sum(c.count(p) for p in _TAG_STARTS):
        return None  # a '#' inside an atom (:a#b), which no tag pass may cut
    for old, new in passes.fragments:
        c = new.join(c.split(old))  # c.replace(old, new), ~10% faster here
    events = _as_json(c)
    if events is None:  # what the fragments left: the passes of each keyword
        events = _as_json(passes.translate(c))
    return events


def _as_json(c: bytes) -> list | None:
    if b"#" in c:
        return None
    c = c.translate(_TO_JSON)
    if c.count(b":") != c.count(b"\t"):
        return None  # a colon no key pass wrote: a keyword left, or the input's own
    try:
        events = _orjson.loads(b"[{" + c + b"]")  # "[{" and "}," the empty map {}
    except _orjson.JSONDecodeError:
        return None
    del events[0]
    return events


def _well_formed(events: list) -> bool:
    """Every event a dict with a known type, a process and (clients) an f;
    ``key`` and ``value`` defaulted as the tokenizer's events have them."""
    typeset = _TYPESET
    for ev in events:
        if type(ev) is not dict:
            return False
        t = ev.get("type")
        if type(t) is not str or t not in typeset or "process" not in ev:
            return False
        if type(ev.get("f")) is not str and ev.get("process") != "nemesis":
            return False
        if "key" not in ev:
            ev["key"] = None
        if "value" not in ev:
            ev["value"] = None
    return True


def _vector_body(data: bytes) -> tuple[int, int] | None:
    """Where the maps of a history written as one vector ``[{...}\\n{...}]``
    (or list) lie in ``data`` (after the ``[``, before the ``]``), or None."""
    i = len(data) - len(data.lstrip())
    j = len(data.rstrip())
    if j - i < 2 or data[i:i + 1] + data[j - 1:j] not in (b"[]", b"()"):
        return None
    return i + 1, j - 1


def parse_edn(text: str | bytes, path: str = "<history>") -> list[dict]:
    """Events of an EDN history: top-level maps, or one vector/list of maps.

    ``text`` may be the file's bytes (UTF-8; no decoded copy is made then).
    Run by run of whole lines, the translation into JSON where it applies and
    the tokenizer where not; past a run the tokenizer cannot close (a map
    over many lines, a malformed line), the tokenizer reads the rest, so a
    bad line is named as the tokenizer alone names it."""
    src = _Source(text, path)
    if _orjson is None:
        return _read_slowly(src.text(0, len(src.data)), path, 1, 0)
    body = _vector_body(src.data)
    if body is not None:
        # one vector of maps, one per line: the maps alone are read as a
        # history of top-level maps; anything else reads the whole text
        events = _read_runs(src, body[0], body[1], vector=True)
        return events if events is not None else _read_slowly(src.text(0, len(src.data)),
                                                                path, 1, 0)
    events = _read_runs(src, 0, len(src.data), vector=False)
    assert events is not None
    return events


class _Source:
    """The history's bytes, and its text where the tokenizer needs it."""

    def __init__(self, text: str | bytes, path: str) -> None:
        self.path = path
        self.given_text = isinstance(text, str)
        # surrogatepass: a str is read as it is (orjson rejects what is not UTF-8)
        self.data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text

    def text(self, start: int, end: int) -> str:
        if self.given_text:
            return self.data[start:end].decode("utf-8", "surrogatepass")
        try:
            return self.data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            try:  # named as read_history names it: the position in the file
                self.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HistoryError(self.path, None, f"cannot read: {exc}") from None
            raise  # pragma: no cover - a run is cut at a newline, never inside a character


def _read_runs(src: _Source, start: int, end: int, vector: bool) -> list[dict] | None:
    """The events of ``src.data[start:end]`` (whole lines, at top level), run
    by run. With ``vector`` (the maps inside one vector), None where the
    tokenizer would have to read: the caller then reads the whole text."""
    data, path = src.data, src.path
    events: list[dict] = []
    passes = _Passes()
    translate, loads = _translate, _orjson.loads
    line = data.count(b"\n", 0, start) + 1
    learnt = False
    pos = start
    while pos < end:
        cut = end if end - pos <= _CHUNK else data.find(b"\n", pos + _CHUNK, end)
        if cut < 0:
            cut = end
        stop = cut
        while stop > pos and data[stop - 1] == 10:  # the history's trailing newlines
            stop -= 1
        lines = data.count(b"\n", pos, stop) + 1  # those of the maps: one each
        # "}\n" ahead of the run (the previous line's end, or added), so its
        # first line's start matches the fragment that joins two lines
        if translate is not None:
            pass
        elif pos - start >= 2 and data[pos - 2:pos] == b"}\n":
            c = data[pos - 2:stop]
        else:
            c = b"}\n" + data[pos:stop]
        if translate is not None:
            out = translate(data, pos, stop)
            try:
                evs = None if out is None else loads(out)
            except _orjson.JSONDecodeError:
                evs = None
        else:
            if not learnt:
                passes.learn(c)
                learnt = True
            evs = _fast_chunk(c, passes)
            if evs is None and passes.learn(c):
                evs = _fast_chunk(c, passes)
        if evs is not None and (len(evs) != lines or not _well_formed(evs)):
            evs = None
        if evs is not None:
            if line != len(events) + 1:
                for i, ev in enumerate(evs, line):
                    ev["_line"] = i
            events += evs
        else:
            if vector:
                return None
            try:
                forms = _read_forms(src.text(pos, cut), path, line, whole=False)
                evs = _events(forms, path, len(events))
            except (HistoryError, _Incomplete):
                # a form past this run, or a bad one: the tokenizer reads the
                # rest as it would have read the whole text
                events += _read_slowly(src.text(pos, end), path, line, len(events))
                return events
            events += evs
        line += lines + cut - stop
        pos = cut + 1
    return events
