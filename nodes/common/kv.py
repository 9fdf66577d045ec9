"""The replicated key-value state machine shared by the Raft and Paxos cores.

Owns: the map from key to value and the meaning of the client operations
(docs/node-contract.md, "Client requests and replies": read, write, cas and
the list-append transaction ``txn``), what a well-formed replicated command
is (``check_command``, used by both codecs and by Paxos's restore) and what a
well-formed transaction request is (``validate_txn``, used by the wire). Pure and deterministic: the same sequence of
``apply`` calls gives the same replies and the same state on every replica,
which is what state machine safety rests on.

Invariants:
- ``apply`` never raises on a well-formed command and never mutates ``cmd``.
- A failed ``cas`` (absent key or wrong expected value) changes nothing and is
  ``definite`` (it certainly did not take effect).
- ``restore(snapshot())`` equals the original store; ``snapshot(extra)``
  carries ``extra`` beside the map (``restore_with_extra``), and ``restore``
  reads both forms.
- A ``txn`` is all or nothing: it is checked whole before any micro-operation
  changes the store, and its reads see the transaction's own earlier appends.
  Stored lists are never handed out: a read returns a copy, so a reply is not
  changed by later appends.
"""

from __future__ import annotations

from typing import Any

import msgpack

#: Replies shared by every call, never mutated by the cores (they copy before
#: adding "id"), so the hot path allocates nothing for a plain write.
_OK: dict[str, Any] = {"ok": True}
_NO_KEY: dict[str, Any] = {"ok": False, "error": "no_key", "definite": True}
_MISMATCH: dict[str, Any] = {"ok": False, "error": "cas_mismatch", "definite": True}
_NOT_A_LIST: dict[str, Any] = {"ok": False, "error": "not_a_list", "definite": True}


#: The single-key operations a replicated command may carry (keyed by "key").
COMMAND_OPS = frozenset(("write", "cas", "read"))

#: At most this many micro-operations per transaction (bounds what one request
#: makes every replica do).
MAX_TXN_OPS = 1024


def txn_problem(mops: Any) -> str:
    """Why ``mops`` is not a transaction's micro-operations, or "" if it is:
    a non-empty list of ``["append", key, value]`` and ``["r", key, null]``
    with string keys."""
    if type(mops) is not list or not mops:
        return "txn must be a non-empty list of micro-operations"
    if len(mops) > MAX_TXN_OPS:
        return f"txn has more than {MAX_TXN_OPS} micro-operations"
    for m in mops:
        if type(m) is not list or len(m) != 3 or m[0] not in ("append", "r") \
                or type(m[1]) is not str:
            return "each micro-operation is [\"append\", key, value] or [\"r\", key, null]"
    return ""


def check_command(data: Any) -> Any:
    """``data`` if it is a command the store can apply or None (a no-op);
    else ValueError (one line)."""
    if data is None or (type(data) is dict and data.get("op") in COMMAND_OPS
                        and type(data.get("key")) is str):
        return data
    if type(data) is dict and data.get("op") == "txn" and not txn_problem(data.get("txn")):
        return data
    raise ValueError(f"bad log entry command {data!r}"[:200])


def validate_txn(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """A clean ``txn`` client request ``{"id", "op": "txn", "txn": [...]}``
    (reads' values dropped to null) from a decoded map whose ``id`` is
    already checked, or (None, why not)."""
    mops = obj.get("txn")
    why = txn_problem(mops)
    if why:
        return None, why
    clean = [[f, k, v if f == "append" else None] for f, k, v in mops]
    return {"id": obj["id"], "op": "txn", "txn": clean}, ""


def split_txn(cmd: dict[str, Any]) -> list[dict[str, Any]]:
    """BUG txn-split: one command per micro-operation of a ``txn``, each marked
    ``"part": [i, n]`` so the applier can join their results into one reply."""
    mops = cmd["txn"]
    n = len(mops)
    return [{"op": "txn", "txn": [m], "part": [i, n]} for i, m in enumerate(mops)]


class KVStore:
    """A map of cas-registers, one per key; a key a transaction appends to
    holds a list."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}

    def apply(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Apply one command; return the client reply body without "id".

        The returned dict may be shared: callers must copy it before adding
        fields (``dict(reply, id=...)``)."""
        op = cmd["op"]
        if op == "txn":
            return self.apply_txn(cmd["txn"])
        key = cmd["key"]
        if op == "write":
            self.data[key] = cmd.get("value")
            return _OK
        if op == "read":
            return {"ok": True, "value": self.data.get(key)}
        if op == "cas":
            if key not in self.data:
                return _NO_KEY
            if self.data[key] != cmd.get("expected"):
                return _MISMATCH
            self.data[key] = cmd.get("value")
            return _OK
        raise ValueError(f"unknown op {op!r}")

    def apply_txn(self, mops: list[list[Any]]) -> dict[str, Any]:
        """Apply one transaction atomically: ``{"ok": true, "value": mops}`` with
        each read's list filled in (a copy; null for an absent key), or, if it
        appends to a key that holds something other than a list, a definite
        ``not_a_list`` failure that changed nothing."""
        data = self.data
        for f, k, _v in mops:
            if f == "append":
                cur = data.get(k)
                if cur is not None and type(cur) is not list:
                    return _NOT_A_LIST
        out = []
        for f, k, v in mops:
            if f == "append":
                cur = data.get(k)
                if cur is None:
                    data[k] = [v]
                else:
                    cur.append(v)
                out.append(["append", k, v])
            else:
                cur = data.get(k)
                out.append(["r", k, None if cur is None else list(cur)])
        return {"ok": True, "value": out}

    def read(self, key: str) -> dict[str, Any]:
        """A read without going through ``apply`` (read-index serves reads this way)."""
        return {"ok": True, "value": self.data.get(key)}

    def snapshot(self, extra: Any = None) -> bytes:
        """The whole state as msgpack bytes: a map from key to value, or, with
        ``extra`` (the applier's agreement chain, nodes/common/applier.py),
        the array ``[map, extra]``."""
        if extra is None:
            return msgpack.packb(self.data, use_bin_type=True)
        return msgpack.packb([self.data, extra], use_bin_type=True)

    @classmethod
    def restore(cls, data: bytes) -> KVStore:
        """The store a ``snapshot()`` was taken of. Raises ``ValueError`` on garbage."""
        return cls.restore_with_extra(data)[0]

    @classmethod
    def restore_with_extra(cls, data: bytes) -> tuple[KVStore, Any]:
        """(the store, the ``extra`` it was taken with or None) of a ``snapshot()``.
        Raises ``ValueError`` on garbage."""
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types
            raise ValueError(f"bad key-value snapshot: {exc}") from exc
        extra = None
        if type(obj) is list and len(obj) == 2:
            obj, extra = obj
        if not isinstance(obj, dict):  # bad data, not a caller's type error
            raise ValueError("bad key-value snapshot: not a map")  # noqa: TRY004
        return cls(obj), extra

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KVStore) and self.data == other.data

    def __len__(self) -> int:
        return len(self.data)
