"""The seeded workload: which operation each worker runs next, and when.

Owns the operation schedule. Invariants:
- Each worker slot has its own ``random.Random`` derived from (seed, slot), so
  the sequence of (f, key, written value) and the pacing of every slot depend
  only on the seed, never on how the run interleaves. The one input from the
  run is a cas's ``expected``: the newest value seen for that key (``seen``,
  shared by the slots of one worker process, harness/workers.py), so
  compare-and-set often succeeds.
- Written values are unique across the whole run (slot + concurrency * n),
  hence unique per key, which the checker may use.
- The rate is a total over all workers: each slot waits a random stagger in
  [0, 2 * concurrency / rate] between starts (like Jepsen's ``stagger``), so
  the sum over slots averages ``rate`` operations per second.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple


def key_names(keys: int) -> list[str]:
    return [f"k{i}" for i in range(keys)]


class Invocation(NamedTuple):
    """What a worker invokes next: history ``f``, ``key`` and invoke ``value``. Not an
    operation yet: once recorded, its invoke and completion pair into a
    ``checker.history.Op``, the one operation type. A NamedTuple: immutable, and
    built without a frozen dataclass's per-field ``object.__setattr__`` (one per
    operation on the workers' hot path)."""

    f: str
    key: str
    value: Any

    def request(self) -> dict[str, Any]:
        """The client request body (docs/node-contract.md, client requests), without ``id``."""
        if self.f == "cas":
            expected, new = self.value
            return {"op": "cas", "key": self.key, "expected": expected, "value": new}
        if self.f == "write":
            return {"op": "write", "key": self.key, "value": self.value}
        return {"op": "read", "key": self.key}


class OpGenerator:
    """The operations and pacing of one worker slot."""

    def __init__(
        self,
        seed: int,
        slot: int,
        *,
        keys: int,
        ops: list[str],
        concurrency: int,
        rate: float,
        seen: dict[str, Any] | None = None,
    ) -> None:
        self.rng = random.Random(f"ops:{seed}:{slot}")
        self.slot = slot
        self.keys = key_names(keys)
        self.ops = list(ops)
        self.concurrency = concurrency
        self.mean_gap_s = concurrency / rate if rate > 0 else 0.0
        self._n = 0
        # key -> newest value observed (by this worker, or by all when shared)
        self.seen: dict[str, Any] = seen if seen is not None else {}

    def _fresh_value(self) -> int:
        self._n += 1
        return self.slot + self.concurrency * self._n

    def next_op(self) -> Invocation:
        f = self.rng.choice(self.ops)
        key = self.rng.choice(self.keys)
        if f == "read":
            return Invocation("read", key, None)
        new = self._fresh_value()
        if f == "write":
            return Invocation("write", key, new)
        return Invocation("cas", key, [self.seen.get(key), new])

    def observe(self, op: Invocation, outcome: str, value: Any) -> None:
        """Learn from a completion, for the next cas's ``expected``."""
        if outcome != "ok":
            return
        if op.f == "read":
            self.seen[op.key] = value
        elif op.f == "write":
            self.seen[op.key] = op.value
        elif op.f == "cas":
            self.seen[op.key] = op.value[1]

    def first_delay(self) -> float:
        """Seconds before this slot's first operation (spreads the start)."""
        return self.rng.uniform(0, self.mean_gap_s)

    def gap(self) -> float:
        """Seconds from one operation's start to the next one's."""
        return self.rng.uniform(0, 2 * self.mean_gap_s) if self.mean_gap_s else 0.0
