"""Multi-Paxos messages on the wire (implements core_api.Codec).

Derived from the dataclasses of messages.py by nodes/common/msgcodec.py, with
its one key convention: ``{"type": TAG, FIELD: VALUE, ...}`` under the field
names (docs/node-contract.md, "Wire format"). What Paxos adds are its kinds:
ballots travel as ``[round, node]``, slot entries as ``[[slot, command],
...]``, promise records as ``[[slot, ballot, command, chosen], ...]``, slot
lists as ``[slot, ...]``; every command must be one the key-value store can
apply (or None, a no-op).

Invariant: ``decode`` either returns a well-typed message or raises
``ValueError`` -- a malformed peer message never reaches the core.
"""

from __future__ import annotations

from typing import Any

from nodes.common.kv import check_command
from nodes.common.msgcodec import DerivedCodec, Kind
from nodes.paxos.messages import WIRE_TYPES, Ballot, PromiseEntry


def ballot_of(obj: Any) -> Ballot:
    if (
        isinstance(obj, (list, tuple))
        and len(obj) == 2
        and type(obj[0]) is int
        and obj[0] >= 0
        and isinstance(obj[1], str)
    ):
        return (obj[0], obj[1])
    raise ValueError(f"bad ballot {obj!r}"[:200])


def _slot(v: Any) -> int:
    if type(v) is int and v >= 0:
        return v
    raise ValueError(f"bad slot {v!r}"[:200])


def _list(o: dict[str, Any], name: str) -> list[Any] | tuple[Any, ...]:
    v = o.get(name)
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"field {name!r} must be a list")  # noqa: TRY004 -- Codec contract
    return v


def _dec_ballot(o: dict[str, Any], name: str) -> Ballot:
    return ballot_of(o.get(name))


def _dec_entries(o: dict[str, Any], name: str) -> tuple[tuple[int, Any], ...]:
    out = []
    for item in _list(o, name):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"bad entry {item!r}"[:200])
        out.append((_slot(item[0]), check_command(item[1])))
    return tuple(out)


def _dec_promised(o: dict[str, Any], name: str) -> tuple[PromiseEntry, ...]:
    out = []
    for item in _list(o, name):
        if not isinstance(item, (list, tuple)) or len(item) != 4 or type(item[3]) is not bool:
            raise ValueError(f"bad promise entry {item!r}"[:200])
        out.append(PromiseEntry(_slot(item[0]), ballot_of(item[1]), check_command(item[2]),
                                item[3]))
    return tuple(out)


def _enc_promised(entries: tuple[PromiseEntry, ...]) -> list[list[Any]]:
    return [[e.slot, e.ballot, e.value, e.chosen] for e in entries]


def _dec_slots(o: dict[str, Any], name: str) -> tuple[int, ...]:
    return tuple(_slot(s) for s in _list(o, name))


codec = DerivedCodec(WIRE_TYPES, {
    "Ballot": Kind(_dec_ballot),
    "tuple[tuple[int, Value], ...]": Kind(_dec_entries),
    "tuple[PromiseEntry, ...]": Kind(_dec_promised, _enc_promised),
    "tuple[int, ...]": Kind(_dec_slots),
})
