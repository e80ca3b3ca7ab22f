"""What a driver outside the cluster pays: everything through the head's client port (ember only).

    python bench/outside.py

One cluster: a head on 127.0.0.1 and a node agent on 127.0.0.2 (2 CPUs). Three drivers, each a
process of its own, run the same two measurements:

- ``on a node``: a driver on the node's host (the usual inside driver: the object store is
  shared memory it maps, so a ``get`` is a zero-copy view);
- ``off-node, direct``: a driver on no node that reaches the nodes itself (objects stream to it
  over gRPC from the node that holds them);
- ``outside, via head``: ``init(via_head=True)``, every byte through the head's relay.

The measurements: a synchronous task round trip (``get(f.remote())``, 500 times) and the ``get``
of a 100 MB array a task made. Ratios say how many times slower each is than the driver on a
node, and the outside one than the off-node one (the relay's own cost). Compare ratios within
one run; the machine's other load moves absolute figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from ember.runtime import launcher, session
from ember.runtime.wire import auth

ROUND_TRIPS = 500
MB = 1 << 20

DRIVER = textwrap.dedent(
    """
    import statistics, sys, time
    import numpy as np
    import ember

    via_head = sys.argv[2] == "1"
    ember.init(sys.argv[1], via_head=via_head, logging_level="WARNING")

    @ember.remote
    def noop():
        return None

    @ember.remote
    def make(n):
        return np.ones(n)

    ember.get(noop.remote())
    start = time.perf_counter()
    for _ in range({round_trips}):
        ember.get(noop.remote())
    round_trip = (time.perf_counter() - start) / {round_trips}

    gets = []
    for _ in range(3):
        ref = make.remote({nbytes} // 8)
        ember.wait([ref])
        start = time.perf_counter()
        value = ember.get(ref)
        gets.append(time.perf_counter() - start)
        assert value.nbytes == {nbytes}
        del value, ref
    print(round_trip, statistics.median(gets))
    ember.shutdown()
    """
)


def measure(head_address: str, via_head: bool, env: dict[str, str]) -> tuple[float, float]:
    """(seconds per synchronous round trip, seconds per 100 MB get), from a driver process on
    127.0.0.1: on a node when one runs on that host, else on none."""
    script = DRIVER.format(round_trips=ROUND_TRIPS, nbytes=100 * MB)
    done = subprocess.run(
        [sys.executable, "-c", script, f"ember://{head_address}", "1" if via_head else "0"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"driver failed:\n{done.stderr}")
    round_trip, get = done.stdout.split()
    return float(round_trip), float(get)


def main() -> None:
    auth.set_token(auth.generate())
    env = dict(os.environ, EMBER_TOKEN=auth.token())
    env.pop("EMBER_VIA_HEAD", None)
    session_dir = session.new_session_dir()
    processes = []
    try:
        head = launcher.start_head(session_dir, host="127.0.0.1")
        processes.append(head)
        # Two nodes: one on the drivers' host (127.0.0.1) for the driver on a node, one elsewhere.
        on_host = launcher.start_agent(session_dir, head.head_address, host="127.0.0.1", num_cpus=2)
        processes.append(on_host)
        time.sleep(1.0)
        rows = {
            "on a node": measure(head.head_address, False, env),
        }
        on_host.stop()
        processes.remove(on_host)
        processes.append(
            launcher.start_agent(session_dir, head.head_address, host="127.0.0.2", num_cpus=2)
        )
        time.sleep(2.0)
        rows["off-node, direct"] = measure(head.head_address, False, env)
        rows["outside, via head"] = measure(head.head_address, True, env)
    finally:
        for process in reversed(processes):
            process.stop()
    base_rt, base_get = rows["on a node"]
    direct_rt, direct_get = rows["off-node, direct"]
    print(f"{'driver':<20} {'sync round trip':>16} {'x on-node':>10} {'100 MB get':>12} {'x on-node':>10}")
    for name, (rt, get) in rows.items():
        print(f"{name:<20} {rt * 1e3:>13.3f} ms {rt / base_rt:>9.1f}x {get * 1e3:>9.1f} ms {get / base_get:>9.1f}x")
    out_rt, out_get = rows["outside, via head"]
    print(
        f"the relay's own cost (outside / off-node direct): round trip "
        f"{out_rt / direct_rt:.1f}x, 100 MB get {out_get / direct_get:.1f}x "
        f"({100 / out_get:.0f} MB/s vs {100 / direct_get:.0f} MB/s)"
    )


if __name__ == "__main__":
    main()
