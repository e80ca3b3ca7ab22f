"""Soak: 10,000 tasks over three nodes while a worker, and then a whole node agent, are killed.

Every result must come back, right, and nothing may be left running afterwards. Bounded in
time: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import ember
from ember.runtime import launcher
from ember.runtime.core import context
from tests.conftest import wait_until_gone

N = 10_000


@ember.remote
def square(x: int) -> tuple[int, int, str]:
    time.sleep(0.0005)
    return x * x, os.getpid(), ember.get_runtime_context().get_node_id()


@pytest.mark.timeout(180)
def test_ten_thousand_tasks_survive_a_killed_worker_and_a_killed_node() -> None:
    ctx = ember.init(num_cpus=2)
    extra = []
    try:
        head_address = context.require_core().head_address
        extra = [launcher.start_agent(ctx.session_dir, head_address, num_cpus=2) for _ in range(2)]
        deadline = time.monotonic() + 15
        while len([n for n in ember.nodes() if n["Alive"]]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = extra[0]
        victim_port = int(victim.agent_address.rsplit(":", 1)[1])
        victim_node = next(n["NodeID"] for n in ember.nodes() if n["NodeManagerPort"] == victim_port)

        refs = [square.options(scheduling_strategy="SPREAD").remote(i) for i in range(N)]
        killed_worker = killed_node = False
        pending = refs
        ran_on_victim = 0
        while pending:
            done, pending = ember.wait(pending, num_returns=min(len(pending), 200), timeout=60)
            assert done, "no progress in 60 s"
            results = ember.get(done)
            ran_on_victim += sum(1 for _, _, node in results if node == victim_node)
            finished = N - len(pending)
            if not killed_worker and finished >= 1500:
                # A worker of a node that survives, so that the node kill below is separate.
                pid = next(p for _, p, node in results if node != victim_node)
                os.kill(pid, signal.SIGKILL)
                killed_worker = True
            elif killed_worker and not killed_node and finished >= 4000 and ran_on_victim:
                os.kill(victim.pids[0], signal.SIGKILL)
                killed_node = True
        assert killed_worker and killed_node

        values = [value for value, _, _ in ember.get(refs)]
        assert values == [i * i for i in range(N)]
        assert not next(n for n in ember.nodes() if n["NodeID"] == victim_node)["Alive"]
    finally:
        ember.shutdown()
        for agent in extra:
            agent.stop()
    assert wait_until_gone(ctx.session_dir) == []
