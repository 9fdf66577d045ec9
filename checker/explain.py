"""Explanations: a failed search turned into one sentence a person can follow.

Owns the wording shared by every model: how a value and a moment are written
(``fmt``, ``when``) and the generic sentence (``generic_sentence``). A model
says more through its ``explain`` method (checker/registers.py names the
overwrite a stale read missed; checker/append.py the read an append
contradicts). Every sentence is derived from the history and the search's
longest linearizable prefix; it never claims more than those show ("no later
write of 7 exists" is only said after checking it). docs/checker.md shows
examples.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from checker.history import Op

if TYPE_CHECKING:
    from checker.model import Model


def fmt(v: Any) -> str:
    """A value as a sentence writes it: nil, 7, k3, 'two words', [1, 2]."""
    if v is None:
        return "nil"
    if isinstance(v, str):
        return repr(v) if (v == "" or " " in v or len(v) > 40) else v
    return json.dumps(v) if isinstance(v, (list, dict, bool)) else str(v)


def when(ev: dict | None, fallback_pos: Any = None) -> str:
    """'12.41 s' from an event's ns time, or 'event #N' for synthetic times."""
    if ev is None:
        return "never (no completion)"
    t = ev.get("time")
    if isinstance(t, (int, float)) and t >= 1_000_000:
        return f"{t / 1e9:.3f} s"
    idx = ev.get("index", fallback_pos)
    return f"event #{idx}"


def generic_sentence(model: Model, key: Any, stuck: Op, prefix: list[Op], state: Any) -> str:
    """Why ``stuck`` cannot be linearized after the longest linearizable prefix,
    in terms any model has: its description of the op and of the state."""
    where = f" of {key}" if key is not None else ""
    return (
        f"{model.describe_op(stuck)} (invoked {when(stuck.invoke)}, completed "
        f"{when(stuck.complete)}), but no order of the operations concurrent with it allows "
        f"that: after the longest linearizable prefix ({len(prefix)} operations) the state"
        f"{where} is {model.describe_state(state)}"
    )
