"""Raft messages on the wire (implements core_api.Codec).

Derived from the dataclasses of messages.py by nodes/common/msgcodec.py, with
its one key convention: ``{"type": TAG, FIELD: VALUE, ...}`` under the field
names (docs/node-contract.md, "Wire format"). What Raft adds is one kind:
``AppendEntries.entries`` travel as ``[[term, command], ...]``; their indexes
follow from ``prev_index``, which keeps big batches small and cheap, and each
command must be one the key-value store can apply (or None, the leader's
no-op). Snapshots travel as ``[index, term, data]``.

Invariants: ``decode(encode(m)) == m`` for every message the core produces;
``decode`` raises ``ValueError`` on anything else. This runs once per
message on the hot path: plain attribute reads and type checks.
"""

from __future__ import annotations

from typing import Any

from nodes.common.core_api import Entry
from nodes.common.kv import COMMAND_OPS, check_command
from nodes.common.msgcodec import DerivedCodec, Kind, nat
from nodes.raft.messages import WIRE_TYPES


def _enc_entries(entries: Any) -> list[list[Any]]:
    return [[e.term, e.data] for e in entries]


def _dec_entries(o: dict[str, Any], name: str) -> list[Entry]:
    raw = o.get(name)
    if type(raw) is not list:
        raise ValueError(f"field {name!r} must be a list")
    index = nat(o, "prev_index")
    entries = []
    ops = COMMAND_OPS
    for item in raw:
        if type(item) is not list or len(item) != 2:
            raise ValueError(f"bad entry {item!r}"[:200])
        term, data = item
        if type(term) is not int or term < 0:
            raise ValueError(f"bad entry term {term!r}"[:200])
        # check_command inlined for the common case (once per replicated entry).
        if data is not None and (type(data) is not dict or data.get("op") not in ops
                                 or type(data.get("key")) is not str):
            check_command(data)
        index += 1
        entries.append(Entry(index, term, data))
    return entries


codec = DerivedCodec(WIRE_TYPES, {"Sequence[Entry]": Kind(_dec_entries, _enc_entries)})
