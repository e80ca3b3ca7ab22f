"""Where a placement group's bundles go (``head/bundle_placement``): each strategy, groups that
fit only whole, rescheduling beside bundles already placed, and why a group can never fit."""

from __future__ import annotations

from ember.runtime.head.bundle_placement import Bundle, Candidate, NodeType, choose, infeasible
from ember.runtime.wire import resources


def _node(name: str, free: dict[str, float], total: dict[str, float] | None = None, **labels: str) -> Candidate:
    return Candidate(
        name.encode(), resources.to_fixed(free), resources.to_fixed(total or free), labels
    )


def _bundles(*shapes: dict[str, float], selectors: list[dict[str, str]] | None = None) -> list[Bundle]:
    return [
        Bundle(i, resources.to_fixed(shape), (selectors or [{}] * len(shapes))[i])
        for i, shape in enumerate(shapes)
    ]


def _names(chosen: dict[int, bytes] | None) -> dict[int, str] | None:
    return None if chosen is None else {i: n.decode() for i, n in chosen.items()}


NODES = [_node("x", {"CPU": 4}), _node("y", {"CPU": 2}), _node("z", {"CPU": 1})]


def test_strict_pack_puts_every_bundle_on_one_node_or_none() -> None:
    assert _names(choose(_bundles({"CPU": 1}, {"CPU": 1}), "STRICT_PACK", NODES)) == {0: "y", 1: "y"}
    assert _names(choose(_bundles({"CPU": 2}, {"CPU": 2}), "STRICT_PACK", NODES)) == {0: "x", 1: "x"}
    assert choose(_bundles({"CPU": 3}, {"CPU": 2}), "STRICT_PACK", NODES) is None


def test_pack_keeps_bundles_together_when_it_can_and_splits_when_it_must() -> None:
    assert _names(choose(_bundles({"CPU": 1}, {"CPU": 1}), "PACK", NODES)) == {0: "y", 1: "y"}
    split = _names(choose(_bundles({"CPU": 4}, {"CPU": 2}), "PACK", NODES))
    assert split == {0: "x", 1: "y"}
    assert choose(_bundles({"CPU": 4}, {"CPU": 4}), "PACK", NODES) is None


def test_spread_uses_distinct_nodes_first_then_doubles_up() -> None:
    chosen = _names(choose(_bundles({"CPU": 1}, {"CPU": 1}, {"CPU": 1}), "SPREAD", NODES))
    assert chosen is not None and set(chosen.values()) == {"x", "y", "z"}
    four = _names(choose(_bundles(*[{"CPU": 1}] * 4), "SPREAD", NODES))
    assert four is not None and sorted(four.values()).count("x") == 2


def test_strict_spread_finds_a_matching_where_greedy_would_not() -> None:
    # Bundle 0 fits x or y; bundle 1 fits only x (GPU). Taking x for bundle 0 first would leave
    # bundle 1 nowhere; a matching gives bundle 0 y.
    nodes = [_node("x", {"CPU": 4, "GPU": 1}), _node("y", {"CPU": 1})]
    chosen = _names(choose(_bundles({"CPU": 1}, {"CPU": 1, "GPU": 1}), "STRICT_SPREAD", nodes))
    assert chosen == {0: "y", 1: "x"}
    assert choose(_bundles(*[{"CPU": 1}] * 4), "STRICT_SPREAD", NODES) is None


def test_rescheduled_bundles_go_beside_or_away_from_those_placed() -> None:
    # STRICT_SPREAD: bundle 1 is lost; bundle 0 stays on x, so bundle 1 must not go there.
    chosen = _names(choose([Bundle(1, resources.to_fixed({"CPU": 1}))], "STRICT_SPREAD", NODES, {0: b"x"}))
    assert chosen is not None and chosen[1] != "x"
    # STRICT_PACK: what is left goes to the node the rest is on, or nowhere.
    assert _names(choose([Bundle(1, resources.to_fixed({"CPU": 1}))], "STRICT_PACK", NODES, {0: b"z"})) == {1: "z"}
    assert choose([Bundle(1, resources.to_fixed({"CPU": 2}))], "STRICT_PACK", NODES, {0: b"z"}) is None


def test_label_selectors_restrict_each_bundle() -> None:
    nodes = [_node("x", {"CPU": 2}, zone="a"), _node("y", {"CPU": 2}, zone="b")]
    chosen = _names(choose(
        _bundles({"CPU": 1}, {"CPU": 1}, selectors=[{"zone": "b"}, {"zone": "b"}]), "PACK", nodes
    ))
    assert chosen == {0: "y", 1: "y"}
    assert choose(_bundles({"CPU": 1}, selectors=[{"zone": "c"}]), "PACK", nodes) is None


def test_why_a_group_can_never_fit_names_the_bundle_or_the_strategy() -> None:
    totals = [_node("x", {"CPU": 4}), _node("y", {"CPU": 2})]
    too_big = infeasible(_bundles({"CPU": 1}, {"CPU": 8}), "PACK", totals, [])
    assert too_big.startswith("bundle 1 needs {CPU: 8}, but no node can ever hold it (largest node: {CPU: 4})")
    spread = infeasible(_bundles(*[{"CPU": 1}] * 3), "STRICT_SPREAD", totals, [])
    assert "STRICT_SPREAD puts each bundle on a node of its own" in spread
    assert "STRICT_PACK" in infeasible(_bundles({"CPU": 3}, {"CPU": 2}), "STRICT_PACK", totals, [])
    # Busy is not infeasible: nodes that could hold it when idle will do.
    assert infeasible(_bundles({"CPU": 4}), "PACK", totals, []) == ""


def test_nodes_an_autoscaler_may_add_make_a_group_feasible() -> None:
    totals = [_node("x", {"CPU": 1})]
    types = [NodeType(resources.to_fixed({"CPU": 2}), {"ember.dev/group": "small"})]
    assert infeasible(_bundles(*[{"CPU": 2}] * 3), "STRICT_SPREAD", totals, types) == ""
    assert infeasible(_bundles({"CPU": 2}, {"CPU": 2}), "STRICT_PACK", totals, types) != ""
    assert infeasible(_bundles({"CPU": 8}), "PACK", totals, None) == ""  # autoscaler not heard yet
    # A bundle's label selector must allow the labels a new node starts with.
    assert infeasible(_bundles({"CPU": 2}, selectors=[{"zone": "a"}]), "PACK", totals, types) != ""
    assert infeasible(_bundles({"CPU": 2}, selectors=[{"ember.dev/group": "small"}]), "PACK", totals, types) == ""
