"""`harness report RUN` (redraw a run's index.html) and `harness serve` (browse the store).

Owns only argument parsing and the small HTTP server; the drawing is
`reports.write_report` / `reports.write_store_index`.

Invariants: `serve` binds 127.0.0.1 only, on the port asked for (0 = a free
one), prints the address it actually got, and serves files under the store
and nothing else. Exit codes (docs/exit-codes.md): `report` 0 drawn, 2 for a
user's mistake (one line on stderr: not a run folder, an unreadable history,
a results.json newer than we read), 3 when Ctrl-C stopped it; `serve` 0 when
Ctrl-C ends it, 2 for a missing store, a bad port or one it cannot listen on.
"""

from __future__ import annotations

import functools
import sys
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reports.runfolder import STORE_INDEX, ReportError, RunFolder, find_runs


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="redraw a run's HTML report",
        description="Redraw RUN/index.html (and the store index above it) "
        "from the run folder's files.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (holds history.jsonl)")
    p.set_defaults(func=cmd_report)
    s = subparsers.add_parser(
        "serve",
        help="serve the store's reports on 127.0.0.1",
        description="Serve the store over HTTP on 127.0.0.1 and print the address.",
    )
    s.add_argument(
        "--store", default="store", metavar="DIR", help="store directory (default: store)"
    )
    s.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free port)")
    s.set_defaults(func=cmd_serve)


def cmd_report(args: Any) -> int:
    from reports import write_report, write_store_index

    run = Path(args.run)
    if not RunFolder(run).is_run():
        print(f"harness report: error: {run}: not a run folder (no history.jsonl)", file=sys.stderr)
        return 2
    began = time.perf_counter()
    try:
        out = write_report(run)
        print(f"{out} ({out.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - began:.2f} s)")
        # A run folder sits at store/<name>/<stamp>: keep that store's index in step.
        store = run.resolve().parent.parent
        if (store / STORE_INDEX).exists() and run.resolve() in [
            p.resolve() for p in find_runs(store)
        ]:
            write_store_index(store)
    except ReportError as exc:  # every file is written through write_atomic: one line each
        print(f"harness report: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the page is written by a rename: no half page is left
        print("harness report: interrupted", file=sys.stderr)
        return 3
    return 0


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files; one short line per request instead of the default noise."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(store: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(store))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def cmd_serve(args: Any) -> int:
    from reports import write_store_index

    store = Path(args.store)
    if not store.is_dir():
        print(f"harness serve: error: {store}: no such store directory", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"harness serve: error: --port {args.port}: not a TCP port", file=sys.stderr)
        return 2
    write_store_index(store)
    try:
        server = make_server(store, args.port)
    except OSError as exc:
        print(
            f"harness serve: error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    host, port = server.server_address[:2]
    print(f"serving {store.resolve()} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
