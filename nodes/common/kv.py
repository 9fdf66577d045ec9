"""The replicated key-value state machine shared by the Raft and Paxos cores.

Owns: the map from key to value and the meaning of the three client
operations (docs/node-contract.md, "Client requests and replies"), and what
a well-formed replicated command is (``check_command``, used by both codecs
and by Paxos's restore). Pure and deterministic: the same sequence of
``apply`` calls gives the same replies and the same state on every replica,
which is what state machine safety rests on.

Invariants:
- ``apply`` never raises on a well-formed command and never mutates ``cmd``.
- A failed ``cas`` (absent key or wrong expected value) changes nothing and is
  ``definite`` (it certainly did not take effect).
- ``restore(snapshot())`` equals the original store.
"""

from __future__ import annotations

from typing import Any

import msgpack

#: Replies shared by every call, never mutated by the cores (they copy before
#: adding "id"), so the hot path allocates nothing for a plain write.
_OK: dict[str, Any] = {"ok": True}
_NO_KEY: dict[str, Any] = {"ok": False, "error": "no_key", "definite": True}
_MISMATCH: dict[str, Any] = {"ok": False, "error": "cas_mismatch", "definite": True}


#: The operations a replicated command may carry.
COMMAND_OPS = frozenset(("write", "cas", "read"))


def check_command(data: Any) -> Any:
    """``data`` if it is a command the store can apply or None (a no-op);
    else ValueError (one line)."""
    if data is None or (type(data) is dict and data.get("op") in COMMAND_OPS
                        and type(data.get("key")) is str):
        return data
    raise ValueError(f"bad log entry command {data!r}"[:200])


class KVStore:
    """A map of cas-registers, one per key."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}

    def apply(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Apply one command; return the client reply body without "id".

        The returned dict may be shared: callers must copy it before adding
        fields (``dict(reply, id=...)``)."""
        op = cmd["op"]
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

    def read(self, key: str) -> dict[str, Any]:
        """A read without going through ``apply`` (read-index serves reads this way)."""
        return {"ok": True, "value": self.data.get(key)}

    def snapshot(self) -> bytes:
        """The whole state as msgpack bytes: a map from key to value."""
        return msgpack.packb(self.data, use_bin_type=True)

    @classmethod
    def restore(cls, data: bytes) -> KVStore:
        """The store a ``snapshot()`` was taken of. Raises ``ValueError`` on garbage."""
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types
            raise ValueError(f"bad key-value snapshot: {exc}") from exc
        if not isinstance(obj, dict):  # bad data, not a caller's type error
            raise ValueError("bad key-value snapshot: not a map")  # noqa: TRY004
        return cls(obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KVStore) and self.data == other.data

    def __len__(self) -> int:
        return len(self.data)
