"""Partition shapes are pure, seeded, and cut what their names say."""

from __future__ import annotations

import random

import pytest

from faults.partition import SHAPES, components_seen, make


def ids(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


def edges(grudge: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(dest, src) pairs that are cut."""
    return {(d, s) for d, srcs in grudge.items() for s in srcs}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [3, 5, 7])
@pytest.mark.parametrize("oneway", [False, True])
def test_same_seed_same_partition_and_well_formed(shape: str, n: int, oneway: bool) -> None:
    a = make(shape, ids(n), random.Random(42), oneway=oneway, leader="n2")
    b = make(shape, ids(n), random.Random(42), oneway=oneway, leader="n2")
    assert a == b
    for dest, srcs in a.grudge.items():
        assert dest in ids(n) and srcs <= set(ids(n)) and dest not in srcs and srcs
    sym = all((s, d) in edges(a.grudge) for d, s in edges(a.grudge))
    if oneway:
        one_dir = not any((s, d) in edges(a.grudge) for d, s in edges(a.grudge))
        assert one_dir, "one-way cuts one direction"
    elif not (shape == "majorities-ring" and n == 3):  # 3 nodes: no symmetric ring exists
        assert sym, "a symmetric partition cuts both directions"


def test_one_isolates_exactly_one_node() -> None:
    p = make("one", ids(5), random.Random(3))
    (loner,) = [x for x, srcs in p.grudge.items() if len(srcs) == 4]
    seen = components_seen(p.grudge, ids(5))
    assert seen[loner] == {loner}
    assert all(seen[x] == set(ids(5)) - {loner} for x in ids(5) if x != loner)


def test_halves_is_a_minority_and_a_majority() -> None:
    p = make("halves", ids(5), random.Random(9))
    sizes = sorted({frozenset(v) for v in components_seen(p.grudge, ids(5)).values()}, key=len)
    assert [len(s) for s in sizes] == [2, 3]


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_majorities_ring_every_node_sees_a_different_majority(n: int) -> None:
    p = make("majorities-ring", ids(n), random.Random(n))
    seen = components_seen(p.grudge, ids(n))
    assert all(len(v) > n // 2 for v in seen.values()), seen
    assert len({frozenset(v) for v in seen.values()}) == n, "no two nodes see the same majority"


def test_bridge_has_one_node_that_sees_everybody() -> None:
    p = make("bridge", ids(5), random.Random(1))
    seen = components_seen(p.grudge, ids(5))
    assert [x for x, v in seen.items() if len(v) == 5] and len(
        [x for x, v in seen.items() if len(v) == 5]
    ) == 1
    assert sorted(len(v) for v in seen.values()) == [3, 3, 3, 3, 5]


def test_leader_isolates_the_given_leader() -> None:
    p = make("leader", ids(5), random.Random(1), leader="n4")
    assert p.grudge["n4"] == {"n1", "n2", "n3", "n5"}
    assert p.value()["grudge"]["n1"] == ["n4"]


def test_oneway_halves_leaves_the_other_direction_open() -> None:
    p = make("halves", ids(5), random.Random(5), oneway=True)
    deaf = set(p.grudge)
    speakers = set().union(*p.grudge.values())
    assert deaf and speakers and not deaf & speakers


def test_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown partition shape"):
        make("triangle", ids(3), random.Random(0))
