"""Raft messages to msgpack-able maps and back (implements core_api.Codec).

Owns: the wire shape of every message in messages.py. Each map carries
"type", "src", "dest" (DESIGN.md, "Wire format") plus the message's fields.
Entries of an AppendEntries travel as ``[[term, data], ...]``: their indexes
follow from ``prev_index``, which keeps big batches small and cheap.

Invariants:
- ``decode(encode(m)) == m`` for every message the core produces.
- ``decode`` accepts only well-typed maps and raises ``ValueError`` for
  anything else (wrong type, missing field, negative index, an entry whose
  command the key-value store could not apply), so a peer's garbage can never
  reach the core. Both directions run once per message on the hot path: they
  are plain attribute reads and isinstance checks, no reflection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nodes.common.core_api import Entry, Snapshot
from nodes.raft.messages import (
    AppendEntries,
    AppendReply,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    PreVote,
    PreVoteReply,
    RequestVote,
    RequestVoteReply,
    SnapshotReply,
)

_OPS = frozenset(("write", "cas", "read"))


def _enc_prevote(m: PreVote) -> dict[str, Any]:
    return {"type": "prevote", "src": m.src, "dest": m.dest, "term": m.term,
            "last_index": m.last_index, "last_term": m.last_term}


def _enc_vote(m: RequestVote) -> dict[str, Any]:
    return {"type": "vote", "src": m.src, "dest": m.dest, "term": m.term,
            "last_index": m.last_index, "last_term": m.last_term}


def _enc_prevote_reply(m: PreVoteReply) -> dict[str, Any]:
    return {"type": "prevote_reply", "src": m.src, "dest": m.dest, "term": m.term,
            "granted": m.granted}


def _enc_vote_reply(m: RequestVoteReply) -> dict[str, Any]:
    return {"type": "vote_reply", "src": m.src, "dest": m.dest, "term": m.term,
            "granted": m.granted}


def _enc_append(m: AppendEntries) -> dict[str, Any]:
    return {"type": "append", "src": m.src, "dest": m.dest, "term": m.term,
            "prev_index": m.prev_index, "prev_term": m.prev_term,
            "entries": [[e.term, e.data] for e in m.entries],
            "commit": m.commit, "ctx": m.ctx}


def _enc_append_reply(m: AppendReply) -> dict[str, Any]:
    return {"type": "append_reply", "src": m.src, "dest": m.dest, "term": m.term,
            "success": m.success, "index": m.index, "hint_index": m.hint_index,
            "hint_term": m.hint_term, "ctx": m.ctx}


def _enc_heartbeat(m: Heartbeat) -> dict[str, Any]:
    return {"type": "heartbeat", "src": m.src, "dest": m.dest, "term": m.term,
            "commit": m.commit, "ctx": m.ctx}


def _enc_heartbeat_reply(m: HeartbeatReply) -> dict[str, Any]:
    return {"type": "heartbeat_reply", "src": m.src, "dest": m.dest, "term": m.term,
            "ctx": m.ctx}


def _enc_snapshot(m: InstallSnapshot) -> dict[str, Any]:
    s = m.snapshot
    return {"type": "snapshot", "src": m.src, "dest": m.dest, "term": m.term,
            "index": s.index, "snap_term": s.term, "data": s.data, "ctx": m.ctx}


def _enc_snapshot_reply(m: SnapshotReply) -> dict[str, Any]:
    return {"type": "snapshot_reply", "src": m.src, "dest": m.dest, "term": m.term,
            "index": m.index, "ctx": m.ctx}


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    PreVote: _enc_prevote,
    RequestVote: _enc_vote,
    PreVoteReply: _enc_prevote_reply,
    RequestVoteReply: _enc_vote_reply,
    AppendEntries: _enc_append,
    AppendReply: _enc_append_reply,
    Heartbeat: _enc_heartbeat,
    HeartbeatReply: _enc_heartbeat_reply,
    InstallSnapshot: _enc_snapshot,
    SnapshotReply: _enc_snapshot_reply,
}


def _nat(obj: dict[str, Any], name: str) -> int:
    """A non-negative int field (bool is not an int here)."""
    v = obj.get(name)
    if type(v) is not int or v < 0:
        raise ValueError(f"field {name!r} must be a non-negative integer, got {v!r}")
    return v


def _flag(obj: dict[str, Any], name: str) -> bool:
    v = obj.get(name)
    if type(v) is not bool:
        raise ValueError(f"field {name!r} must be a boolean, got {v!r}")
    return v


def _ids(obj: dict[str, Any]) -> tuple[str, str]:
    src, dest = obj.get("src"), obj.get("dest")
    if type(src) is not str or type(dest) is not str:
        raise ValueError("fields 'src' and 'dest' must be strings")
    return src, dest


def _command(data: Any) -> Any:
    """An entry's command: None (the leader's no-op) or a client request the
    key-value store can apply."""
    if data is None:
        return None
    if type(data) is not dict or data.get("op") not in _OPS or type(data.get("key")) is not str:
        raise ValueError(f"bad log entry command {data!r}")
    return data


def _dec_prevote(o: dict[str, Any]) -> PreVote:
    return PreVote(*_ids(o), _nat(o, "term"), _nat(o, "last_index"), _nat(o, "last_term"))


def _dec_vote(o: dict[str, Any]) -> RequestVote:
    return RequestVote(*_ids(o), _nat(o, "term"), _nat(o, "last_index"), _nat(o, "last_term"))


def _dec_prevote_reply(o: dict[str, Any]) -> PreVoteReply:
    return PreVoteReply(*_ids(o), _nat(o, "term"), _flag(o, "granted"))


def _dec_vote_reply(o: dict[str, Any]) -> RequestVoteReply:
    return RequestVoteReply(*_ids(o), _nat(o, "term"), _flag(o, "granted"))


def _dec_append(o: dict[str, Any]) -> AppendEntries:
    prev = _nat(o, "prev_index")
    raw = o.get("entries")
    if type(raw) is not list:
        raise ValueError("field 'entries' must be a list")
    entries = []
    index = prev
    ops = _OPS
    for item in raw:
        if type(item) is not list or len(item) != 2:
            raise ValueError(f"bad entry {item!r}")
        term, data = item
        if type(term) is not int or term < 0:
            raise ValueError(f"bad entry term {term!r}")
        # Inlined _command (this loop runs once per replicated entry).
        if data is not None and (type(data) is not dict or data.get("op") not in ops
                                 or type(data.get("key")) is not str):
            _command(data)
        index += 1
        entries.append(Entry(index, term, data))
    return AppendEntries(*_ids(o), _nat(o, "term"), prev, _nat(o, "prev_term"), entries,
                         _nat(o, "commit"), _nat(o, "ctx"))


def _dec_append_reply(o: dict[str, Any]) -> AppendReply:
    return AppendReply(*_ids(o), _nat(o, "term"), _flag(o, "success"), _nat(o, "index"),
                       _nat(o, "hint_index"), _nat(o, "hint_term"), _nat(o, "ctx"))


def _dec_heartbeat(o: dict[str, Any]) -> Heartbeat:
    return Heartbeat(*_ids(o), _nat(o, "term"), _nat(o, "commit"), _nat(o, "ctx"))


def _dec_heartbeat_reply(o: dict[str, Any]) -> HeartbeatReply:
    return HeartbeatReply(*_ids(o), _nat(o, "term"), _nat(o, "ctx"))


def _dec_snapshot(o: dict[str, Any]) -> InstallSnapshot:
    data = o.get("data")
    if type(data) is not bytes:
        raise ValueError("field 'data' must be bytes")
    snap = Snapshot(_nat(o, "index"), _nat(o, "snap_term"), data)
    return InstallSnapshot(*_ids(o), _nat(o, "term"), snap, _nat(o, "ctx"))


def _dec_snapshot_reply(o: dict[str, Any]) -> SnapshotReply:
    return SnapshotReply(*_ids(o), _nat(o, "term"), _nat(o, "index"), _nat(o, "ctx"))


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "prevote": _dec_prevote,
    "vote": _dec_vote,
    "prevote_reply": _dec_prevote_reply,
    "vote_reply": _dec_vote_reply,
    "append": _dec_append,
    "append_reply": _dec_append_reply,
    "heartbeat": _dec_heartbeat,
    "heartbeat_reply": _dec_heartbeat_reply,
    "snapshot": _dec_snapshot,
    "snapshot_reply": _dec_snapshot_reply,
}


class RaftCodec:
    """core_api.Codec for Raft."""

    def encode(self, msg: Any) -> dict[str, Any]:
        return _ENCODERS[type(msg)](msg)

    def decode(self, obj: Any) -> Any:
        if type(obj) is not dict:
            raise ValueError(f"a peer message must be a map, got {type(obj).__name__}")
        kind = obj.get("type")
        decoder = _DECODERS.get(kind) if type(kind) is str else None
        if decoder is None:
            raise ValueError(f"unknown message type {obj.get('type')!r}")
        return decoder(obj)

    def dest(self, msg: Any) -> str:
        return msg.dest


codec = RaftCodec()
