"""Kernel-level network faults: one network namespace per node (``--net netns``).

Owns the namespaces, links and nftables rules of one run, and nothing else:

    root ns:  chs<tag> 198.18.X.1/24 ──veth── hub ns "chs-<tag>-hub": bridge br0
    node ns "chs-<tag>-<id>": eth0 198.18.X.(10+i)/24 ──veth── p<i> on br0

The root namespace gets exactly one interface (so the harness's clients can
reach each node's client socket); nodes talk to each other over the bridge
inside the hub namespace. 198.18.0.0/15 is the range set aside for
benchmark networks; X is picked so it collides with no address or route of
the root namespace. Partitions (the grudge) and link loss are nftables drop
rules in the *destination's* namespace, in its own table ``inet harness``;
every rule dies with its namespace.

Use (harness-run; see ``NetnsCluster``):

    with NetnsCluster(node_ids) as nets:       # creates everything
        nets.rewrite_cluster(cluster_json)     # node addresses, direct routes
        LocalCluster(cluster_json, nets.command(node_cmd), log_dir) ...
        NemesisContext(..., network=nets.network())
    # every namespace, link and rule is gone here, also after Ctrl-C

``nets.command(cmd)`` prefixes ``python -m faults.netns exec --tag T --``:
that launcher reads ``--id`` from the node command and execs ``ip netns exec
chs-T-<id> cmd...``, so the node keeps the launcher's PID (signals and
psutil reach the node itself).

Invariants:
- Refuses clearly (``NetnsError``) when not Linux, not root, or ``ip``/``nft``
  are missing -- before creating anything.
- ``close()`` is idempotent, runs from ``__exit__``, ``atexit`` and on a
  failed set-up, and removes every namespace named ``chs-<tag>-*`` and the
  root link, whatever was tracked. A run that was SIGKILLed leaves a state
  file under /run/consensus-harness; the next set-up (or ``python -m
  faults.netns cleanup``) removes what such dead runs left.
- One-way cuts are enforced per packet; TCP needs both directions, so a
  one-way cut also stalls the opposite direction's connection after its
  window fills (the kernel's view of "one-way"; the proxy's is per message).
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

PREFIX = "chs"
STATE_DIR = Path("/run/consensus-harness")
BASE = ipaddress.ip_network("198.18.0.0/15")
TABLE = "harness"
#: nft numgen modulus for loss probabilities (resolution 1e-6).
LOSS_SCALE = 1_000_000


class NetnsError(Exception):
    """Namespaces cannot be set up or changed here; the message is one line."""


def unavailable_reason() -> str | None:
    """Why ``--net netns`` cannot run on this machine, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "--net netns needs Linux network namespaces"
    if os.geteuid() != 0:
        return "--net netns needs root (network namespaces and nftables); use --net proxy"
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"--net netns needs the '{tool}' command (apt-get install {pkg})"
    return None


def _run(argv: Sequence[str], input: str | None = None, check: bool = True) -> str:
    try:
        out = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(argv[:4])}: {exc}") from None
    if check and out.returncode != 0:
        err = (out.stderr.strip().splitlines() or ["failed"])[0]
        raise NetnsError(f"{' '.join(argv)}: {err}")
    return out.stdout


def _namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _pick_subnet() -> ipaddress.IPv4Network:
    """A /24 in 198.18.0.0/15 that no root-namespace address or route touches."""
    used: list[ipaddress.IPv4Network] = []
    text = _run(["ip", "-4", "-o", "addr"], check=False) + _run(["ip", "-4", "route"], check=False)
    for m in re.finditer(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", text):
        try:
            used.append(ipaddress.ip_network(m.group(1), strict=False))
        except ValueError:
            pass
    candidates = list(BASE.subnets(new_prefix=24))
    start = secrets.randbelow(len(candidates))
    for i in range(len(candidates)):
        net = candidates[(start + i) % len(candidates)]
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise NetnsError("no free /24 left in 198.18.0.0/15 for namespaces")


class NetnsCluster:
    """The namespaces, bridge and links of one run. A context manager."""

    def __init__(self, node_ids: Sequence[str], tag: str | None = None) -> None:
        if not node_ids:
            raise NetnsError("no nodes to put in namespaces")
        if len(node_ids) > 200:
            raise NetnsError(f"at most 200 nodes in namespaces, not {len(node_ids)}")
        self.node_ids = list(node_ids)
        self.tag = tag or secrets.token_hex(3)
        if not re.fullmatch(r"[0-9a-z]{1,8}", self.tag):
            raise NetnsError(f"bad namespace tag {self.tag!r}")
        self.hub = f"{PREFIX}-{self.tag}-hub"
        self.root_link = f"{PREFIX}{self.tag}"
        self.subnet: ipaddress.IPv4Network | None = None
        self._closed = False
        self._network: NetnsNetwork | None = None

    # names and addresses
    def ns(self, node: str) -> str:
        return f"{PREFIX}-{self.tag}-{node}"

    def addr(self, node: str) -> str:
        assert self.subnet is not None, "set up first"
        return str(self.subnet[10 + self.node_ids.index(node)])

    @property
    def host_addr(self) -> str:
        assert self.subnet is not None, "set up first"
        return str(self.subnet[1])

    def namespaces(self) -> list[str]:
        return [self.hub] + [self.ns(n) for n in self.node_ids]

    # life cycle
    def __enter__(self) -> NetnsCluster:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise NetnsError(reason)
        cleanup_stale()
        self.subnet = _pick_subnet()
        self._write_state()
        atexit.register(self.close)
        try:
            self._create()
        except BaseException:  # Ctrl-C or a failed command: leave nothing behind
            self.close()
            raise

    def _create(self) -> None:
        hub, plen = self.hub, self.subnet.prefixlen  # type: ignore[union-attr]
        _run(["ip", "netns", "add", hub])
        _run(["ip", "-n", hub, "link", "set", "lo", "up"])
        _run(["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", hub, "link", "set", "br0", "up"])
        _run(["ip", "link", "add", self.root_link, "type", "veth", "peer", "name", "up0",
              "netns", hub])
        _run(["ip", "-n", hub, "link", "set", "up0", "master", "br0", "up"])
        _run(["ip", "addr", "add", f"{self.host_addr}/{plen}", "dev", self.root_link])
        _run(["ip", "link", "set", self.root_link, "up"])
        for i, node in enumerate(self.node_ids):
            ns = self.ns(node)
            _run(["ip", "netns", "add", ns])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", hub, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
                  "netns", ns])
            _run(["ip", "-n", hub, "link", "set", f"p{i}", "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{self.addr(node)}/{plen}", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            # an empty table from the start, so state() can always read it back
            _nft(ns, _ruleset([]))

    def close(self) -> None:
        """Remove every namespace, link and rule of this run (idempotent)."""
        if self._closed:
            return
        self._closed = True
        _remove(self.tag)
        atexit.unregister(self.close)

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        me = psutil.Process()
        (STATE_DIR / f"netns-{self.tag}.json").write_text(json.dumps(
            {"tag": self.tag, "pid": me.pid, "create_time": me.create_time(),
             "namespaces": self.namespaces(), "link": self.root_link}
        ))

    # what harness-run needs
    def rewrite_cluster(self, cluster_json: Path) -> None:
        """Point a direct-mode cluster.json at the namespaces: every node binds on
        its own address (ports kept), routes go straight to peers, no proxy."""
        path = Path(cluster_json)
        doc = json.loads(path.read_text())
        for node, spec in doc["nodes"].items():
            if node not in self.node_ids:
                raise NetnsError(f"{path}: node {node} has no namespace")
            for key in ("peer_bind", "client_bind"):
                port = str(spec[key]).rsplit(":", 1)[1]
                spec[key] = f"tcp://{self.addr(node)}:{port}"
        ids = list(doc["nodes"])
        doc["routes"] = {s: {d: doc["nodes"][d]["peer_bind"] for d in ids if d != s} for s in ids}
        doc.pop("proxy", None)
        doc["netns"] = {
            "tag": self.tag,
            "host": self.host_addr,
            "namespaces": {n: self.ns(n) for n in self.node_ids},
            "addresses": {n: self.addr(n) for n in self.node_ids},
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")

    def command(self, node_cmd: Sequence[str]) -> list[str]:
        """The node command, wrapped to run inside its node's namespace."""
        return [sys.executable, "-m", "faults.netns", "exec", "--tag", self.tag, "--",
                *node_cmd]

    def network(self) -> NetnsNetwork:
        if self._network is None:
            self._network = NetnsNetwork(self)
        return self._network


def _remove(tag: str) -> list[str]:
    """Delete every namespace ``chs-<tag>-*`` and the root link ``chs<tag>``."""
    removed = []
    for ns in _namespaces():
        if ns.startswith(f"{PREFIX}-{tag}-"):
            _run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
    link = f"{PREFIX}{tag}"
    if _link_exists(link):
        _run(["ip", "link", "del", link], check=False)
        removed.append(link)
    # namespace teardown is asynchronous in the kernel: wait until the link is gone
    deadline = time.monotonic() + 5
    while _link_exists(link) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        (STATE_DIR / f"netns-{tag}.json").unlink()
    except FileNotFoundError:
        pass
    return removed


def cleanup_stale() -> list[str]:
    """Remove what runs that died without cleaning up left (their owner is gone)."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    for f in STATE_DIR.glob("netns-*.json"):
        try:
            st = json.loads(f.read_text())
            alive = psutil.Process(st["pid"]).create_time() == st["create_time"]
        except (psutil.Error, OSError, ValueError, KeyError, TypeError):
            alive = False
        if not alive:
            tag = f.stem.removeprefix("netns-")
            if re.fullmatch(r"[0-9a-z]{1,8}", tag):
                removed += _remove(tag)
    return removed


# --- partitions and loss as nftables rules ----------------------------------------


def _ruleset(rules: list[str]) -> str:
    """Replace table inet harness atomically (create-then-delete keeps it idempotent)."""
    body = "\n".join(f"    {r}" for r in rules)
    return (
        f"table inet {TABLE}\ndelete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n  chain input {{\n"
        f"    type filter hook input priority 0; policy accept;\n{body}\n  }}\n}}\n"
    )


def _nft(ns: str, script: str) -> None:
    _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)


class NetnsNetwork:
    """``faults.api.NetworkControl`` over nftables: the grudge and link loss."""

    #: Link faults this backend can apply (the kernel here has no netem).
    link_faults = ("loss",)

    def __init__(self, nets: NetnsCluster) -> None:
        self.nets = nets
        self.grudge: dict[str, set[str]] = {}
        self.loss: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def set_grudge(self, grudge: dict[str, Iterable[str]]) -> dict[str, Any]:
        with self._lock:
            new = {}
            for dest, srcs in grudge.items():
                self._check(dest)
                new[dest] = {self._check(s) for s in srcs if s != dest}
            self.grudge = new
            self._apply()
        return self.state()

    def set_links(self, faults: dict[str, Any] | None, links: Any = "all") -> dict[str, Any]:
        faults = dict(faults or {})
        unsupported = [k for k, v in faults.items() if k != "loss" and v]
        if unsupported:
            raise NetnsError(
                f"--net netns supports only loss; {', '.join(sorted(unsupported))} need --net proxy"
            )
        loss = float(faults.get("loss", 0.0))
        if not 0.0 <= loss <= 1.0:
            raise NetnsError(f"loss must be in [0, 1], not {loss}")
        ids = self.nets.node_ids
        pairs = (
            [(s, d) for s in ids for d in ids if s != d] if links == "all"
            else [(self._check(s), self._check(d)) for s, d in links]
        )
        with self._lock:
            for pair in pairs:
                if loss > 0:
                    self.loss[pair] = loss
                else:
                    self.loss.pop(pair, None)
            self._apply()
        return self.state()

    def heal(self) -> dict[str, Any]:
        with self._lock:
            self.grudge, self.loss = {}, {}
            self._apply()
        return self.state()

    def _check(self, node: str) -> str:
        if node not in self.nets.node_ids:
            raise NetnsError(f"unknown node {node!r}")
        return node

    def _apply(self) -> None:
        addr = self.nets.addr
        for dest in self.nets.node_ids:
            rules = []
            deaf = sorted(self.grudge.get(dest, ()))
            if deaf:
                rules.append(f"ip saddr {{ {', '.join(addr(s) for s in deaf)} }} drop")
            for (src, d), p in sorted(self.loss.items()):
                if d == dest and src not in deaf:
                    rules.append(
                        f"ip saddr {addr(src)} numgen random mod {LOSS_SCALE} "
                        f"< {round(p * LOSS_SCALE)} drop"
                    )
            _nft(self.nets.ns(dest), _ruleset(rules))

    def state(self) -> dict[str, Any]:
        """The grudge and loss as read back from each namespace's rules."""
        by_addr = {self.nets.addr(n): n for n in self.nets.node_ids}
        grudge: dict[str, list[str]] = {}
        loss: list[dict[str, Any]] = []
        for dest in self.nets.node_ids:
            text = _run(["ip", "netns", "exec", self.nets.ns(dest), "nft", "list", "table", "inet",
                         TABLE])
            for line in text.splitlines():
                line = line.strip()
                m = re.match(r"ip saddr \{?\s*([\d., ]+?)\s*\}? drop$", line)
                if m:
                    srcs = [by_addr[a.strip()] for a in m.group(1).split(",")]
                    grudge.setdefault(dest, []).extend(srcs)
                    continue
                m = re.match(r"ip saddr ([\d.]+) numgen random mod (\d+) < (\d+) drop$", line)
                if m:
                    loss.append({"src": by_addr[m.group(1)], "dest": dest,
                                 "loss": int(m.group(3)) / int(m.group(2))})
        return {"grudge": {d: sorted(s) for d, s in grudge.items()}, "loss": loss}


# --- command line: the node launcher and cleanup ------------------------------------


def _exec(tag: str, cmd: list[str]) -> int:
    if not cmd:
        print("netns exec: error: no command given", file=sys.stderr)
        return 2
    try:
        node = cmd[cmd.index("--id") + 1]
    except (ValueError, IndexError):
        print("netns exec: error: the node command has no --id ID", file=sys.stderr)
        return 2
    ns = f"{PREFIX}-{tag}-{node}"
    if ns not in _namespaces():
        print(f"netns exec: error: no namespace {ns} (is the run's network set up?)",
              file=sys.stderr)
        return 2
    # exec, twice over (here and inside ip): the node keeps this PID
    os.execvp("ip", ["ip", "netns", "exec", ns, *cmd])
    return 127  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults.netns",
                                     description="Network namespaces for --net netns runs.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("exec", help="run a node command inside its node's namespace")
    ex.add_argument("--tag", required=True)
    ex.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("cleanup", help="remove namespaces left by runs that died")
    args = parser.parse_args(argv)
    if args.cmd == "exec":
        cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
        return _exec(args.tag, cmd)
    reason = unavailable_reason()
    if reason:
        print(f"netns cleanup: error: {reason}", file=sys.stderr)
        return 2
    for name in cleanup_stale():
        print(f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
