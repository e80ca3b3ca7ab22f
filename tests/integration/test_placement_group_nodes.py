"""Placement groups when nodes go: a node that dies takes its bundles along and the group is
placed again once a node can hold them; a node being drained gives its bundles up at once, and
the actors in them follow their bundle. Real agents on loopback, killed or drained mid-job."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

import ember
from ember.runtime import launcher
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util import placement_group, placement_group_table, remove_placement_group
from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.conftest import wait_until_gone

NODE_TIMEOUT = 3.0


class Agents:
    def __init__(self, session_dir: str, head_address: str) -> None:
        self.session_dir = session_dir
        self.head_address = head_address
        self.started: list[launcher.LocalProcesses] = []

    def add(self, name: str) -> launcher.LocalProcesses:
        agent = launcher.start_agent(
            self.session_dir, self.head_address, num_cpus=1, labels={"name": name}
        )
        self.started.append(agent)
        return agent


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _node_named(name: str) -> str:
    view = ember.connection.head_call("GetClusterView", pb.Empty())
    return next(n.info.node_id.hex() for n in view.nodes if n.alive and n.info.labels.get("name") == name)


def _alive_count() -> int:
    return len([n for n in ember.nodes() if n["Alive"]])


@pytest.fixture(scope="module")
def agents() -> Iterator[Agents]:
    os.environ["EMBER_NODE_TIMEOUT_S"] = str(NODE_TIMEOUT)
    try:
        ctx = ember.init(num_cpus=1)
    finally:
        del os.environ["EMBER_NODE_TIMEOUT_S"]
    extra = Agents(ctx.session_dir, context.require_core().head_address)
    try:
        yield extra
    finally:
        ember.shutdown()
        for agent in extra.started:
            agent.stop()
    assert wait_until_gone(ctx.session_dir) == []


@ember.remote(num_cpus=1)
class Member:
    def node(self) -> str:
        return ember.get_runtime_context().get_node_id()


def _bundle_nodes(pg) -> list[str]:
    return list(placement_group_table(pg)["bundles_to_node_id"].values())


def test_a_dead_nodes_bundles_are_placed_again_and_their_actors_follow(agents: Agents) -> None:
    x, y = agents.add("x"), agents.add("y")
    _wait_for(lambda: _alive_count() == 3, "three live nodes")
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    try:
        ember.get(pg.ready(), timeout=30)
        victim = _node_named("x")
        index = _bundle_nodes(pg).index(victim)
        actor = Member.options(
            max_restarts=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, index)
        ).remote()
        assert ember.get(actor.node.remote(), timeout=30) == victim
        os.kill(x.pids[0], signal.SIGKILL)
        # Two nodes are left and hold a bundle each: the lost bundle waits for a third.
        _wait_for(lambda: placement_group_table(pg)["state"] == "RESCHEDULING", "the group to be rescheduled")
        entry = placement_group_table(pg)
        assert entry["bundles_to_node_id"][index] == ""
        assert victim not in entry["bundles_to_node_id"].values()
        assert not pg.wait(0.5)
        agents.add("z")
        assert pg.wait(30)
        newcomer = _node_named("z")
        assert _bundle_nodes(pg)[index] == newcomer
        assert len(set(_bundle_nodes(pg))) == 3
        # The actor was restarted in its bundle, where the bundle is now.
        assert ember.get(actor.node.remote(), timeout=30) == newcomer
    finally:
        remove_placement_group(pg)
        y.stop()
    _wait_for(lambda: _alive_count() == 2, "y to leave")


def test_a_drained_nodes_bundles_move_and_its_actors_follow(agents: Agents) -> None:
    agents.add("p"), agents.add("q")
    _wait_for(lambda: {"p", "q"} <= _names(), "p and q to join")
    pg = placement_group([{"CPU": 1}], strategy="PACK", bundle_label_selector=[{"name": "in(p, q)"}])
    try:
        ember.get(pg.ready(), timeout=30)
        (first,) = _bundle_nodes(pg)
        actor = Member.options(max_restarts=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
        assert ember.get(actor.node.remote(), timeout=30) == first
        reply = ember.connection.head_call(
            "DrainNode", pb.DrainRequest(node_id=bytes.fromhex(first), reason="test: move the bundle")
        )
        assert reply.accepted
        _wait_for(lambda: _bundle_nodes(pg)[0] not in ("", first), "the bundle to move")
        (second,) = _bundle_nodes(pg)
        assert {_node_named("p"), _node_named("q")} == {first, second}
        assert placement_group_table(pg)["state"] == "CREATED"
        # Moved off the draining node, the actor restarts in its bundle's new place.
        _wait_for(lambda: _safe_node(actor) == second, "the actor to follow its bundle")
    finally:
        remove_placement_group(pg)


def _names() -> set[str]:
    view = ember.connection.head_call("GetClusterView", pb.Empty())
    return {n.info.labels.get("name", "") for n in view.nodes if n.alive and n.drain_state == pb.NOT_DRAINING}


def _safe_node(actor) -> str:
    try:
        return ember.get(actor.node.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - restarting: ask again
        return ""
