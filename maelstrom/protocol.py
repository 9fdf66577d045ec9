"""Maelstrom's protocol as this harness speaks it: ids, error codes, replies.

Owns the reading of Maelstrom's doc/protocol.md that the adapter
(maelstrom/host.py), the services (maelstrom/services.py) and the checkers
(maelstrom/checkers.py) share:

- node ids: Maelstrom's nodes are ``n0``, ``n1``, ... in cluster.json's order
  (our node ``n1`` is Maelstrom's ``n0``); clients are ``c1``, ``c2``, ...
  (the worker slot plus one), ``c0`` is the harness itself (``init``,
  ``topology``);
- error codes: the definite ones say the operation certainly did not happen
  (the history records ``fail``), every other code, known or not, is
  indefinite (``info``), as Maelstrom's rule for unknown codes says;
- the one translation of a Maelstrom reply body into our client reply
  (docs/node-contract.md "Client requests and replies"): ``ok`` with the
  result under ``value``, or ``ok: false`` with ``error`` "CODE name",
  ``code``, ``text`` and ``definite``.

``loads``/``dumps`` are the one JSON codec of the package's hot paths.

Invariant: nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

try:  # JSON lines on the hot path: orjson when there (the checker depends on it)
    from orjson import dumps, loads
except ImportError:  # pragma: no cover
    import json

    def loads(data: bytes | str) -> Any:
        return json.loads(data)

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

#: code -> (name, definite), Maelstrom's table (doc/protocol.md "Errors").
ERRORS: dict[int, tuple[str, bool]] = {
    0: ("timeout", False),
    1: ("node-not-found", True),
    10: ("not-supported", True),
    11: ("temporarily-unavailable", True),
    12: ("malformed-request", True),
    13: ("crash", False),
    14: ("abort", True),
    20: ("key-does-not-exist", True),
    21: ("key-already-exists", True),
    22: ("precondition-failed", True),
    30: ("txn-conflict", True),
}

#: The service nodes Maelstrom provides (doc/services.md).
SERVICES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")

#: The field of an ``*_ok`` body that holds the operation's result (doc/workloads.md).
RESULT_FIELD = {"read_ok": ("value", "messages"), "generate_ok": ("id",), "echo_ok": ("echo",),
                "ts_ok": ("ts",), "txn_ok": ("txn",)}


def maelstrom_ids(node_ids: list[str]) -> dict[str, str]:
    """Our node id -> Maelstrom's (``n0``, ``n1``, ... in cluster.json's order)."""
    return {nid: f"n{i}" for i, nid in enumerate(node_ids)}


def is_definite(code: Any) -> bool:
    """Maelstrom's rule: only the listed definite codes are definite; custom codes never."""
    entry = ERRORS.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    return bool(entry and entry[1])


def error_name(code: Any) -> str:
    entry = ERRORS.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    return entry[0] if entry else "unknown"


def error_text(code: Any) -> str:
    """What the history's ``error`` field says for ``code``: ``"22 precondition-failed"``."""
    return f"{code} {error_name(code)}"


def code_of(error: Any) -> int | None:
    """The code an ``error`` field written by ``error_text`` names, else None."""
    if not isinstance(error, str):
        return None
    head = error.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def client_reply(rid: int, body: dict[str, Any]) -> dict[str, Any]:
    """Our client reply to request ``rid`` for the Maelstrom reply ``body``."""
    kind = body.get("type")
    if kind == "error":
        code = body.get("code")
        return {"id": rid, "ok": False, "error": error_text(code), "code": code,
                "text": body.get("text"), "definite": is_definite(code)}
    reply: dict[str, Any] = {"id": rid, "ok": True, "type": kind}
    for name in RESULT_FIELD.get(kind, ()):  # type: ignore[arg-type]
        if name in body:
            reply["value"] = body[name]
            break
    return reply


def error_body(code: int, text: str, in_reply_to: Any) -> dict[str, Any]:
    """A Maelstrom error body (services, and the adapter's own refusals)."""
    return {"type": "error", "code": code, "text": text, "in_reply_to": in_reply_to}


def grid(ids: list[str]) -> dict[str, list[str]]:
    """Maelstrom's default broadcast topology: the nodes row by row on a square
    grid, each a neighbour of the ones above, below, left and right."""
    n = len(ids)
    side = 1
    while side * side < n:
        side += 1
    out: dict[str, list[str]] = {}
    for i, nid in enumerate(ids):
        r, c = divmod(i, side)
        near = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
        out[nid] = [ids[rr * side + cc] for rr, cc in near
                    if 0 <= cc < side and 0 <= rr and rr * side + cc < n]
    return out
