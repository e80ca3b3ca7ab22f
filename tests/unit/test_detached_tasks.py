"""``event_loop.detach``: a task nobody awaits lives until it ends, and its error is said."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref

import pytest

from ember.runtime.wire import event_loop


async def _waits_forever(started: asyncio.Event) -> None:
    started.set()
    # Only this coroutine's frame holds the future, and only the future holds the task: a
    # cycle the collector frees when nothing else keeps the task.
    await asyncio.get_running_loop().create_future()


def test_a_bare_task_on_a_private_future_is_collected() -> None:
    """The hazard itself, shown: without a reference, the loop loses the task."""

    async def main() -> bool:
        started = asyncio.Event()
        task = asyncio.ensure_future(_waits_forever(started))
        await started.wait()
        alive = weakref.ref(task)
        del task
        gc.collect()
        return alive() is not None

    assert asyncio.run(main()) is False


def test_a_detached_task_survives_collection_until_it_ends() -> None:
    async def main() -> tuple[bool, bool]:
        started = asyncio.Event()
        task = event_loop.detach(_waits_forever(started), "waiting in a test")
        await started.wait()
        alive = weakref.ref(task)
        del task
        gc.collect()
        survivor = alive()
        kept = survivor is not None and not survivor.done()
        assert survivor is not None
        survivor.cancel()
        await asyncio.wait([survivor])
        await asyncio.sleep(0)  # its done callbacks run on the next turn
        return kept, survivor in event_loop._detached

    kept, still_held = asyncio.run(main())
    assert kept
    assert not still_held  # let go once it ended


def test_a_detached_task_that_fails_is_logged_with_what_it_did(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("the owner at 10.0.0.7:4000 is gone")

    async def main() -> None:
        event_loop.detach(fails(), "telling a borrower of an update")
        for _ in range(3):
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="ember.runtime.wire.event_loop"):
        asyncio.run(main())
    assert "telling a borrower of an update failed: the owner at 10.0.0.7:4000 is gone" in caplog.text
    assert not event_loop._detached
