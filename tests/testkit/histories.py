"""Random concurrent histories, linearizable by construction, and mutations.

A test fixture (not part of the installed packages): the history generator
of the checker's tests and of benchmarks/checker_bench.py.
``generate`` simulates processes against a real register map: every
operation takes effect at one instant between its invoke and its
completion (or, for an indeterminate one, at some instant after its invoke,
or never), so the history it records is linearizable. Written values are
unique per key. ``mutate`` then changes one thing (a read's value, a fail
into an ok, an ok into a fail, ...): the result may or may not be
linearizable, which is what differential tests want.
"""

from __future__ import annotations

import random
from typing import Any


def generate(
    rng: random.Random,
    n_ops: int,
    *,
    processes: int = 4,
    keys: int = 1,
    info_rate: float = 0.05,
    fail_rate: float = 0.05,
    mix: tuple[float, float, float] = (0.4, 0.35, 0.25),  # read, write, cas
    time_step_ns: int = 1_000_000,
    model: str = "kv",
) -> list[dict]:
    """Events of a linearizable history with about ``n_ops`` operations."""
    key_names = [None] if keys == 0 else [f"k{i}" for i in range(keys)]
    if model == "multi-register":
        key_names = ["x", "y", "z"][: max(keys, 2)]
    initial = {"mutex": 0, "kv-append": "", "multi-register": 0}.get(model)
    state: dict[Any, Any] = {k: initial for k in key_names}
    written: dict[Any, list[Any]] = {k: [] for k in key_names}
    next_value = [0]
    events: list[dict] = []
    clock = [0]

    def emit(ev: dict) -> None:
        clock[0] += rng.randint(1, 3) * time_step_ns
        ev["index"] = len(events)
        ev["time"] = clock[0]
        events.append(ev)

    # per process: None (idle) or [op dict, applied?, result]
    procs: dict[int, list | None] = {p: None for p in range(processes)}
    next_pid = [processes]
    zombies: list[dict] = []  # indeterminate ops that may still take effect
    invoked = 0

    def new_op() -> dict:
        k = rng.choice(key_names)
        if model == "multi-register":
            txn = []
            for _ in range(rng.randint(1, 3)):
                mk = rng.choice(key_names)
                if rng.random() < 0.5:
                    txn.append(["read", mk, None])
                else:
                    next_value[0] += 1
                    txn.append(["write", mk, next_value[0]])
            return {"f": "txn", "key": None, "value": txn}
        if model == "mutex":
            return {"f": rng.choice(("acquire", "release")), "key": k, "value": None}
        if model == "kv-append":
            r = rng.random()
            if r < mix[0]:
                return {"f": "read", "key": k, "value": None}
            next_value[0] += 1
            return {"f": "append" if r < 0.9 else "write", "key": k, "value": f"x{next_value[0]} "}
        r = rng.random()
        if r < mix[0]:
            return {"f": "read", "key": k, "value": None}
        next_value[0] += 1
        v = next_value[0]
        if r < mix[0] + mix[1] or not written[k]:
            return {"f": "write", "key": k, "value": v}
        # cas expecting a recent value (often the current one)
        exp = state[k] if rng.random() < 0.6 else rng.choice(written[k][-3:])
        return {"f": "cas", "key": k, "value": [exp, v]}

    def apply(op: dict) -> tuple[bool, Any]:
        k, f = op["key"], op["f"]
        if f == "txn":
            done = []
            for mf, mk, mv in op["value"]:
                if mf == "read":
                    done.append([mf, mk, state[mk]])
                else:
                    state[mk] = mv
                    done.append([mf, mk, mv])
            return True, done
        if f == "read":
            return True, state[k]
        if f == "write":
            state[k] = op["value"]
            written[k].append(op["value"])
            return True, op["value"]
        if f == "append":
            state[k] = state[k] + op["value"]
            return True, op["value"]
        if f == "cas":
            exp, new = _cas_args_dict(op)
            if state[k] == exp:
                state[k] = new
                written[k].append(new)
                return True, op["value"]
            return False, op["value"]
        if f == "acquire":
            if state[k]:
                return False, None
            state[k] = 1
            return True, None
        if f == "release":
            if not state[k]:
                return False, None
            state[k] = 0
            return True, None
        raise ValueError(f)

    while invoked < n_ops or any(procs.values()):
        # an indeterminate op may take effect now
        if zombies and rng.random() < 0.05:
            z = zombies.pop(rng.randrange(len(zombies)))
            apply(z)
        p = rng.choice(list(procs))
        cur = procs[p]
        if cur is None:
            if invoked >= n_ops:
                continue
            op = new_op()
            invoked += 1
            procs[p] = [op, False, None]
            emit({"process": p, "type": "invoke", "f": op["f"], "key": op["key"], "value": op["value"]})
            continue
        op, applied, result = cur
        if rng.random() < info_rate / 2:
            # the client gives up: indeterminate. Applied already, or maybe later, or never.
            emit({"process": p, "type": "info", "f": op["f"], "key": op["key"], "value": op["value"]})
            if not applied and op["f"] != "read" and rng.random() < 0.5:
                zombies.append(op)
            del procs[p]
            procs[next_pid[0]] = None
            next_pid[0] += 1
            continue
        if not applied:
            if op["f"] != "read" and op["f"] in ("write", "append") and rng.random() < fail_rate:
                cur[1], cur[2] = True, (False, op["value"])  # definite failure: no effect
            else:
                cur[1], cur[2] = True, apply(op)
            continue
        ok, value = result
        emit({"process": p, "type": "ok" if ok else "fail", "f": op["f"], "key": op["key"],
              "value": value})
        procs[p] = None
    return events


def _cas_args_dict(op: dict) -> tuple[Any, Any]:
    v = op["value"]
    return v[0], v[1]


def mutate(rng: random.Random, events: list[dict]) -> list[dict]:
    """A copy of events with one random change that may break linearizability."""
    evs = [dict(e) for e in events]
    comps = [i for i, e in enumerate(evs) if e["type"] in ("ok", "fail")]
    if not comps:
        return evs
    i = rng.choice(comps)
    e = evs[i]
    choice = rng.randrange(4)
    if choice == 0 and e["f"] == "txn" and e["type"] == "ok":
        reads = [m for m in e["value"] if m[0] == "read"]
        if reads:
            e["value"] = [list(m) for m in e["value"]]
            m = rng.choice([m for m in e["value"] if m[0] == "read"])
            m[2] = rng.randint(0, 5)
    elif choice == 0 and e["f"] == "read" and e["type"] == "ok":
        seen = [x["value"] for x in evs if x["f"] in ("write", "append") and x["type"] == "invoke"]
        seen += [x["value"][1] for x in evs if x["f"] == "cas" and x["type"] == "invoke"]
        if isinstance(e["value"], str) or (seen and isinstance(seen[0], str)):
            e["value"] = (e["value"] or "") + rng.choice(seen or ["z "])
        else:
            e["value"] = rng.choice(seen + [None, 999])
    elif choice == 1:
        e["type"] = "fail" if e["type"] == "ok" else "ok"
    elif choice == 2 and e["type"] == "ok":
        e["type"] = "info"
    else:
        # move the completion earlier (towards its invoke): shrinks its window
        j = i
        while j > 0 and evs[j - 1].get("process") != e["process"]:
            j -= 1
        if j < i:
            k = rng.randint(j, i)
            evs.insert(k, evs.pop(i))
    for n, x in enumerate(evs):
        x["index"] = n
    return evs


def blowup_history(keys: int = 8, writers: int = 22, seed: int = 3, ops: int = 20_000) -> list[dict]:
    """Ordinary keys plus one key whose search explodes: ``writers``
    concurrent writes of distinct values, then a read of a value none of
    them wrote. Proving that needs every (set of writes done, last value)
    configuration: writers * 2**writers memo entries without a cap."""
    rng = random.Random(seed)
    evs = generate(rng, ops, processes=8, keys=keys, info_rate=0.02, fail_rate=0.02)
    t = evs[-1]["time"] if evs else 0

    def emit(ev: dict) -> None:
        nonlocal t
        t += 1_000_000
        ev["time"] = t
        ev["index"] = len(evs)
        evs.append(ev)

    base = 10_000
    for w in range(writers):
        emit({"process": base + w, "type": "invoke", "f": "write", "key": "hot", "value": w})
    for w in range(writers):
        emit({"process": base + w, "type": "ok", "f": "write", "key": "hot", "value": w})
    emit({"process": base + writers, "type": "invoke", "f": "read", "key": "hot", "value": None})
    emit({"process": base + writers, "type": "ok", "f": "read", "key": "hot", "value": -1})
    return evs


__all__ = ["blowup_history", "generate", "mutate"]
