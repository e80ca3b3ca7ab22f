"""``pg.ready()`` of many groups at once (``core/placement_group_calls``): the ready() calls made
together wait in one call to the head, not one each; each ref gets its own group's outcome
(created, removed, fits no node, unknown), those still pending are asked for again, and a head
that cannot be reached fails them by name. Driven against a head the test answers for."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from ember.runtime.core import placement_group_calls
from ember.runtime.core.memory_store import StoredValue
from ember.runtime.core.placement_group_calls import PlacementGroupCalls
from ember.runtime.objects import serialization
from ember.runtime.objects.exceptions import PlacementGroupError
from ember.runtime.wire.event_loop import IoThread
from ember.runtime.wire.protocol import ember_pb2 as pb


class Head:
    """Answers WaitPlacementGroups from ``answers`` (one per call; the last repeats)."""

    def __init__(self, answers: list[Callable[[list[bytes]], pb.PlacementGroupsSettled]]) -> None:
        self.answers = answers
        self.calls: list[list[bytes]] = []

    async def WaitPlacementGroups(self, request: pb.PlacementGroupsWait, timeout: float) -> pb.PlacementGroupsSettled:
        ids = list(request.placement_group_ids)
        self.calls.append(ids)
        answer = self.answers[min(len(self.calls) - 1, len(self.answers) - 1)]
        return answer(ids)


class Channels:
    def __init__(self, head: Head) -> None:
        self._head = head

    def head(self, address: str) -> Head:
        return self._head


class Refs:
    """What the owner's promise() gives: a ref (here, its number) and how to fulfil it."""

    def __init__(self) -> None:
        self.values: dict[int, StoredValue] = {}
        self.done = threading.Condition()
        self._next = 0

    def promise(self) -> tuple[Any, Callable[[StoredValue], None]]:
        self._next += 1
        number = self._next

        def fulfil(value: StoredValue) -> None:
            with self.done:
                self.values[number] = value
                self.done.notify_all()

        return number, fulfil

    def wait(self, count: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.values) >= count, timeout=30), "refs not fulfilled"


def _calls(head: Head) -> tuple[PlacementGroupCalls, Refs, IoThread]:
    io = IoThread("test-io")
    refs = Refs()
    calls = PlacementGroupCalls(io, Channels(head), "127.0.0.1:1", refs.promise)  # type: ignore[arg-type]
    return calls, refs, io


def _created(ids: list[bytes]) -> pb.PlacementGroupsSettled:
    return pb.PlacementGroupsSettled(groups=[
        pb.PlacementGroupSettled(placement_group_id=i, state=pb.PG_CREATED) for i in ids
    ])


def _error(value: StoredValue) -> str:
    assert value.kind == pb.ERROR
    error = serialization.loads(value.data)
    assert isinstance(error, PlacementGroupError)
    return str(error)


def test_many_ready_calls_made_together_wait_in_one_call() -> None:
    head = Head([_created])
    calls, refs, io = _calls(head)
    try:
        ids = [bytes([i]) * 16 for i in range(50)]

        async def together() -> list[Any]:
            return [calls.ready(i, b"group %d" % n) for n, i in enumerate(ids)]

        numbers = io.run(together())
        refs.wait(50)
        assert [refs.values[n].data for n in numbers] == [b"group %d" % n for n in range(50)]
        assert head.calls == [ids]
        # From the user's thread, however the calls fall into the loop's turns, each ref gets
        # its group (twice for one group: both refs).
        more = [calls.ready(i, b"again %d" % n) for n, i in enumerate(ids)] + [calls.ready(ids[0], b"twice")]
        refs.wait(101)
        assert [refs.values[n].data for n in more] == [b"again %d" % n for n in range(50)] + [b"twice"]
    finally:
        io.stop()


def test_each_ref_gets_its_own_groups_outcome_and_the_pending_are_asked_again() -> None:
    created, removed, infeasible, unknown, later = (bytes([i]) * 16 for i in range(1, 6))

    def first(ids: list[bytes]) -> pb.PlacementGroupsSettled:
        return pb.PlacementGroupsSettled(groups=[
            pb.PlacementGroupSettled(placement_group_id=created, state=pb.PG_CREATED),
            pb.PlacementGroupSettled(
                placement_group_id=removed, name="gone", state=pb.PG_REMOVED, why="remove_placement_group() was called",
            ),
            pb.PlacementGroupSettled(
                placement_group_id=infeasible, state=pb.PG_PENDING, infeasible=True, why="bundle 0 needs {CPU: 64}",
            ),
        ], unknown=[unknown])

    head = Head([first, lambda ids: _created([later])])
    calls, refs, io = _calls(head)
    try:

        async def together() -> list[Any]:
            # One turn of the I/O loop: the five go in one call.
            return [calls.ready(i, b"v") for i in (created, removed, infeasible, unknown, later)]

        numbers = io.run(together())
        refs.wait(5)
        values = [refs.values[n] for n in numbers]
        assert values[0].data == b"v" and values[0].kind == pb.VALUE
        assert "placement group 'gone'" in _error(values[1]) and "was removed before it was ready" in _error(values[1])
        assert "cannot be placed: bundle 0 needs {CPU: 64}" in _error(values[2])
        assert f"no placement group with id {unknown.hex()}" in _error(values[3])
        assert values[4].data == b"v" and values[4].kind == pb.VALUE
        assert head.calls == [[created, removed, infeasible, unknown, later], [later]]
    finally:
        io.stop()


def test_a_head_that_cannot_be_reached_fails_the_refs_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement_group_calls, "HEAD_AWAY_LIMIT", 3)
    monkeypatch.setattr(placement_group_calls, "HEAD_AWAY_RETRY", 0.0)

    def away(ids: list[bytes]) -> pb.PlacementGroupsSettled:
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")

    head = Head([away])
    calls, refs, io = _calls(head)
    try:
        number = calls.ready(b"g" * 16, b"v")
        refs.wait(1)
        assert "the head at 127.0.0.1:1 cannot be reached (UNAVAILABLE)" in _error(refs.values[number])
        assert len(head.calls) == 3
    finally:
        io.stop()


def test_the_head_waits_until_one_of_the_groups_settles(tmp_path: Any) -> None:
    from tests.unit.test_bundle_calls import Setup

    async def scenario() -> None:
        setup = Setup(tmp_path, ["a"])
        group_id = setup.create("PACK", {"CPU": 1})
        unknown = b"u" * 16
        settled = await setup.groups.wait_any([group_id], 10.0)
        assert [g.placement_group_id for g in settled.groups] == [group_id]
        assert settled.groups[0].state == pb.PG_CREATED
        assert list((await setup.groups.wait_any([group_id, unknown], 0.0)).unknown) == [unknown]
        # One that cannot fit now waits; its removal settles it, with the reason.
        waiting = setup.create("PACK", {"CPU": 8})
        assert not (await setup.groups.wait_any([waiting], 0.05)).groups
        later = asyncio.ensure_future(setup.groups.wait_any([waiting], 10.0))
        await asyncio.sleep(0.01)
        setup.groups.remove(waiting, "the test removed it")
        [removed] = (await later).groups
        assert removed.state == pb.PG_REMOVED and removed.why == "the test removed it"
        await setup.groups.close()

    asyncio.run(scenario())
