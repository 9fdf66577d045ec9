"""cluster.json, written and read in one place (docs/cluster-json.md).

Owns the file every process of a run agrees on: which nodes exist, where each
listens (``peer_bind``, ``client_bind``), where it keeps its data, how every
node reaches every peer (``routes``), the proxy's sockets, ``timing`` and the
cores' ``options``. The harness, ``python -m nodes.mkcluster``, the nodes, the
network proxy and the netns backend all write and read it through this module;
nothing else parses it.

Writing (``write_cluster``, ``rehost``):
- free ports come from ``free_ports``: all probes are bound at once on
  127.0.0.1, so no two of them collide;
- ``write_cluster`` writes only what it was given plus ``bugs: []``: option
  defaults live in nodes/common/options.py alone, never here.

Reading (``load_cluster``). What stays true after it returns:
- every node has a ``peer_bind``, a ``client_bind`` and a ``data_dir``
  (a relative ``data_dir`` is taken relative to the cluster file's folder);
- ``routes[src][dest]`` exists for every ordered pair of distinct nodes;
- ``timing`` is a valid ``core_api.Timing`` (defaults for what is missing);
- ``options`` passed ``options.CoreOptions.parse``; it is a dict with at
  least ``bugs`` (a tuple of strings); other keys pass through untouched for
  the cores, which take their defaults from ``CoreOptions``.

``nodes`` and ``routes`` are required; ``proxy``, ``timing``, ``options`` and
any key inside them may be missing. Unknown keys are ignored so the harness
can grow the file without breaking older nodes. Any problem raises
``ConfigError`` whose message is one line naming the file and the field.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.common.core_api import Timing
from nodes.common.options import CoreOptions

HOST = "127.0.0.1"
#: How peer traffic flows: straight to each peer, or through the network proxy.
NET_MODES = ("direct", "proxy")


class ConfigError(Exception):
    """cluster.json is missing, unreadable or invalid; str() is one line."""


# --- writing ---------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1, picked together."""
    probes: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            probes.append(s)
        return [s.getsockname()[1] for s in probes]
    finally:
        for s in probes:
            s.close()


def node_ids(n: int) -> list[str]:
    """The ids of an ``n``-node cluster: n1 .. nN."""
    return [f"n{i}" for i in range(1, n + 1)]


def write_cluster(
    run_dir: Path,
    n: int,
    *,
    net: str = "direct",
    timing: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/cluster.json`` for ``n`` nodes and return its path.

    ``net="direct"``: routes point straight at each peer's ``peer_bind``.
    ``net="proxy"``: every route to a destination points at the proxy's one
    listener for it, and a ``proxy`` section says where the proxy listens and
    where its control socket is. Raises ``ValueError`` on a bad ``n``, ``net``
    or option, ``OSError`` if the folder cannot be written.
    """
    if n < 1:
        raise ValueError(f"a cluster needs at least 1 node, not {n}")
    if net not in NET_MODES:
        raise ValueError(f"unknown net mode {net!r} (expected one of {', '.join(NET_MODES)})")
    opts: dict[str, Any] = {"bugs": [], **(options or {})}
    CoreOptions.parse(opts)  # a bad option fails here, not in n nodes at once
    run_dir = Path(run_dir)
    ids = node_ids(n)
    extra = 1 + n if net == "proxy" else 0
    ports = iter(free_ports(2 * n + extra))
    nodes: dict[str, dict[str, str]] = {}
    for nid in ids:
        data_dir = run_dir / "data" / nid
        data_dir.mkdir(parents=True, exist_ok=True)
        nodes[nid] = {
            "peer_bind": f"tcp://{HOST}:{next(ports)}",
            "client_bind": f"tcp://{HOST}:{next(ports)}",
            "data_dir": str(data_dir.resolve()),
        }
    doc: dict[str, Any] = {"nodes": nodes}
    if net == "proxy":
        control = f"tcp://{HOST}:{next(ports)}"
        listen = {nid: f"tcp://{HOST}:{next(ports)}" for nid in ids}
        doc["proxy"] = {"control": control, "listen": listen}
        doc["routes"] = {s: {d: listen[d] for d in ids if d != s} for s in ids}
    else:
        doc["routes"] = _direct_routes(nodes)
    if timing:
        doc["timing"] = dict(timing)
    doc["options"] = opts
    path = run_dir / "cluster.json"
    _save(path, doc)
    return path


def rehost(path: Path, hosts: Mapping[str, str], section: tuple[str, Any] | None = None) -> None:
    """Move every node of ``path`` to its own host ``hosts[node]`` (ports kept),
    route peers straight to each other, drop the proxy, and add the top-level
    ``section`` (name, value) if given. For a network backend that gives each
    node its own address (faults/netns.py). ``ConfigError`` if a node has no host."""
    path = Path(path)
    doc = read_document(path)
    parse_cluster(doc, path)  # rewrite only a valid file
    nodes = doc["nodes"]
    for node, spec in nodes.items():
        if node not in hosts:
            raise ConfigError(f"{path}: node {node} has no host to move to")
        for key in ("peer_bind", "client_bind"):
            port = str(spec[key]).rsplit(":", 1)[1]
            spec[key] = f"tcp://{hosts[node]}:{port}"
    doc["routes"] = _direct_routes(nodes)
    doc.pop("proxy", None)
    if section is not None:
        doc[section[0]] = section[1]
    _save(path, doc)


def _direct_routes(nodes: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    ids = list(nodes)
    return {s: {d: nodes[d]["peer_bind"] for d in ids if d != s} for s in ids}


def _save(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` whole or not at all: a node started meanwhile never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- reading ---------------------------------------------------------------------


def read_document(path: str | Path) -> dict[str, Any]:
    """The decoded JSON object of ``path``, unvalidated; ``ConfigError`` (one
    line) if it is unreadable or not an object. For rewriting the file;
    everyone else uses ``load_cluster``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read cluster file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: cluster file is not UTF-8 text") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{p}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a JSON object")
    return raw


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate ``path``; raise ``ConfigError`` (one line) on any problem."""
    p = Path(path)
    return parse_cluster(read_document(p), p)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Where one node listens and keeps its data."""

    id: str
    peer_bind: str
    client_bind: str
    data_dir: Path


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The network proxy, when peer traffic goes through one."""

    control: str | None
    listen: dict[str, str] = field(default_factory=dict)
    #: The run's time zero for the proxy's journal: CLOCK_MONOTONIC ns of the
    #: run's start (time.monotonic_ns()), so journal times match the history's.
    t0_ns: int | None = None


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A validated cluster.json."""

    path: Path
    nodes: dict[str, NodeConfig]
    routes: dict[str, dict[str, str]]
    timing: Timing
    options: dict[str, Any]
    proxy: ProxyConfig | None = None

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.nodes))

    def peers_of(self, node_id: str) -> tuple[str, ...]:
        return tuple(sorted(n for n in self.nodes if n != node_id))


def parse_cluster(raw: Any, path: Path) -> ClusterConfig:
    """Validate an already-decoded cluster.json object."""
    where = str(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: top level must be a JSON object")
    nodes = _parse_nodes(raw.get("nodes"), path)
    routes = _parse_routes(raw.get("routes"), nodes, where)
    return ClusterConfig(
        path=path,
        nodes=nodes,
        routes=routes,
        timing=_parse_timing(raw.get("timing"), where),
        options=_parse_options(raw.get("options"), where),
        proxy=_parse_proxy(raw.get("proxy"), where),
    )


def _addr(value: Any, where: str) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(f"{where} must be a ZeroMQ address like tcp://127.0.0.1:PORT")
    return value


def _parse_nodes(raw: Any, path: Path) -> dict[str, NodeConfig]:
    where = str(path)
    if raw is None:
        raise ConfigError(f"{where}: missing required key 'nodes'")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: 'nodes' must be a non-empty object of node id -> settings")
    nodes: dict[str, NodeConfig] = {}
    for node_id, spec in raw.items():
        at = f"{where}: nodes.{node_id}"
        if not node_id or not isinstance(spec, dict):
            raise ConfigError(f"{at} must be an object with peer_bind, client_bind, data_dir")
        for key in ("peer_bind", "client_bind", "data_dir"):
            if key not in spec:
                raise ConfigError(f"{at}: missing required key '{key}'")
        data_dir = spec["data_dir"]
        if not isinstance(data_dir, str) or not data_dir:
            raise ConfigError(f"{at}.data_dir must be a non-empty path string")
        d = Path(data_dir)
        if not d.is_absolute():
            d = path.parent / d
        nodes[node_id] = NodeConfig(
            id=node_id,
            peer_bind=_addr(spec["peer_bind"], f"{at}.peer_bind"),
            client_bind=_addr(spec["client_bind"], f"{at}.client_bind"),
            data_dir=d,
        )
    return nodes


def _parse_routes(raw: Any, nodes: dict[str, NodeConfig], where: str) -> dict[str, dict[str, str]]:
    if raw is None:
        raise ConfigError(f"{where}: missing required key 'routes'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'routes' must be an object of source -> {{dest: address}}")
    routes: dict[str, dict[str, str]] = {}
    for src in nodes:
        table = raw.get(src)
        if len(nodes) > 1 and not isinstance(table, dict):
            raise ConfigError(f"{where}: routes.{src} is missing (it needs an address per peer)")
        routes[src] = {}
        for dest in nodes:
            if dest == src:
                continue
            if dest not in table:
                raise ConfigError(f"{where}: routes.{src} has no address for {dest}")
            routes[src][dest] = _addr(table[dest], f"{where}: routes.{src}.{dest}")
    return routes


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} must be a positive integer (milliseconds)")
    return value


def _parse_timing(raw: Any, where: str) -> Timing:
    default = Timing()
    if raw is None:
        return default
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'timing' must be an object")
    heartbeat = _positive_int(raw.get("heartbeat_ms", default.heartbeat_ms), f"{where}: timing.heartbeat_ms")
    tick = _positive_int(raw.get("tick_ms", default.tick_ms), f"{where}: timing.tick_ms")
    election = raw.get("election_timeout_ms", list(default.election_timeout_ms))
    if not isinstance(election, (list, tuple)) or len(election) != 2:
        raise ConfigError(f"{where}: timing.election_timeout_ms must be [low, high] in milliseconds")
    low = _positive_int(election[0], f"{where}: timing.election_timeout_ms[0]")
    high = _positive_int(election[1], f"{where}: timing.election_timeout_ms[1]")
    if low > high:
        raise ConfigError(f"{where}: timing.election_timeout_ms low {low} is above high {high}")
    if heartbeat >= low:
        # A leader must be heard several times per election timeout, or followers
        # would time out under a perfectly healthy leader.
        raise ConfigError(
            f"{where}: timing.heartbeat_ms {heartbeat} must be below election_timeout_ms low {low}"
        )
    return Timing(heartbeat_ms=heartbeat, election_timeout_ms=(low, high), tick_ms=tick)


def _parse_options(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'options' must be an object")
    try:
        CoreOptions.parse(raw)  # the one validation and the one set of defaults
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    options = dict(raw)
    options["bugs"] = tuple(raw.get("bugs") or ())
    return options


def _parse_proxy(raw: Any, where: str) -> ProxyConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'proxy' must be an object")
    control = raw.get("control")
    if control is not None:
        control = _addr(control, f"{where}: proxy.control")
    listen = raw.get("listen") or {}
    if not isinstance(listen, dict):
        raise ConfigError(f"{where}: proxy.listen must be an object of node id -> address")
    t0 = raw.get("t0_ns")
    if t0 is not None and (isinstance(t0, bool) or not isinstance(t0, int)):
        raise ConfigError(f"{where}: proxy.t0_ns must be an integer (CLOCK_MONOTONIC ns of the run's start)")
    return ProxyConfig(
        control=control,
        listen={k: _addr(v, f"{where}: proxy.listen.{k}") for k, v in listen.items()},
        t0_ns=t0,
    )
