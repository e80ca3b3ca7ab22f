"""`make demo`: run the seed workloads, each as the standalone program it is.

Every example starts its own local cluster with ``ray.init()`` (that is how the articles wrote
them), so each run also shows how quickly a cluster comes up and goes away.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = [
    ("sleep_tasks.py", "16 sleeping tasks vs concurrent.futures (seed 000)"),
    ("matrix_dag.py", "four-matrix multiply/add DAG (seed 000)"),
    ("map_reduce.py", "map, reduce and tree reduce over 100 numbers (seed 002)"),
    ("fibonacci.py", "Fibonacci tasks vs a local loop (seed 004)"),
    ("parameter_server.py", "a parameter-server actor, then a sharded one, fed by tasks (seed 002)"),
]


def main() -> int:
    failures = 0
    for name, title in EXAMPLES:
        print(f"\n=== {name}: {title}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, os.path.join(HERE, name)], cwd=HERE)
        took = time.perf_counter() - start
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"--- {name}: {status} in {took:.2f}s (including cluster start and stop)", flush=True)
        failures += result.returncode != 0
    print(
        "\nEach program started a local cluster with ray.init() and stopped it on exit."
        "\nTo keep one running: `ember start --head`, then ember.init(address='auto')."
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
