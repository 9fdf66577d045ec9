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

The mix is shaped to expose anomalies (docs/faults.md "Workload"):
- *Hot keys*: the run is cut into phases of ``PHASE_S`` seconds of the slot's
  own schedule (its first delay plus its gaps; ``PHASE_OPS`` operations at
  ``--rate 0``); each phase has one to three hot keys, the same for every slot
  (drawn from the seed and the phase), which take ``HOT_SHARE`` of the
  operations, so that operations of many clients meet on one key around
  every fault.
- *Readers*: in ``READER_SHARE`` of the phases (drawn per slot and phase) a
  slot only reads, so every node keeps being read while other slots wait
  out writes a cut-off leader cannot commit.
- *Reads right after writes*: after a write or cas the next operation is,
  with ``READ_AFTER`` probability, a read of the same key (by the slot's
  plan, not its outcome); after a cas, with ``CAS_CHAIN``, another cas of the
  same key, expecting the newest value seen: a chain of compare-and-sets.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

#: Seconds of a slot's schedule per hot-key phase, and operations per phase
#: when there is no schedule (``--rate 0``).
PHASE_S = 2.0
PHASE_OPS = 200
#: Share of operations on the phase's hot keys.
HOT_SHARE = 0.7
#: Share of phases in which a slot only reads (when reads are in the mix): its
#: reads keep sampling its node while the other slots wait out their writes.
READER_SHARE = 0.3
#: After a write or cas: the next operation reads the same key.
READ_AFTER = 0.4
#: After a cas (not followed by a read): the next one is a cas of the same key.
CAS_CHAIN = 0.5


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

    def completion_value(self, type_: str, reply: dict[str, Any] | None) -> Any:
        """The value the completion event records: a read's ok reply's value
        (None otherwise), the invoke's value for writes and cas."""
        if self.f == "read":
            return (reply or {}).get("value") if type_ == "ok" else None
        return self.value


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
        self.seed = seed
        self.slot = slot
        self.keys = key_names(keys)
        self.ops = list(ops)
        self.concurrency = concurrency
        self.mean_gap_s = concurrency / rate if rate > 0 else 0.0
        self._n = 0
        self._ops = 0  # operations given
        self._t = 0.0  # the slot's own schedule: first delay plus gaps so far
        self._then: tuple[str, str] | None = None  # (f, key) of a planned follow-up
        self._hot: tuple[int, list[str], bool] = (-1, [], False)
        # key -> newest value observed (by this worker, or by all when shared)
        self.seen: dict[str, Any] = seen if seen is not None else {}

    def _fresh_value(self) -> int:
        self._n += 1
        return self.slot + self.concurrency * self._n

    def _phase(self) -> tuple[list[str], bool]:
        """The current phase's hot keys (the same for every slot of the seed),
        and whether this slot only reads in it."""
        phase = int(self._t / PHASE_S) if self.mean_gap_s else self._ops // PHASE_OPS
        if self._hot[0] != phase:
            prng = random.Random(f"hot:{self.seed}:{phase}")
            hot = prng.sample(self.keys, prng.randint(1, min(3, len(self.keys))))
            reader = (random.Random(f"reader:{self.seed}:{phase}:{self.slot}").random()
                      < READER_SHARE and "read" in self.ops)
            self._hot = (phase, hot, reader)
        return self._hot[1], self._hot[2]

    def hot_keys(self) -> list[str]:
        """The current phase's hot keys (the same for every slot of the seed)."""
        return self._phase()[0]

    def next_op(self) -> Invocation:
        rng = self.rng
        self._ops += 1
        then, self._then = self._then, None
        if then is not None:
            f, key = then
        else:
            hot, reader = self._phase()
            f = "read" if reader else rng.choice(self.ops)
            key = rng.choice(hot if rng.random() < HOT_SHARE else self.keys)
        if f == "read":
            return Invocation("read", key, None)
        if "read" in self.ops and rng.random() < READ_AFTER:
            self._then = ("read", key)
        elif f == "cas" and rng.random() < CAS_CHAIN:
            self._then = ("cas", key)
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
        self._t = self.rng.uniform(0, self.mean_gap_s)
        return self._t

    def gap(self) -> float:
        """Seconds from one operation's start to the next one's."""
        if not self.mean_gap_s:
            return 0.0
        g = self.rng.uniform(0, 2 * self.mean_gap_s)
        self._t += g
        return g
