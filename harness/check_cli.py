"""`harness check PATH...`: check history files (or folders of them).

Owns the command line of the checker (docs/checker.md "harness check"); the
work is the ``checker`` package. Exit codes: 0 all linearizable, 1 any not,
3 any unknown (time limit), 2 usage or input error (an unreadable or
malformed history is named with its line, the other files are still
checked; a bad --manifest stops before any check).

``--manifest FILE`` (a corpus manifest, like ../shared/corpus/manifest.json)
gives the model, initial value and semantics (failed cas observed or
no-effect, nil read absent or wildcard) of each history it lists, and its
expected verdict, which is compared. No manifest is ever looked for: a
verdict depends only on what the command was given. ``--model``,
``--fail-cas`` and ``--nil-read`` override the manifest.

``--model list-append`` checks list-append transaction histories (ours, or
Jepsen/Elle EDN with ``:f :txn``) for dependency cycles; ``--consistency``
says which anomalies count (docs/checker.md "list-append").

A run's history.jsonl also carries its faults' evidence (nemesis events):
the findings it proves (faults/findings.py ``found``: a node that refused to
start after a power loss, replicas that applied different commands at one
index) make the file invalid as they make the run's own results.json
invalid, one line each, counted in the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from checker import MODELS, CheckResult, HistoryError, check_file
from checker.check import MEMORY_LIMIT_MB
from checker.listappend import CONSISTENCY
from checker.manifest import Manifest, ManifestError, load_manifest
from faults.findings import found as findings_of

HISTORY_NAMES = ("history.jsonl", "history.edn")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="check histories for linearizability",
        description="Check history files (our JSON Lines, or Jepsen/Knossos EDN) for "
        "linearizability, or list-append transaction histories (--model list-append) for "
        "Elle-style dependency cycles. Folders are searched for *.jsonl and *.edn (only history.jsonl / "
        "history.edn in a run folder).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="history file or folder")
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="object model (default kv, or what --manifest says for the file)")
    p.add_argument("--consistency", choices=CONSISTENCY, default=None,
                   help="list-append only: the consistency model whose anomalies count "
                   f"(default {CONSISTENCY[0]})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help="give up on a file after S seconds (verdict unknown)")
    p.add_argument("--memory-limit", type=float, default=MEMORY_LIMIT_MB, metavar="MB",
                   help="cap what one key's search holds (default %(default)g MB; 0 = no cap): "
                        "a key that would pass it is unknown, the others are still decided")
    p.add_argument("--fail-cas", choices=("noeffect", "observed"), default=None,
                   help="a failed cas had no effect (Jepsen, default) or observed a mismatch")
    p.add_argument("--nil-read", choices=("absent", "wildcard"), default=None,
                   help="an ok read of nil means absent (default) or unknown (Knossos)")
    p.add_argument("--independent", action="store_true",
                   help="Jepsen independent-key history: each value is [key, value]")
    p.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                   help="a corpus manifest.json: each listed history's model, semantics and "
                   "expected verdict")
    p.set_defaults(func=run)


def history_files(path: Path) -> Iterator[Path]:
    """A file itself; in a folder, every *.jsonl / *.edn, except that a run
    folder (one holding history.jsonl or history.edn) gives only that file
    and is not searched further (metrics.jsonl, net.jsonl, data/ are not
    histories)."""
    if not path.is_dir():
        yield path
        return
    for root, dirs, names in os.walk(path):
        dirs.sort()
        here = Path(root)
        runs = [here / n for n in HISTORY_NAMES if n in names]
        if runs:
            dirs.clear()
            yield from runs
            continue
        yield from (here / n for n in sorted(names) if n.endswith((".jsonl", ".edn")))


def run(args: argparse.Namespace) -> int:
    if args.memory_limit < 0:
        print("harness check: error: --memory-limit must be >= 0 (0 = no cap)", file=sys.stderr)
        return 2
    if args.time_limit is not None and args.time_limit <= 0:
        print("harness check: error: --time-limit must be positive", file=sys.stderr)
        return 2
    if args.consistency is not None and args.model not in (None, "list-append"):
        print("harness check: error: --consistency applies to --model list-append only",
              file=sys.stderr)
        return 2
    manifest: Manifest | None = None
    if args.manifest is not None:
        try:
            manifest = load_manifest(args.manifest)
        except ManifestError as exc:
            print(f"harness check: error: --manifest {exc}", file=sys.stderr)
            return 2
    rows: list[dict] = []
    counts = {"valid": 0, "invalid": 0, "unknown": 0, "error": 0}
    mismatches: list[str] = []
    total = 0.0
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            print(f"harness check: error: {raw}: no such file or folder", file=sys.stderr)
            counts["error"] += 1
            continue
        for file in history_files(path):
            entry = None if manifest is None else manifest.entry(file)
            model = args.model or (entry and entry.model) or "kv"
            sem: dict[str, Any] = dict(entry.semantics) if entry is not None else {}
            if args.fail_cas:
                sem["fail_cas"] = args.fail_cas
            if args.nil_read:
                sem["nil_read"] = args.nil_read
            row: dict[str, Any] = {"path": str(file)}
            if model == "list-append" and args.consistency:
                sem["consistency"] = args.consistency
            try:
                res = check_file(file, model, args.time_limit, independent=args.independent,
                                 memory_limit=args.memory_limit or None, **sem)
            except (HistoryError, ValueError) as exc:  # ValueError: a bad model or option
                counts["error"] += 1
                row.update(valid=None, error=str(exc))
                rows.append(row)
                if not args.json:
                    print(f"error    {exc}", file=sys.stderr)
                continue
            total += res.seconds
            row.update(res.to_dict(res.history))
            verdict = _verdict(res)
            found = findings_of(_nemesis_events(file))
            if found:  # as faults.findings.apply does for the run's results.json
                verdict = "invalid"
                row.update(valid=False, findings=len(found),
                           anomalies=list(row.get("anomalies") or []) + found)
            counts[verdict] += 1
            if entry is not None and entry.expected is not None:
                row["expected"] = entry.expected
                if verdict != "unknown" and (verdict == "valid") != entry.expected:
                    mismatches.append(str(file))
            rows.append(row)
            if not args.json:
                _print_row(file, res, verdict, row.get("expected"))
                for a in found:
                    print(f"         {a['kind']}: {a['sentence']}")
    summary = {**counts, "files": len(rows), "seconds": round(total, 3),
               "mismatches": mismatches}
    if args.json:
        json.dump({"files": rows, "summary": summary}, sys.stdout, default=str)
        sys.stdout.write("\n")
    else:
        extra = f"; {len(mismatches)} disagree with the manifest" if any(
            "expected" in r for r in rows) else ""
        print(f"{len(rows)} histories: {counts['valid']} valid, {counts['invalid']} invalid, "
              f"{counts['unknown']} unknown, {counts['error']} unreadable{extra} "
              f"({total:.2f} s checking)")
        for m in mismatches:
            print(f"MISMATCH {m}")
    if counts["error"]:
        return 2
    if counts["invalid"]:
        return 1
    if counts["unknown"]:
        return 3
    return 0


def _nemesis_events(file: Path) -> list[dict[str, Any]]:
    """The nemesis events of a JSON Lines history (where a run's fault evidence
    is), for its findings; [] for EDN or a file without any. The
    lines are found by a bytes search first, so a history without faults
    costs one scan; a line that is not JSON was named by the check already."""
    if file.suffix == ".edn":
        return []
    try:
        data = file.read_bytes()
    except OSError:
        return []
    if b"nemesis" not in data:
        return []
    out = []
    for line in data.splitlines():
        if b"nemesis" not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("process") == "nemesis":
            out.append(ev)
    return out


def _verdict(res: CheckResult) -> str:
    return "valid" if res.valid is True else "invalid" if res.valid is False else "unknown"


def _print_row(file: Path, res: CheckResult, verdict: str, expected: Any) -> None:
    exp = ""
    if expected is not None and verdict != "unknown":
        exp = "" if (verdict == "valid") == expected else "  (MISMATCH: manifest says " \
            f"{'valid' if expected else 'invalid'})"
    print(f"{verdict:8} {res.seconds * 1000:9.1f} ms  {file}{exp}")
    if res.model == "list-append":
        allowed = res.extra.get("allowed") or {}
        note = "; allowed: " + ", ".join(f"{k} x{v}" for k, v in sorted(allowed.items())) \
            if allowed else ""
        print(f"         {res.extra.get('txns', 0)} transactions, {res.extra.get('edges', 0)} "
              f"dependency edges, checked as {res.extra.get('consistency')}{note}")
        for a in res.anomalies:
            print(f"         {a.kind}: {a.sentence}")
    else:
        for a in res.anomalies:
            key = "" if a.key is None else f"key {a.key}: "
            print(f"         {key}{a.sentence}")
    for u in res.unknown:
        print(f"         {u.sentence}")
