"""Client workers: asyncio tasks that invoke operations and record their outcomes.

Owns the Jepsen process discipline. Invariants:
- Every invoke is recorded before its request is sent, and its completion
  (ok, fail or info) after the reply or timeout, each as it happens.
- A worker whose operation ended ``info`` continues under a fresh process
  number with a fresh client (its old operation may still take effect).
- A worker starts no new operation once ``stop`` is set; its operation in
  flight ends within the request timeout.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.client import NodeClient, Outcome
from harness.generator import Invocation, OpGenerator
from harness.recorder import Recorder


@dataclass
class WorkerSettings:
    addrs: dict[str, str]
    request_timeout: float


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    if seconds <= 0 or stop.is_set():
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def invoke(
    client: NodeClient,
    recorder: Recorder,
    process: int,
    op: Invocation,
    timeout: float,
) -> tuple[Outcome, Any]:
    """Record the invoke, run ``op`` and record its completion; returns the
    outcome and the completion's value."""
    recorder.record({"process": process, "type": "invoke", "f": op.f, "key": op.key,
                     "value": op.value})
    outcome = await client.request(op.request(), timeout)
    value = op.value
    if op.f == "read":
        value = (outcome.reply or {}).get("value") if outcome.type == "ok" else None
    event: dict[str, Any] = {"process": process, "type": outcome.type, "f": op.f,
                             "key": op.key, "value": value}
    if outcome.node is not None:
        event["node"] = outcome.node
    if outcome.type != "ok" and outcome.error:
        event["error"] = outcome.error
    recorder.record(event)
    return outcome, value


async def worker(
    slot: int,
    gen: OpGenerator,
    settings: WorkerSettings,
    recorder: Recorder,
    processes: Iterator[int],
    stop: asyncio.Event,
) -> None:
    """Run ``gen``'s operations against the node ``slot`` is bound to until ``stop``."""
    node_ids = list(settings.addrs)
    home = node_ids[slot % len(node_ids)]
    client = NodeClient(settings.addrs, home)
    await client.connect_all()
    process = slot
    loop = asyncio.get_running_loop()
    try:
        await sleep_unless(stop, gen.first_delay())
        next_at = loop.time()
        while not stop.is_set():
            op = gen.next_op()
            outcome, value = await invoke(client, recorder, process, op, settings.request_timeout)
            gen.observe(op, outcome.type, value)
            if outcome.type == "info":
                process = next(processes)
                client.close()
                client = NodeClient(settings.addrs, home)
                await client.connect_all()
            next_at = max(next_at + gen.gap(), loop.time())
            await sleep_unless(stop, next_at - loop.time())
    finally:
        client.close()


async def final_reads(
    keys: list[str],
    settings: WorkerSettings,
    recorder: Recorder,
    processes: Iterator[int],
    deadline_s: float,
) -> dict[str, bool]:
    """Read every key with fresh clients, retrying until one read is ok or
    ``deadline_s`` seconds pass. Returns key -> whether a read succeeded."""
    node_ids = list(settings.addrs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s

    async def read_key(i: int, key: str) -> bool:
        home = node_ids[i % len(node_ids)]
        while loop.time() < deadline:
            client = NodeClient(settings.addrs, home)
            try:
                outcome, _ = await invoke(client, recorder, next(processes), Invocation("read", key, None),
                                          min(settings.request_timeout * 2,
                                              max(0.1, deadline - loop.time())))
            finally:
                client.close()
            if outcome.type == "ok":
                return True
            await asyncio.sleep(0.1)
        return False

    done = await asyncio.gather(*(read_key(i, k) for i, k in enumerate(keys)))
    return dict(zip(keys, done))


def process_numbers(start: int) -> Iterator[int]:
    """Fresh process numbers for workers after an ``info`` and for final reads."""
    return itertools.count(start)
