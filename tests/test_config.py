"""cluster.json parsing: defaults, unknown keys, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodes.common.config import ConfigError, load_cluster
from nodes.common.core_api import Timing


def minimal(n: int = 3) -> dict:
    ids = [f"n{i}" for i in range(1, n + 1)]
    return {
        "nodes": {i: {"peer_bind": f"tcp://127.0.0.1:{41000 + k}",
                      "client_bind": f"tcp://127.0.0.1:{42000 + k}",
                      "data_dir": f"data/{i}"} for k, i in enumerate(ids)},
        "routes": {s: {d: f"tcp://127.0.0.1:{41000 + ids.index(d)}" for d in ids if d != s}
                   for s in ids},
    }


def write(tmp_path: Path, obj: object) -> Path:
    p = tmp_path / "cluster.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    c = load_cluster(write(tmp_path, minimal()))
    assert c.node_ids == ("n1", "n2", "n3")
    assert c.peers_of("n2") == ("n1", "n3")
    assert c.timing == Timing()
    assert c.options == {"read_mode": "log", "bugs": ()}
    assert c.proxy is None
    assert c.nodes["n1"].data_dir == tmp_path / "data" / "n1"  # relative to the file


def test_partial_sections_and_unknown_keys(tmp_path: Path) -> None:
    raw = minimal()
    raw["timing"] = {"heartbeat_ms": 20, "future_knob": 1}
    raw["options"] = {"bugs": ["stale-read"], "extra": {"x": 1}}
    raw["proxy"] = {"control": "tcp://127.0.0.1:5000",
                    "listen": {"n1": "tcp://127.0.0.1:5001"}}
    raw["something_new"] = [1, 2]
    raw["nodes"]["n1"]["weight"] = 3
    c = load_cluster(write(tmp_path, raw))
    assert c.timing == Timing(heartbeat_ms=20, election_timeout_ms=(300, 600), tick_ms=10)
    assert c.options["bugs"] == ("stale-read",) and c.options["read_mode"] == "log"
    assert c.options["extra"] == {"x": 1}
    assert c.proxy.listen == {"n1": "tcp://127.0.0.1:5001"}


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda r: r.pop("nodes"), "missing required key 'nodes'"),
        (lambda r: r.pop("routes"), "missing required key 'routes'"),
        (lambda r: r["nodes"]["n2"].pop("client_bind"), "nodes.n2: missing required key 'client_bind'"),
        (lambda r: r["routes"]["n1"].pop("n3"), "routes.n1 has no address for n3"),
        (lambda r: r["nodes"]["n1"].update(peer_bind=41000), "nodes.n1.peer_bind must be"),
        (lambda r: r.update(timing={"election_timeout_ms": [600, 300]}), "is above high"),
        (lambda r: r.update(timing={"heartbeat_ms": 0}), "timing.heartbeat_ms must be"),
        (lambda r: r.update(timing={"heartbeat_ms": 400}), "must be below"),
        (lambda r: r.update(options={"bugs": "stale-read"}), "options.bugs must be a list"),
        (lambda r: r.update(options={"read_mode": "lease"}), "options.read_mode must be one of"),
        (lambda r: r.update(nodes=[]), "'nodes' must be a non-empty object"),
    ],
)
def test_invalid_files_give_one_line(tmp_path: Path, mutate, needle: str) -> None:
    raw = minimal()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        load_cluster(write(tmp_path, raw))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and str(tmp_path / "cluster.json") in msg


@pytest.mark.parametrize("text", ["", "{nope", "[1, 2]", "\x00\x01garbage"])
def test_garbage_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_cluster(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read cluster file"):
        load_cluster(tmp_path / "absent.json")
