"""The list-append workload: which transaction each worker slot runs next.

Owns the transaction schedule of ``--workload list-append``
(harness/workload.py): transactions of 1 to ``txn_length`` micro-operations,
each an append or a read (half and half) of a key drawn from the slot's
*active* keys, as Elle's list-append generator makes them. Pacing is
``OpGenerator``'s (harness/generator.py), which this class extends.

Invariants:
- Deterministic per (seed, slot): the same seed gives each slot the same
  sequence of transactions, whatever the run does (nothing is learned from
  completions).
- Every appended value is unique across the run (``slot + concurrency * n``,
  as OpGenerator's written values), so unique per key, which the checker
  relies on to recover version orders.
- Keys rotate so lists stay short: a slot's active keys are the ``keys``
  consecutive names from ``k{base}``, and ``base`` moves on by one every
  ``rotate`` transactions of the slot. Slots run at about the same pace, so
  they share about the same window; ``rotate`` is chosen so that a key gets
  about ``MAX_APPENDS_PER_KEY`` appends over the whole run's slots before
  it falls out of every window.
- The history value is the Jepsen form: ``f`` "txn", ``key`` None, ``value``
  the list of micro-operations ``["append", k, v]`` / ``["r", k, None]``,
  the reads filled in on ``ok`` (docs/history.md, "Transactions").
"""

from __future__ import annotations

from typing import Any, NamedTuple

from harness.generator import OpGenerator

#: About how many values a key collects before every slot has moved past it
#: (Elle's default max-writes-per-key is 32 as well).
MAX_APPENDS_PER_KEY = 32
#: The share of micro-operations that are reads.
READ_SHARE = 0.5


class TxnInvocation(NamedTuple):
    """A transaction a worker invokes next (the workers read ``f``, ``key`` and
    ``value`` as of any Invocation)."""

    f: str
    key: Any
    value: list[list[Any]]

    def request(self) -> dict[str, Any]:
        """The client request body (docs/node-contract.md, "Transactions"), without ``id``."""
        return {"op": "txn", "txn": self.value}

    def completion_value(self, type_: str, reply: dict[str, Any] | None) -> Any:
        """What the completion records: on ``ok`` the node's micro-operations
        with the reads filled in, else the invoke's (Jepsen's form)."""
        if type_ == "ok" and reply is not None and isinstance(reply.get("value"), list):
            return reply["value"]
        return self.value


class TxnGenerator(OpGenerator):
    """The transactions and pacing of one worker slot (see the module header)."""

    def __init__(self, seed: int, slot: int, *, keys: int, ops: list[str], concurrency: int,
                 rate: float, seen: dict[str, Any] | None = None, txn_length: int = 4) -> None:
        super().__init__(seed, slot, keys=keys, ops=ops, concurrency=concurrency, rate=rate,
                         seen=seen)
        if txn_length < 1:
            raise ValueError(f"txn_length must be at least 1, not {txn_length}")
        self.txn_length = txn_length
        self.active = max(1, keys)
        appends_per_txn = (1 + txn_length) / 2 * (1 - READ_SHARE)
        self.rotate = max(1, round(MAX_APPENDS_PER_KEY / (max(1, concurrency) * appends_per_txn)))
        self._txns = 0

    def next_op(self) -> TxnInvocation:  # type: ignore[override]
        rng = self.rng
        base = self._txns // self.rotate
        self._txns += 1
        mops: list[list[Any]] = []
        for _ in range(rng.randint(1, self.txn_length)):
            key = f"k{base + rng.randrange(self.active)}"
            if rng.random() < READ_SHARE:
                mops.append(["r", key, None])
            else:
                mops.append(["append", key, self._fresh_value()])
        return TxnInvocation("txn", None, mops)

    def observe(self, op: Any, outcome: str, value: Any) -> None:
        """Nothing to learn: the next transaction does not depend on replies."""
