"""What the clients do after healing, for the Maelstrom workloads (harness/workload.py ``final``).

``final(cfg, settings, recorder, first_process, timeout) -> notes``:

- ``final_every_node`` (g-set, broadcast, counters): wait a quiet period
  (``QUIET_S``, so gossip settles), then read every node itself (a pipeline to
  that node alone, so another node cannot answer for it), retrying until it
  answers or ``timeout`` passes. Each final read's events carry ``"final":
  true``; the checkers (maelstrom/checkers.py) judge those.
- ``final_lin_kv``: read every key once more from any node, as the kv
  workload does, so the last writes are judged.
- ``final_none``: nothing to read (unique-ids, echo).

Each also returns, as notes for results.json and the run's output, the lines
the adapters (maelstrom/host.py) logged about a misbehaving node program: no
``init_ok``, stdout lines that are no Maelstrom message, a program that ended
by itself. Every wait is bounded by ``timeout``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.client import Call, Pipeline

QUIET_S = 3.0
#: The adapter's log lines that say a node program misbehaved (maelstrom/host.py).
PROBLEMS = ("did not answer init", "answered init with", "stdout line that", "adapter failed",
            "cannot serve", "could not start", "read none of")
MAX_NOTES = 12


class _Read(Call):
    __slots__ = ("key", "pipe", "process", "template", "tries")


def _read_all(targets: list[tuple[Pipeline, str, dict[str, Any], bool]], settings: Any,
              recorder: Any, first_process: int, deadline_s: float) -> dict[int, bool]:
    """Run each (pipeline, history key, body, final) read until ok (or, for a keyed
    read, a definite answer) or the deadline; returns index -> answered."""
    deadline = time.monotonic_ns() + int(deadline_s * 1e9)
    processes = iter(range(first_process, 1 << 62))
    answered = dict.fromkeys(range(len(targets)), False)
    open_ = set(range(len(targets)))
    reads: dict[int, _Read] = {}

    def begin(c: _Read) -> None:
        now = time.monotonic_ns()
        i = c.tries
        if now >= deadline:
            open_.discard(i)
            return
        c.process = next(processes)
        ev: dict[str, Any] = {"process": c.process, "type": "invoke", "f": "read",
                              "key": c.key, "value": None}
        final = targets[i][3]
        if final:
            ev["final"] = True
        recorder.record(ev)
        timeout = min(int(settings.request_timeout * 2e9), max(100_000_000, deadline - now))
        c.pipe.start(c, {**c.template, "client": c.process + 1}, timeout, now)

    def done(c: _Read, type_: str, reply: dict[str, Any] | None, node: str | None,
             error: str | None, t: int) -> None:
        i = c.tries
        ev: dict[str, Any] = {"process": c.process, "type": type_, "f": "read", "key": c.key,
                              "value": (reply or {}).get("value") if type_ == "ok" else None}
        if node is not None:
            ev["node"] = node
        if type_ != "ok" and error:
            ev["error"] = error
        if targets[i][3]:
            ev["final"] = True
        recorder.record(ev)
        if type_ == "ok" or (type_ == "fail" and not targets[i][3]):
            answered[i] = True
            open_.discard(i)
        else:
            c.pipe.at(t + 100_000_000, begin, c)

    for i, (pipe, key, body, _) in enumerate(targets):
        c = _Read(next(iter(pipe.addrs)), done)
        c.tries, c.key, c.template, c.pipe = i, key, body, pipe
        reads[i] = c
        begin(c)
    pipes = list({id(t[0]): t[0] for t in targets}.values())
    try:
        while open_ and time.monotonic_ns() < deadline + 3_000_000_000:
            for p in pipes:
                p.step(5_000_000)
    finally:
        for p in pipes:
            p.close()
    return answered


def final_every_node(cfg: Any, settings: Any, recorder: Any, first_process: int,
                     timeout: float) -> list[str]:
    time.sleep(QUIET_S)  # the quiet period: no client load, no faults, gossip settles
    nodes = list(settings.addrs)
    targets = [(Pipeline({n: settings.addrs[n]}, follow_leader=False), cfg.workload,
                {"type": "read"}, True) for n in nodes]
    answered = _read_all(targets, settings, recorder, first_process, timeout)
    notes = [f"no final read from {n} within {timeout:g} s"
             for i, n in enumerate(nodes) if not answered[i]]
    return notes + problems(recorder)


def final_lin_kv(cfg: Any, settings: Any, recorder: Any, first_process: int,
                 timeout: float) -> list[str]:
    from harness.generator import key_names
    from maelstrom.workloads import body_key

    pipe = Pipeline(settings.addrs, follow_leader=False)
    keys = key_names(cfg.keys)
    targets = [(pipe, k, {"type": "read", "key": body_key(k)}, False) for k in keys]
    answered = _read_all(targets, settings, recorder, first_process, timeout)
    missing = [k for i, k in enumerate(keys) if not answered[i]]
    notes = ["final reads failed for " + ", ".join(missing)] if missing else []
    return notes + problems(recorder)


def final_none(cfg: Any, settings: Any, recorder: Any, first_process: int,
               timeout: float) -> list[str]:
    return problems(recorder)


def problems(recorder: Any) -> list[str]:
    """The adapters' lines about misbehaving node programs, from the run's node logs."""
    path = getattr(recorder, "path", None)
    if path is None:
        return []
    return problems_in(Path(path).parent / "nodes")


def problems_in(log_dir: Path) -> list[str]:
    notes: list[str] = []
    for log in sorted(log_dir.glob("*.log")):
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if " maelstrom: " not in line:
                continue
            text = line.split(" maelstrom: ", 1)[1]
            # a program that ended by itself; SIGKILL and SIGTERM are the nemesis's and the
            # harness's, and an unknown status is a kill the harness reaped first
            ended_badly = "the node program ended" in text and (
                "(exit code" in text or ("killed by" in text and "SIGKILL" not in text
                                         and "SIGTERM" not in text))
            if ended_badly or any(p in text for p in PROBLEMS):
                notes.append(f"{log.stem}: {text}")
                if len(notes) >= MAX_NOTES:
                    return notes
    return notes
