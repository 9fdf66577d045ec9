"""Loading and validating cluster.json (DESIGN.md, "cluster.json").

Owns the one place where the file a harness wrote becomes typed values. What
stays true after ``load_cluster`` returns:

- every node has a ``peer_bind``, a ``client_bind`` and a ``data_dir``
  (a relative ``data_dir`` is taken relative to the cluster file's folder);
- ``routes[src][dest]`` exists for every ordered pair of distinct nodes;
- ``timing`` is a valid ``core_api.Timing`` (defaults for what is missing);
- ``options`` is a dict with at least ``read_mode`` and ``bugs`` (a tuple
  of strings); other option keys pass through untouched for the cores.

``nodes`` and ``routes`` are required; ``proxy``, ``timing``, ``options`` and
any key inside them may be missing. Unknown keys are ignored so the harness
can grow the file without breaking older nodes. Any problem raises
``ConfigError`` whose message is one line naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.common.core_api import Timing

DEFAULT_OPTIONS: dict[str, Any] = {"read_mode": "log", "bugs": ()}
#: Both cores offer these: reads through the log, or read-index confirmed by a
#: heartbeat round. Checked here so a typo is a config error, not a core error.
READ_MODES = ("log", "index")


class ConfigError(Exception):
    """cluster.json is missing, unreadable or invalid; str() is one line."""


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


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate ``path``; raise ``ConfigError`` (one line) on any problem."""
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
    return parse_cluster(raw, p)


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
    options = dict(DEFAULT_OPTIONS)
    options.update(raw)
    if options["read_mode"] not in READ_MODES:
        raise ConfigError(
            f"{where}: options.read_mode must be one of {', '.join(READ_MODES)},"
            f" not {options['read_mode']!r}"
        )
    bugs = options["bugs"] if options["bugs"] is not None else ()
    if not isinstance(bugs, (list, tuple)) or not all(isinstance(b, str) for b in bugs):
        raise ConfigError(f"{where}: options.bugs must be a list of bug names (strings)")
    options["bugs"] = tuple(bugs)
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
    return ProxyConfig(
        control=control,
        listen={k: _addr(v, f"{where}: proxy.listen.{k}") for k, v in listen.items()},
    )
