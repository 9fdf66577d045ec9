"""Wire encoding of Paxos messages: dataclass <-> msgpack-able map.

Owns: the field names on the wire and the validation of everything a peer
sends. Every map carries ``type``, ``src``, ``dest`` (DESIGN.md, "Wire
format"); ballots travel as ``[round, node]``; entries as ``[slot, value]``.

Invariant: ``decode`` either returns a well-typed message or raises
``ValueError`` -- a malformed peer message never reaches the core.
"""

from __future__ import annotations

from typing import Any

from nodes.common.core_api import Snapshot
from nodes.common.kv import KVStore
from nodes.paxos.messages import (
    Accept,
    Accepted,
    Ballot,
    Learn,
    Message,
    Prepare,
    Promise,
    PromiseEntry,
)


def ballot_of(obj: Any) -> Ballot:
    if (
        isinstance(obj, (list, tuple))
        and len(obj) == 2
        and type(obj[0]) is int
        and obj[0] >= 0
        and isinstance(obj[1], str)
    ):
        return (obj[0], obj[1])
    raise ValueError(f"bad ballot {obj!r}")


def _int(obj: Any, what: str) -> int:
    if type(obj) is int and obj >= 0:
        return obj
    raise ValueError(f"bad {what} {obj!r}")


def _str(obj: Any, what: str) -> str:
    if isinstance(obj, str):
        return obj
    raise ValueError(f"bad {what} {obj!r}")


_OPS = frozenset(("read", "write", "cas"))


def check_command(value: Any) -> Any:
    """A slot's value: None (no-op) or a command the key-value store can apply."""
    if value is None or (
        isinstance(value, dict) and value.get("op") in _OPS and isinstance(value.get("key"), str)
    ):
        return value
    raise ValueError(f"bad command {value!r}"[:200])


def _entries(obj: Any) -> tuple[tuple[int, Any], ...]:
    if not isinstance(obj, (list, tuple)):
        raise ValueError("bad entries")  # noqa: TRY004 -- Codec contract: ValueError
    out = []
    for item in obj:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"bad entry {item!r}"[:200])
        out.append((_int(item[0], "slot"), check_command(item[1])))
    return tuple(out)


def _snapshot(obj: Any) -> Snapshot | None:
    if obj is None:
        return None
    if isinstance(obj, list) and len(obj) == 2 and isinstance(obj[1], bytes):
        KVStore.restore(obj[1])  # raises ValueError on garbage: never reaches the core
        return Snapshot(_int(obj[0], "snapshot index"), 0, obj[1])
    raise ValueError("bad snapshot")


def _enc_snapshot(snap: Snapshot | None) -> list[Any] | None:
    return None if snap is None else [snap.index, snap.data]


class PaxosCodec:
    """The ``core_api.Codec`` for Paxos."""

    def dest(self, msg: Message) -> str:
        return msg.dest

    def encode(self, msg: Message) -> dict[str, Any]:
        if type(msg) is Accept:
            return {
                "type": "accept",
                "src": msg.src,
                "dest": msg.dest,
                "b": msg.ballot,
                "e": msg.entries,
                "c": msg.commit,
                "q": msg.seq,
            }
        if type(msg) is Accepted:
            return {
                "type": "accepted",
                "src": msg.src,
                "dest": msg.dest,
                "b": msg.ballot,
                "ok": msg.ok,
                "p": msg.promised,
                "s": msg.slots,
                "c": msg.commit,
                "q": msg.seq,
                "x": msg.stuck,
            }
        if type(msg) is Prepare:
            return {"type": "prepare", "src": msg.src, "dest": msg.dest, "b": msg.ballot,
                    "f": msg.from_slot}
        if type(msg) is Promise:
            return {
                "type": "promise",
                "src": msg.src,
                "dest": msg.dest,
                "b": msg.ballot,
                "ok": msg.ok,
                "p": msg.promised,
                "a": [[e.slot, e.ballot, e.value, e.chosen] for e in msg.accepted],
                "c": msg.commit,
                "snap": _enc_snapshot(msg.snapshot),
            }
        if type(msg) is Learn:
            return {
                "type": "learn",
                "src": msg.src,
                "dest": msg.dest,
                "b": msg.ballot,
                "e": msg.entries,
                "snap": _enc_snapshot(msg.snapshot),
                "c": msg.commit,
            }
        raise TypeError(f"not a Paxos message: {msg!r}")

    def decode(self, obj: Any) -> Message:
        if not isinstance(obj, dict):
            raise ValueError("message is not a map")  # noqa: TRY004 -- Codec contract
        try:
            kind = obj["type"]
            src = _str(obj["src"], "src")
            dest = _str(obj["dest"], "dest")
            ballot = ballot_of(obj["b"])
            if kind == "accept":
                return Accept(src, dest, ballot, _entries(obj["e"]), _int(obj["c"], "commit"),
                              _int(obj["q"], "seq"))
            if kind == "accepted":
                slots = obj["s"]
                if not isinstance(slots, (list, tuple)) or any(type(s) is not int for s in slots):
                    raise ValueError("bad slots")
                return Accepted(src, dest, ballot, bool(obj["ok"]), ballot_of(obj["p"]),
                                tuple(slots), _int(obj["c"], "commit"), _int(obj["q"], "seq"),
                                bool(obj["x"]))
            if kind == "prepare":
                return Prepare(src, dest, ballot, _int(obj["f"], "from_slot"))
            if kind == "promise":
                acc = obj["a"]
                if not isinstance(acc, (list, tuple)):
                    raise ValueError("bad accepted list")
                entries = []
                for item in acc:
                    if not isinstance(item, (list, tuple)) or len(item) != 4:
                        raise ValueError(f"bad promise entry {item!r}")
                    slot, value = _entries([[item[0], item[2]]])[0]
                    entries.append(PromiseEntry(slot, ballot_of(item[1]), value, bool(item[3])))
                return Promise(src, dest, ballot, bool(obj["ok"]), ballot_of(obj["p"]),
                               tuple(entries), _int(obj["c"], "commit"), _snapshot(obj["snap"]))
            if kind == "learn":
                return Learn(src, dest, ballot, _entries(obj["e"]), _snapshot(obj["snap"]),
                             _int(obj["c"], "commit"))
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        raise ValueError(f"unknown message type {kind!r}")


codec = PaxosCodec()
