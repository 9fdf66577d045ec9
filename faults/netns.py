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
- Ownership (faults.owner): before creating anything, a run claims its tag
  with an owner record (PID and start time); the record is released only
  after the last namespace and link of the tag are gone. Every nftables rule
  lives in a namespace of the tag, so it goes with it.
- ``close()`` is idempotent, runs from ``__exit__``, ``atexit`` and on a
  failed set-up, and removes every namespace named ``chs-<tag>-*`` and the
  root link, whatever was tracked.
- A run that was SIGKILLed leaves its namespaces and record behind; every
  set-up first removes what runs whose owner is *provably* gone left
  (``cleanup_stale``, also ``harness clean``). A tag whose owner is alive,
  or cannot be shown dead, is never touched.
- One-way cuts are enforced per packet; TCP needs both directions, so a
  one-way cut also stalls the opposite direction's connection after its
  window fills (the kernel's view of "one-way"; the proxy's is per message).
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from faults import owner
from nodes.common.clusterfile import ConfigError, rehost

log = logging.getLogger(__name__)

PREFIX = "chs"
#: faults.owner record kind: one record per run tag.
KIND = "netns"
TAG = re.compile(r"[0-9a-z]{1,8}")
NS_NAME = re.compile(rf"{PREFIX}-({TAG.pattern})-.+")
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
            list(argv), input=input, capture_output=True, text=True, timeout=30, check=False
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
        self._fixed_tag = tag is not None
        self._set_tag(tag or secrets.token_hex(3))
        self.subnet: ipaddress.IPv4Network | None = None
        self._claimed = False
        self._closed = False
        self._network: NetnsNetwork | None = None

    def _set_tag(self, tag: str) -> None:
        if not TAG.fullmatch(tag):
            raise NetnsError(f"bad namespace tag {tag!r}")
        self.tag = tag
        self.hub = f"{PREFIX}-{tag}-hub"
        self.root_link = f"{PREFIX}{tag}"

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
    def __enter__(self) -> Self:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise NetnsError(reason)
        for line in cleanup_stale():  # rare (a run was SIGKILLed), so say it out loud
            log.warning("removed %s", line)
        self.subnet = _pick_subnet()
        self._claim()
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
        """Remove every namespace, link and rule of this run (idempotent). Only a
        run that claimed its tag removes anything: a tag it could not claim is
        another run's."""
        if self._closed:
            return
        self._closed = True
        if self._claimed:
            _remove(self.tag)
        atexit.unregister(self.close)

    def _claim(self) -> None:
        """Record this process as the owner of the tag before anything exists
        (faults.owner); a random tag that is taken is drawn again."""
        for _ in range(100):
            taken = any(ns.startswith(f"{PREFIX}-{self.tag}-") for ns in _namespaces())
            if not taken and owner.claim(KIND, self.tag, {"namespaces": self.namespaces(),
                                                          "link": self.root_link}):
                self._claimed = True
                return
            if self._fixed_tag:
                raise NetnsError(f"namespace tag {self.tag} is in use by another run")
            self._set_tag(secrets.token_hex(3))
        raise NetnsError("no free namespace tag found")  # pragma: no cover

    # what harness-run needs
    def rewrite_cluster(self, cluster_json: Path) -> None:
        """Point a direct-mode cluster.json at the namespaces: every node binds on
        its own address (ports kept), routes go straight to peers, no proxy, and
        a ``netns`` section names the namespaces (nodes.common.clusterfile.rehost)."""
        section = {
            "tag": self.tag,
            "host": self.host_addr,
            "namespaces": {n: self.ns(n) for n in self.node_ids},
            "addresses": {n: self.addr(n) for n in self.node_ids},
        }
        try:
            rehost(cluster_json, section["addresses"], ("netns", section))
        except ConfigError as exc:
            raise NetnsError(str(exc)) from None

    def command(self, node_cmd: Sequence[str]) -> list[str]:
        """The node command, wrapped to run inside its node's namespace."""
        return [sys.executable, "-m", "faults.netns", "exec", "--tag", self.tag, "--",
                *node_cmd]

    def network(self) -> NetnsNetwork:
        if self._network is None:
            self._network = NetnsNetwork(self)
        return self._network


def _remove(tag: str, *, kill: bool = False) -> list[str]:
    """Delete every namespace ``chs-<tag>-*`` and the root link ``chs<tag>``,
    then the tag's owner record; what was removed, one item each. ``kill``:
    first SIGKILL the processes still inside (only for a dead run's, whose
    nodes lost their harness)."""
    removed = []
    for ns in _namespaces():
        if ns.startswith(f"{PREFIX}-{tag}-"):
            if kill:
                removed += _kill_inside(ns)
            _run(["ip", "netns", "del", ns], check=False)
            removed.append(f"namespace {ns}")
    link = f"{PREFIX}{tag}"
    if _link_exists(link):
        _run(["ip", "link", "del", link], check=False)
        removed.append(f"link {link}")
    # namespace teardown is asynchronous in the kernel: wait until the link is gone
    deadline = time.monotonic() + 5
    while _link_exists(link) and time.monotonic() < deadline:
        time.sleep(0.02)
    owner.release(KIND, tag)  # last: until here the record covers what is left
    return removed


def _kill_inside(ns: str) -> list[str]:
    out = _run(["ip", "netns", "pids", ns], check=False)
    killed = []
    for word in out.split():
        try:
            os.kill(int(word), signal.SIGKILL)
            killed.append(f"process {word} (killed) in {ns}")
        except (ValueError, ProcessLookupError):
            pass
    return killed


def cleanup_stale() -> list[str]:
    """Remove what runs that died without cleaning up left: the namespaces (and
    with them their nftables rules), root links, processes and owner records
    of every tag whose owner is provably gone (faults.owner). One line per
    thing removed. Nothing of a live run's tag is touched.

    Raises ``owner.CleanupError`` when there is something to remove but this
    process may not (not root, or no ``ip``)."""
    dead = [r for r in owner.stale(KIND) if TAG.fullmatch(r.name)]  # no record of ours else
    if not dead:
        return []
    if os.geteuid() != 0 or shutil.which("ip") is None:
        tags = ", ".join(r.name for r in dead)
        raise owner.CleanupError(
            f"dead --net netns runs left namespaces (tags {tags}); removing them needs root "
            "and the 'ip' command")
    lines = []
    for rec in dead:
        if owner.read(KIND, rec.name) != rec:
            continue  # another cleaner got there first (and the tag may be taken again)
        for thing in _remove(rec.name, kill=True) + [f"owner record {rec.path}"]:
            lines.append(f"{thing} (left by run {rec.name}, whose process {rec.owner.pid} "
                         "is gone)")
    return lines


def unowned() -> list[str]:
    """Namespaces that look like ours but have no owner record
    (left by hand or by an older harness): never removed, since nothing proves
    their owner gone."""
    if shutil.which("ip") is None:
        return []  # no namespaces can be listed, so none can be ours
    claimed = set(owner.names(KIND))
    return [f"namespace {ns}" for ns in _namespaces()
            if (m := NS_NAME.fullmatch(ns)) and m.group(1) not in claimed]


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
        #: Packets each (src, dest) rule dropped under rule sets already replaced:
        #: a rewrite zeroes nftables' counters, so ``counters`` adds these back.
        self._dropped: dict[tuple[str, str, str], int] = {}
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
        # keep what the rules about to be replaced counted (the caller holds the lock)
        for (kind, src, dest), n in self._read()[2].items():
            self._dropped[(kind, src, dest)] = self._dropped.get((kind, src, dest), 0) + n
        addr = self.nets.addr
        for dest in self.nets.node_ids:
            deaf = sorted(self.grudge.get(dest, ()))
            # one rule per source, each with its own counter: per-link evidence
            rules = [f"ip saddr {addr(s)} counter drop" for s in deaf]
            for (src, d), p in sorted(self.loss.items()):
                if d == dest and src not in deaf:
                    rules.append(
                        f"ip saddr {addr(src)} numgen random mod {LOSS_SCALE} "
                        f"< {round(p * LOSS_SCALE)} counter drop"
                    )
            _nft(self.nets.ns(dest), _ruleset(rules))

    def _read(self) -> tuple[dict[str, list[str]], list[dict[str, Any]],
                             dict[tuple[str, str, str], int]]:
        """Each namespace's rules read back: the grudge, the loss, and the
        packets each rule dropped, by (``cut`` or ``loss``, src, dest)."""
        by_addr = {self.nets.addr(n): n for n in self.nets.node_ids}
        grudge: dict[str, list[str]] = {}
        loss: list[dict[str, Any]] = []
        packets: dict[tuple[str, str, str], int] = {}
        count = r"(?:counter packets (\d+) bytes \d+ )?"
        for dest in self.nets.node_ids:
            text = _run(["ip", "netns", "exec", self.nets.ns(dest), "nft", "list", "table", "inet",
                         TABLE])
            for line in text.splitlines():
                line = line.strip()
                m = re.match(r"ip saddr \{?\s*([\d., ]+?)\s*\}? " + count + "drop$", line)
                if m:
                    srcs = [by_addr[a.strip()] for a in m.group(1).split(",")]
                    grudge.setdefault(dest, []).extend(srcs)
                    if m.group(2) and len(srcs) == 1:
                        packets[("cut", srcs[0], dest)] = int(m.group(2))
                    continue
                m = re.match(r"ip saddr ([\d.]+) numgen random mod (\d+) < (\d+) " + count
                             + "drop$", line)
                if m:
                    src = by_addr[m.group(1)]
                    loss.append({"src": src, "dest": dest,
                                 "loss": int(m.group(3)) / int(m.group(2))})
                    if m.group(4):
                        packets[("loss", src, dest)] = int(m.group(4))
        return grudge, loss, packets

    def state(self) -> dict[str, Any]:
        """The grudge and loss as read back from each namespace's rules."""
        grudge, loss, _ = self._read()
        return {"grudge": {d: sorted(s) for d, s in grudge.items()}, "loss": loss}

    def counters(self) -> dict[str, Any]:
        """Per link ``"src->dest"``, the packets its rules dropped since the run
        began, in the proxy's shape (``cut``: by the grudge; ``dropped``: all)."""
        with self._lock:
            total = dict(self._dropped)
            for key, n in self._read()[2].items():
                total[key] = total.get(key, 0) + n
        ids = self.nets.node_ids
        links: dict[str, dict[str, int]] = {}
        for s in ids:
            for d in ids:
                if s != d:
                    cut = total.get(("cut", s, d), 0)
                    links[f"{s}->{d}"] = {"cut": cut, "dropped": cut + total.get(("loss", s, d), 0),
                                          "delayed": 0, "duplicated": 0}
        return {"ok": True, "links": links}


# --- command line: the node launcher ------------------------------------------------


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
    args = parser.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    return _exec(args.tag, cmd)


if __name__ == "__main__":
    sys.exit(main())
