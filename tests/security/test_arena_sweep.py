"""Shared memory a killed node agent left behind is given back at the next start."""

from __future__ import annotations

import os
import signal
import time

import ember
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import wait_until_gone
from tests.security.conftest import alive, cluster_pids


def _arena() -> str:
    core = context.require_core()

    async def ask() -> pb.StoreInfo:
        return await core.channels.node_agent(core.local_agent).GetStoreInfo(pb.Empty())

    return str(core.io.run(ask()).arena)


def test_the_arena_of_a_killed_node_agent_is_swept_at_the_next_start() -> None:
    """Before: a SIGKILLed agent's arena stayed in /dev/shm until reboot."""
    ctx = ember.init(num_cpus=1, object_store_memory=64 << 20)
    try:
        arena_dir = os.path.dirname(_arena())
        _, agent = cluster_pids()
        os.kill(agent, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(agent) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []
    assert os.path.isdir(arena_dir)  # left behind: nothing deleted it
    again = ember.init(num_cpus=1, object_store_memory=64 << 20)
    try:
        assert not os.path.exists(arena_dir), f"{arena_dir} outlived its node agent"
        assert os.path.isdir(os.path.dirname(_arena()))
    finally:
        ember.shutdown()
    assert wait_until_gone(again.session_dir) == []
