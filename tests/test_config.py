"""cluster.json (nodes/common/clusterfile.py): writing, reading, defaults, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodes.common.clusterfile import ConfigError, load_cluster, rehost, write_cluster
from nodes.common.core_api import Timing
from nodes.common.options import DEFAULT_READ_MODE, CoreOptions


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
    assert c.options == {"bugs": ()}  # defaults live in CoreOptions, not in the file
    assert CoreOptions.parse(c.options).read_mode == DEFAULT_READ_MODE == "index"
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
    assert c.options["bugs"] == ("stale-read",) and "read_mode" not in c.options
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
        (lambda r: r.update(options={"snapshot_entries": -3}), "options.snapshot_entries must"),
        (lambda r: r.update(proxy={"control": "tcp://127.0.0.1:1", "t0_ns": "x"}), "proxy.t0_ns"),
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


@pytest.mark.parametrize("mode", ["log", "index"])
def test_written_read_mode_is_read_back(tmp_path: Path, mode: str) -> None:
    c = load_cluster(write_cluster(tmp_path, 3, options={"read_mode": mode}))
    assert CoreOptions.parse(c.options).read_mode == mode


def test_write_cluster_forces_no_read_mode(tmp_path: Path) -> None:
    doc = json.loads(write_cluster(tmp_path, 1).read_text())
    assert doc["options"] == {"bugs": []}


def test_write_cluster_refuses_a_bad_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="read_mode"):
        write_cluster(tmp_path, 1, options={"read_mode": "lease"})
    assert not (tmp_path / "cluster.json").exists()


def test_proxy_section_round_trips(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, 3, net="proxy")
    raw = json.loads(path.read_text())
    raw["proxy"]["t0_ns"] = 123
    path.write_text(json.dumps(raw))
    c = load_cluster(path)
    assert c.proxy is not None and c.proxy.t0_ns == 123
    assert set(c.proxy.listen) == {"n1", "n2", "n3"}
    assert c.routes["n1"]["n2"] == c.proxy.listen["n2"]


def test_rehost_moves_nodes_keeps_ports_and_routes_direct(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, 2, net="proxy")
    before = load_cluster(path)
    rehost(path, {"n1": "10.0.0.1", "n2": "10.0.0.2"}, ("netns", {"tag": "t"}))
    after = load_cluster(path)
    assert after.proxy is None
    assert after.nodes["n1"].peer_bind == (
        "tcp://10.0.0.1:" + before.nodes["n1"].peer_bind.rsplit(":", 1)[1])
    assert after.routes["n2"]["n1"] == after.nodes["n1"].peer_bind
    assert json.loads(path.read_text())["netns"] == {"tag": "t"}
    with pytest.raises(ConfigError, match="n2 has no host"):
        rehost(path, {"n1": "10.0.0.1"})


@pytest.mark.parametrize("system", ["raft", "paxos"])
@pytest.mark.parametrize("mode", ["log", "index"])
def test_both_cores_honour_the_read_mode_of_cluster_json(tmp_path: Path, system: str,
                                                         mode: str) -> None:
    """options.read_mode as written and read by the clusterfile reaches both
    cores: "log" reads take a log slot, "index" reads do not, and both read
    the written value."""
    from nodes.__main__ import load_protocol
    from nodes.sim import SimNet

    cluster = load_cluster(write_cluster(tmp_path, 3, options={"read_mode": mode}))
    spec = load_protocol(system)
    net = SimNet(spec.make_core, cluster.node_ids, seed=3, options=cluster.options,
                 contiguous_log=system == "raft")
    assert net.run_until(lambda: len(net.leaders()) == 1)
    leader = net.leaders()[0]
    w = net.propose(leader, {"op": "write", "key": "k", "value": 7})
    assert w is not None and net.run_until(lambda: w.reply is not None) and w.reply["ok"]
    before = net.status(leader)["log_len"]
    r = net.propose(leader, {"op": "read", "key": "k"})
    assert r is not None and net.run_until(lambda: r.reply is not None)
    assert r.reply == {"id": r.req["id"], "ok": True, "value": 7}
    grew = net.status(leader)["log_len"] - before
    assert (grew > 0) == (mode == "log"), (system, mode, grew)
