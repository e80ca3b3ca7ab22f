"""The dashboard's memory tab (``ember memory`` as a page): its JSON API during a workload, and
the page in headless Chromium, with a screenshot saved to test-output/."""

from __future__ import annotations

import os
import urllib.parse

import pytest

import ember
from ember.runtime.wire import auth
from tests.conftest import eventually
from tests.integration.test_dashboard import OUTPUT, _browse, _chromium, get


@ember.remote
class MemoryKeeper:
    def keep(self, refs):
        self.refs = refs
        return os.getpid()


@ember.remote
class MemoryGate:
    def __init__(self):
        import asyncio

        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()
        return 1

    async def open(self):
        self.event.set()


@ember.remote
def memory_consumer(value: int, payload: bytes) -> int:
    return len(payload)



def _objects(answer: tuple[int, object]) -> dict[str, dict]:
    _, report = answer
    return {o["object_id"]: o for g in report["groups"] for o in g["objects"]}  # type: ignore[index]


def test_the_memory_api_and_page_during_a_workload(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    borrowed = ember.put(b"k" * 400_000)
    borrowed_id = borrowed.hex()
    keeper = MemoryKeeper.remote()
    keeper_pid = ember.get(keeper.keep.remote([borrowed]))
    del borrowed
    argument = ember.put(b"a" * 300_000)
    gate = MemoryGate.remote()
    pending = memory_consumer.remote(gate.wait.remote(), argument)  # waits for the gate
    argument_id = argument.hex()
    del argument

    def shown(answer: tuple[int, object]) -> bool:
        objects = _objects(answer) if answer[0] == 200 else {}
        return (
            "BORROWED" in objects.get(borrowed_id, {}).get("reasons", [])
            and "USED_BY_PENDING_TASK" in objects.get(argument_id, {}).get("reasons", [])
        )

    answer = eventually(lambda: get(base + "/api/memory?group_by=owner"), shown)
    assert answer[0] == 200
    objects = _objects(answer)
    kept = objects[borrowed_id]
    assert kept["owner_pid"] == os.getpid() and kept["size"] >= 400_000
    assert any(f"pid {keeper_pid}" in b for h in kept["holders"] for b in h["borrowers"])
    report = answer[1]
    assert report["group_by"] == "owner"  # type: ignore[index]
    assert sum(g["total_size"] for g in report["groups"]) == report["total_size"]  # type: ignore[index]
    status, wrong = get(base + "/api/memory?group_by=colour")
    assert status == 400 and "group_by must be one of" in wrong["error"]  # type: ignore[index]
    assert get(base + "/api/memory", token=None)[0] == 401
    assert get(base + "/api/memory", token="wrong")[0] == 401
    assert objects[argument_id]["reasons"] == ["USED_BY_PENDING_TASK"]

    try:
        if _chromium() is None:
            pytest.skip("no Chromium here (Debian: apt-get install chromium): the page is not loaded in a browser")
        token = urllib.parse.quote(auth.token())
        page = _browse(f"{base}/#tab=memory&token={token}")
        assert borrowed_id in page and "<b>BORROWED</b> by worker pid" in page
        assert ">memory</a>" in page  # its tab
        OUTPUT.mkdir(exist_ok=True)
        shot = OUTPUT / "dashboard-memory.png"
        _browse(f"{base}/#tab=memory&token={token}", screenshot=shot)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        ember.get(gate.open.remote())
    assert ember.get(pending) == 300_000
