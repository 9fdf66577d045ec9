"""TEMPORARY: removed when every importer uses checker/.

The history readers, ``Op`` and the pairing moved to ``checker.history``
(docs/history.md). This re-export keeps the modules that still import
``harness.history`` working while they switch. ``pair_ops`` is the old name
of ``checker.history.pair``; ``Op``'s old attribute names (``status``,
``call_time``, ``ret_time``) are gone: they are ``type``, ``start``, ``end``.
"""

from checker.history import (
    INF,
    HistoryError,
    Op,
    is_client_event,
    pair,
    parse_edn,
    parse_jsonl,
    public,
    read_history,
    unwrap_independent,
)

pair_ops = pair

__all__ = [
    "INF",
    "HistoryError",
    "Op",
    "is_client_event",
    "pair",
    "pair_ops",
    "parse_edn",
    "parse_jsonl",
    "public",
    "read_history",
    "unwrap_independent",
]
