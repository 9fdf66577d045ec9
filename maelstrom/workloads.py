"""The Maelstrom workloads' generators: what each client slot asks next (doc/workloads.md).

Owns the operation mix of each Maelstrom workload. Every generator is an
``OpGenerator`` (harness/generator.py: the seeded schedule, ``--rate`` pacing,
run-unique values) whose ``next_op`` returns an ``MOp``: the history's ``f``,
``key`` and ``value``, and the Maelstrom request body the adapter
(maelstrom/host.py) sends to the node as client ``c<slot+1>``.

History shapes (what the checkers in maelstrom/checkers.py read):

| workload | f | key | invoke value | ok value |
|---|---|---|---|---|
| lin-kv | read, write, cas | ``k0``.. (the body's key is the integer) | as kv | read's value |
| g-set | add, read | ``g-set`` | the element | read: the elements |
| broadcast | broadcast, read | ``broadcast`` | the message | read: the messages |
| g-counter, pn-counter | add, read | the workload | the delta | read: the value |
| unique-ids | generate | ``ids`` | None | the id |
| echo | echo | the payload (a string) | None | the payload returned |
| txn-list-append | txn | None | the micro-ops ``[f, "k<N>", v]`` | the micro-ops, reads filled in |

txn-list-append reuses the list-append workload's transactions
(harness/txnload.py ``TxnGenerator``): the history is the same Jepsen form as
``--workload list-append`` (keys ``k<N>``), the Maelstrom ``txn`` body carries
the integer ``N`` (as lin-kv's body does), and the ``txn_ok``'s micro-ops are
mapped back (``from_maelstrom_txn``; a read of ``null``, Maelstrom's "no such
key", is the empty list).

Invariant: request bodies are built fresh on each ``request()`` (the client
pipeline stamps its ``id`` into the dict).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from harness.generator import OpGenerator
from harness.txnload import TxnGenerator


class MOp(NamedTuple):
    """An invocation (harness/generator.py's ``Invocation`` shape) with its Maelstrom body."""

    f: str
    key: str
    value: Any
    body: dict[str, Any]

    def request(self) -> dict[str, Any]:
        return dict(self.body)

    def completion_value(self, type_: str, reply: dict[str, Any] | None) -> Any:
        """What the completion records: the result the adapter put under ``value`` for the
        operations that ask (read, generate, echo: invoke value None) when ok, else the
        invoke's value (harness/workers.py calls it)."""
        if self.value is None:
            return (reply or {}).get("value") if type_ == "ok" else None
        return self.value


def body_key(key: str) -> int:
    """lin-kv's integer key for the history's ``k<N>``."""
    return int(key[1:])


class _Maelstrom(OpGenerator):
    """Pacing and values from OpGenerator; ``client`` is the Maelstrom client number."""

    #: (f, weight) of the mix.
    MIX: tuple[tuple[str, int], ...] = ()
    NAME = ""

    def __init__(self, seed: int, slot: int, **kw: Any) -> None:
        super().__init__(seed, slot, keys=kw.pop("keys", 1), ops=kw.pop("ops", ["read"]),
                         concurrency=kw.pop("concurrency", 1), rate=kw.pop("rate", 0.0),
                         seen=kw.pop("seen", None))
        self.client = slot + 1
        self._fs = [f for f, w in self.MIX for _ in range(w)]

    def _op(self, f: str, key: str, value: Any, /, **body: Any) -> MOp:
        return MOp(f, key, value, {"client": self.client, **body})

    def next_op(self) -> MOp:
        return self.make(self.rng.choice(self._fs))

    def make(self, f: str) -> MOp:
        raise NotImplementedError

    def observe(self, op: Any, outcome: str, value: Any) -> None:
        return None


class LinKvGenerator(_Maelstrom):
    """Maelstrom's lin-kv: read, write and cas over ``--keys`` keys, as our kv mix
    (``--ops``), with unique written values so the checker decides quickly."""

    def __init__(self, seed: int, slot: int, **kw: Any) -> None:
        ops = list(kw.get("ops") or ["read", "write", "cas"])
        super().__init__(seed, slot, **kw)
        self.ops = [f for f in ops if f in ("read", "write", "cas")] or ["read", "write", "cas"]

    def next_op(self) -> MOp:
        inv = OpGenerator.next_op(self)
        k = body_key(inv.key)
        if inv.f == "read":
            return self._op("read", inv.key, None, type="read", key=k)
        if inv.f == "write":
            return self._op("write", inv.key, inv.value, type="write", key=k, value=inv.value)
        expected, new = inv.value
        return self._op("cas", inv.key, inv.value, type="cas", key=k, **{"from": expected, "to": new})

    def observe(self, op: Any, outcome: str, value: Any) -> None:
        OpGenerator.observe(self, op, outcome, value)


class GSetGenerator(_Maelstrom):
    MIX = (("add", 1), ("read", 1))
    NAME = "g-set"

    def make(self, f: str) -> MOp:
        if f == "add":
            v = self._fresh_value()
            return self._op("add", self.NAME, v, type="add", element=v)
        return self._op("read", self.NAME, None, type="read")


class BroadcastGenerator(_Maelstrom):
    MIX = (("broadcast", 1), ("read", 1))
    NAME = "broadcast"

    def make(self, f: str) -> MOp:
        if f == "broadcast":
            v = self._fresh_value()
            return self._op("broadcast", self.NAME, v, type="broadcast", message=v)
        return self._op("read", self.NAME, None, type="read")


class GCounterGenerator(_Maelstrom):
    MIX = (("add", 1), ("read", 1))
    NAME = "g-counter"
    LOW = 0

    def make(self, f: str) -> MOp:
        if f == "add":
            d = self.rng.randint(self.LOW, 5)
            return self._op("add", self.NAME, d, type="add", delta=d)
        return self._op("read", self.NAME, None, type="read")


class PNCounterGenerator(GCounterGenerator):
    NAME = "pn-counter"
    LOW = -5


class UniqueIdsGenerator(_Maelstrom):
    MIX = (("generate", 1),)

    def make(self, f: str) -> MOp:
        return self._op("generate", "ids", None, type="generate")


class EchoGenerator(_Maelstrom):
    MIX = (("echo", 1),)

    def make(self, f: str) -> MOp:
        payload = f"echo-{self.slot}-{self._fresh_value()}"
        return self._op("echo", payload, None, type="echo", echo=payload)


class MTxn(NamedTuple):
    """A txn-list-append invocation: the history's micro-ops (``k<N>`` keys) and the
    Maelstrom body (integer keys)."""

    f: str
    key: None
    value: list[list[Any]]
    body: dict[str, Any]

    def request(self) -> dict[str, Any]:
        return dict(self.body)

    def completion_value(self, type_: str, reply: dict[str, Any] | None) -> Any:
        """On ``ok`` the node's micro-ops with our keys (whatever the node answered, so
        the checker can judge a reply that does not echo the request); else the
        invoke's micro-ops (Jepsen's form)."""
        if type_ == "ok":
            return from_maelstrom_txn((reply or {}).get("value"))
        return self.value


def to_maelstrom_txn(mops: list[list[Any]]) -> list[list[Any]]:
    """The ``txn`` body's micro-ops: ``k<N>`` -> ``N``."""
    return [[f, body_key(k), v] for f, k, v in mops]


def from_maelstrom_txn(mops: Any) -> Any:
    """A ``txn_ok``'s micro-ops in the history's form: integer key ``N`` -> ``k<N>``, a
    read of ``null`` (Maelstrom: the key does not exist) -> ``[]``. Anything that is not
    a list of ``[f, k, v]`` is returned as it is, for the checker to refuse."""
    if not isinstance(mops, list):
        return mops
    out: list[Any] = []
    for m in mops:
        if not (isinstance(m, list) and len(m) == 3):
            out.append(m)
            continue
        f, k, v = m
        if isinstance(k, int) and not isinstance(k, bool):
            k = f"k{k}"
        if f == "r" and v is None:
            v = []
        out.append([f, k, v])
    return out


class TxnListAppendGenerator(TxnGenerator):
    """Maelstrom's txn-list-append: the list-append workload's transactions (1 to
    ``txn_length`` micro-ops, half appends of run-unique values, half reads, over
    ``--keys`` active keys that rotate so no key gets much more than 32 appends),
    sent as Maelstrom ``txn`` requests by client ``c<slot+1>``."""

    def __init__(self, seed: int, slot: int, **kw: Any) -> None:
        kw.setdefault("concurrency", 1)
        kw.setdefault("rate", 0.0)
        kw.setdefault("ops", ["read"])
        kw.setdefault("keys", 1)
        super().__init__(seed, slot, **kw)
        self.client = slot + 1

    def next_op(self) -> MTxn:  # type: ignore[override]
        mops = TxnGenerator.next_op(self).value
        return MTxn("txn", None, mops, {"client": self.client, "type": "txn",
                                         "txn": to_maelstrom_txn(mops)})

