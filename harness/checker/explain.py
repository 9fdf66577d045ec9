"""Explanations: turn a failed search into one sentence a person follows.

Owns the wording. Every sentence is derived from the history and the
search's longest linearizable prefix; it never claims more than those show
("no later write of 7 exists" is only said after checking it).
"""

from __future__ import annotations

from typing import Any

from harness.checker.models import CasRegister, KVAppend, Model, _cas_args, _hkey, fmt
from harness.history import Op


def when(ev: dict | None, fallback_pos: Any = None) -> str:
    """'12.41 s' from an event's ns time, or 'event #N' for synthetic times."""
    if ev is None:
        return "never (no completion)"
    t = ev.get("time")
    if isinstance(t, (int, float)) and t >= 1_000_000:
        return f"{t / 1e9:.3f} s"
    idx = ev.get("index", fallback_pos)
    return f"event #{idx}"


def sentence(model: Model, key: Any, ops: list[Op], stuck: Op, prefix: list[Op], state: Any) -> str:
    """Why ``stuck`` cannot be linearized after the longest linearizable prefix."""
    where = f" of {key}" if key is not None else ""
    if isinstance(model, CasRegister):
        s = _register_sentence(model, key, ops, stuck)
        if s:
            return s
    if isinstance(model, KVAppend) and stuck.f in ("append", "write"):
        # Appends are cut when they cannot lead to what a later read saw:
        # name that read, it is the observation in conflict.
        later = [op for op in ops if op.f == "read" and op.type == "ok" and op.call > stuck.ret]
        if later:
            r = min(later, key=lambda o: o.ret)
            return (
                f"{model.describe_op(stuck)} completed at {when(stuck.complete)}, but no order of "
                f"the operations concurrent with it agrees with the reads of {key} after it (the "
                f"first, invoked {when(r.invoke)}, returned {fmt(r.output)}): after the longest "
                f"linearizable prefix ({len(prefix)} operations) {key} is "
                f"{model.describe_state(state)}"
            )
    return (
        f"{model.describe_op(stuck)} (invoked {when(stuck.invoke)}, completed "
        f"{when(stuck.complete)}), but no order of the operations concurrent with it allows "
        f"that: after the longest linearizable prefix ({len(prefix)} operations) the state"
        f"{where} is {model.describe_state(state)}"
    )


def _register_sentence(model: CasRegister, key: Any, ops: list[Op], stuck: Op) -> str | None:
    if stuck.f == "read":
        v = stuck.output
        head = f"read{' of ' + str(key) if key is not None else ''} returned {fmt(v)} at {when(stuck.complete)}"
    elif stuck.f == "cas" and stuck.type == "ok":
        v = _cas_args(stuck)[0]
        head = (
            f"cas{' of ' + str(key) if key is not None else ''} from {fmt(v)} succeeded at "
            f"{when(stuck.complete)}"
        )
    else:
        return None
    hv = _hkey(v)
    producers = []
    for op in ops:
        if op.type != "fail" and op.f in ("write", "cas"):
            pv = _produces(op)
            if pv is not None and _hkey(pv[0]) == hv:
                producers.append(op)
    initial = model.initial_for(key)
    if not producers and hv != _hkey(initial):
        return f"{head}, but no operation ever wrote {fmt(v)}"
    if producers and hv != _hkey(initial) and all(p.call > stuck.ret for p in producers):
        first = min(producers, key=lambda p: p.call)
        return f"{head}, but the first write of {fmt(v)} began only at {when(first.invoke)}"
    # A completed overwrite before the read began, with no write of v begun after it.
    best: Op | None = None
    for op in ops:
        if op.type != "ok" or op.ret >= stuck.call:
            continue
        pv = _produces(op)
        if pv is None or _hkey(pv[0]) == hv:
            continue
        if any(p.call > op.ret and p is not stuck for p in producers):
            continue
        if best is None or op.ret > best.ret:
            best = op
    if best is not None:
        verb = "write" if best.f == "write" else "cas"
        return (
            f"{head}, but {verb} of {fmt(_produces(best)[0])} completed at {when(best.complete)} "
            f"and no later write of {fmt(v)} exists"
        )
    return None


def _produces(op: Op) -> tuple[Any] | None:
    """(value,) that op writes, or None if it writes nothing."""
    if op.f == "write":
        return (op.value,)
    if op.f == "cas" and op.type != "fail":
        return (_cas_args(op)[1],)
    return None
