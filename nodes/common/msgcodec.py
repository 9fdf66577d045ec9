"""Peer-message codecs derived from the message dataclasses (docs/node-contract.md, "Wire format").

Owns the one key convention both protocols use on the wire: a message is a
msgpack map ``{"type": TAG, FIELD: VALUE, ...}`` with exactly the fields of
its frozen dataclass, under their Python names, in declaration order; the
protocol's messages module names each class's TAG (``WIRE_TYPES``). How a
field's value travels is chosen by its type annotation through a table of
``Kind``s: the shared ones below (str, non-negative int, bool, Snapshot) and
the few a protocol adds (Raft's entries, Paxos's ballots and slot lists).

``derive`` writes, once at import, one straight-line encoder and one decoder
per class (a dict literal; a constructor call over per-field checks), so the
hot path pays no reflection: the same code a person would write by hand,
without the copies.

Invariants:
- ``decode(encode(m)) == m`` for every message the cores produce.
- ``decode`` raises ``ValueError`` (one line) for anything that is not a
  well-typed map of a known TAG (missing field, wrong type, negative index,
  a command or snapshot the key-value store cannot use), so a peer's
  garbage never reaches a core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodes.common.core_api import Snapshot
from nodes.common.kv import KVStore


@dataclass(frozen=True, slots=True)
class Kind:
    """How one annotation travels: ``encode(value)`` (None: as it is) and
    ``decode(obj, name)``, which reads field ``name`` of the received map
    ``obj`` (a kind may look at other fields) and raises ValueError."""

    decode: Callable[[dict[str, Any], str], Any]
    encode: Callable[[Any], Any] | None = None


def nat(obj: dict[str, Any], name: str) -> int:
    """A non-negative int field (bool is not an int here)."""
    v = obj.get(name)
    if type(v) is not int or v < 0:
        raise ValueError(f"field {name!r} must be a non-negative integer, got {v!r}"[:200])
    return v


def text(obj: dict[str, Any], name: str) -> str:
    v = obj.get(name)
    if type(v) is not str:
        raise ValueError(f"field {name!r} must be a string, got {v!r}"[:200])
    return v


def flag(obj: dict[str, Any], name: str) -> bool:
    v = obj.get(name)
    if type(v) is not bool:
        raise ValueError(f"field {name!r} must be a boolean, got {v!r}"[:200])
    return v


def snapshot_of(v: Any, name: str) -> Snapshot:
    """``[index, term, data]`` whose data is a key-value map (else ValueError)."""
    if type(v) is not list or len(v) != 3 or type(v[2]) is not bytes:
        raise ValueError(f"field {name!r} must be [index, term, bytes]")
    index, term, data = v
    if type(index) is not int or index < 0 or type(term) is not int or term < 0:
        raise ValueError(f"field {name!r} has a bad index or term")
    KVStore.restore(data)  # raises ValueError on garbage: never reaches a core
    return Snapshot(index, term, data)


def _enc_snapshot(s: Snapshot | None) -> list[Any] | None:
    return None if s is None else [s.index, s.term, s.data]


def _dec_snapshot(obj: dict[str, Any], name: str) -> Snapshot:
    return snapshot_of(obj.get(name), name)


def _dec_maybe_snapshot(obj: dict[str, Any], name: str) -> Snapshot | None:
    v = obj.get(name)
    return None if v is None else snapshot_of(v, name)


#: The kinds both protocols share, by annotation.
COMMON_KINDS: dict[str, Kind] = {
    "str": Kind(text),
    "int": Kind(nat),
    "bool": Kind(flag),
    "Snapshot": Kind(_dec_snapshot, _enc_snapshot),
    "Snapshot | None": Kind(_dec_maybe_snapshot, _enc_snapshot),
}


class DerivedCodec:
    """``core_api.Codec`` for the dataclasses of one protocol."""

    def __init__(self, wire_types: dict[str, type], kinds: dict[str, Kind]) -> None:
        table = {**COMMON_KINDS, **kinds}
        self.encoders: dict[type, Callable[[Any], dict[str, Any]]] = {}
        self.decoders: dict[str, Callable[[dict[str, Any]], Any]] = {}
        for tag, cls in wire_types.items():
            enc, dec = _derive(tag, cls, table)
            self.encoders[cls] = enc
            self.decoders[tag] = dec

    def encode(self, msg: Any) -> dict[str, Any]:
        try:
            return self.encoders[type(msg)](msg)
        except KeyError:
            raise TypeError(f"not a message of this protocol: {msg!r}"[:200]) from None

    def decode(self, obj: Any) -> Any:
        if type(obj) is not dict:
            raise ValueError(f"a peer message must be a map, got {type(obj).__name__}")
        kind = obj.get("type")
        decoder = self.decoders.get(kind) if type(kind) is str else None
        if decoder is None:
            raise ValueError(f"unknown message type {kind!r}"[:200])
        return decoder(obj)

    def dest(self, msg: Any) -> str:
        return msg.dest


#: The plain kinds' checks, written inline into the generated decoders (a
#: function call per field would cost more than the check): the condition
#: under which value ``v`` is bad, and the function that says why.
_INLINE = {
    "str": ("type({v}) is not str", text),
    "int": ("type({v}) is not int or {v} < 0", nat),
    "bool": ("type({v}) is not bool", flag),
}


def _derive(tag: str, cls: type, table: dict[str, Kind]) -> tuple[Callable, Callable]:
    """Write ``cls``'s encoder and decoder as straight-line functions."""
    env: dict[str, Any] = {"cls": cls}
    enc_items = [f'"type": {tag!r}']
    dec_lines = ["def dec(o):", "    get = o.get"]
    dec_args = []
    for k, f in enumerate(dataclasses.fields(cls)):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        kind = table.get(annotation)
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no wire kind for {annotation!r}")
        inline = _INLINE.get(annotation) if kind is COMMON_KINDS.get(annotation) else None
        if inline is not None:
            bad, why = inline
            env[f"d{k}"] = why  # raises the one-line ValueError
            dec_lines.append(f"    v{k} = get({f.name!r})")
            dec_lines.append(f"    if {bad.format(v=f'v{k}')}:")
            dec_lines.append(f"        d{k}(o, {f.name!r})")
            dec_args.append(f"v{k}")
        else:
            env[f"d{k}"] = kind.decode
            dec_args.append(f"d{k}(o, {f.name!r})")
        if kind.encode is None:
            enc_items.append(f"{f.name!r}: m.{f.name}")
        else:
            env[f"e{k}"] = kind.encode
            enc_items.append(f"{f.name!r}: e{k}(m.{f.name})")
    dec_lines.append(f"    return cls({', '.join(dec_args)})")
    src = f"def enc(m):\n    return {{{', '.join(enc_items)}}}\n" + "\n".join(dec_lines) + "\n"
    exec(compile(src, f"<codec {cls.__name__}>", "exec"), env)  # noqa: S102 -- our own fields
    return env["enc"], env["dec"]
