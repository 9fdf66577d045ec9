"""The client's retry rules: what an operation does after each thing that happens to a request.

Pure decisions over plain values (no clock, socket, random or state). Two
drivers carry them out: harness/client.py ``Pipeline`` on real sockets and
nodes/sim/load.py ``SimPipeline`` in simulated time, so the simulated clients
retry exactly as the real ones do. Times are integer nanoseconds on the
driver's clock.

The rules:
- A reply ``ok`` ends the operation ``ok``.
- A reply that is not ``definite`` ends it ``info``: the request may still
  take effect, and a second copy could take effect later than the first and
  fake an anomaly, so it is never re-sent.
- A definite refusal other than ``not_leader``/``unavailable`` (e.g.
  ``cas_mismatch``) is a real answer: ``fail``.
- A definite ``not_leader``/``unavailable``: when the client follows leaders
  and the reply names a known node other than the one that refused, the
  request goes there at once; otherwise it goes home again after
  ``REFUSED_PAUSE_NS`` (never past the deadline).
- A request that could not be sent (no completed connection, as ZMQ_IMMEDIATE
  makes libzmq refuse) provably never left: it is tried again at the same node
  every ``SEND_RETRY_NS`` for up to ``SEND_WAIT_NS``, then at the next node: at
  once while more than ``SEND_RETRY_NS`` of the deadline remain, else at the
  deadline (where it fails).
- An attempt that would start at or after the deadline fails: nothing of the
  operation is in flight, so it certainly had no effect. Its error is the last
  refusal's, else ``unavailable``.
- No reply by the deadline: ``info`` with error ``timeout``, never re-sent.
- What a completion records as its value: ``completion_value``.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

__all__ = [
    "FAIL", "INFO", "OK", "REFUSED", "REFUSED_PAUSE_NS", "SEND_RETRY_NS", "SEND_WAIT_NS",
    "after_refusal", "after_unsent", "completion_value", "expired_error", "outcome",
    "send_deadline",
]

SEND_WAIT_NS = 250_000_000  # how long one node may refuse to take a request (down)
SEND_RETRY_NS = 10_000_000
REFUSED_PAUSE_NS = 50_000_000  # after a definite refusal without a usable leader hint

OK, FAIL, INFO, REFUSED = "ok", "fail", "info", "refused"
_RETRYABLE = frozenset(("not_leader", "unavailable"))


def outcome(reply: dict[str, Any]) -> str:
    """``OK``, ``INFO``, ``FAIL`` (each ends the operation) or ``REFUSED`` (try again:
    ``after_refusal``) for one reply."""
    if reply.get("ok"):
        return OK
    if not reply.get("definite"):
        return INFO
    return REFUSED if reply.get("error") in _RETRYABLE else FAIL


def after_refusal(reply: dict[str, Any], node: str, nodes: Container[str],
                  follow_leader: bool, now: int, deadline: int) -> tuple[str | None, int]:
    """Where and when a ``REFUSED`` request goes next: ``(hint, now)`` to follow a
    usable leader hint, ``(None, at)`` to go home again at ``at``."""
    hint = reply.get("leader")
    if follow_leader and hint != node and hint in nodes:
        return hint, now
    return None, now + min(REFUSED_PAUSE_NS, max(0, deadline - now))


def send_deadline(now: int, deadline: int) -> int:
    """Until when an attempt starting at ``now`` keeps trying to send to one node."""
    return now + min(deadline - now, SEND_WAIT_NS)


def after_unsent(now: int, send_until: int, deadline: int) -> tuple[bool, int]:
    """A request could not be sent at ``now``: ``(False, at)`` tries the same node
    again at ``at``; ``(True, at)`` moves on to the next node at ``at`` (``now``,
    or the deadline when too little time is left to be worth a send)."""
    if now + SEND_RETRY_NS <= send_until:
        return False, now + SEND_RETRY_NS
    if deadline - now > SEND_RETRY_NS:
        return True, now
    return True, deadline


def expired_error(last: dict[str, Any] | None) -> str:
    """The error of an operation whose next attempt came at or after its deadline."""
    return (last or {}).get("error", "unavailable")


def completion_value(op: Any, type_: str, reply: dict[str, Any] | None) -> Any:
    """The value ``op``'s completion records: its ``completion_value`` (an
    invocation's own rule: harness/generator.py, harness/txnload.py); for an
    invocation without one, the reply's value on ok when it invoked none
    (a read, Maelstrom's generate or echo), else its own value."""
    own = getattr(op, "completion_value", None)
    if own is not None:
        return own(type_, reply)
    if op.f == "read" or op.value is None:
        return (reply or {}).get("value") if type_ == "ok" else None
    return op.value
