"""What recording call sites costs (``EMBER_RECORD_CALL_SITES``, for ``ember memory``): task
throughput and small puts with it off and on, in one run.

    python bench/call_sites.py              # three pairs, off then on, each a fresh cluster
    python bench/call_sites.py --pairs 5

Each measurement is ``run.py``'s core suite (``tasks_sync``, ``tasks_async``, ``put_get_small``)
in a child process of its own, with the variable unset or set to 1; the two alternate so that
whatever else the machine does weighs on both. Compare the columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = ("tasks_sync", "tasks_async", "put_get_small")
VARIABLE = "EMBER_RECORD_CALL_SITES"


def measure(record: bool) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if key != VARIABLE}
    if record:
        env[VARIABLE] = "1"
    out = subprocess.run(
        [sys.executable, str(HERE / "run.py"), "--child", "suite", "ember", "core", ",".join(WORKLOADS)],
        capture_output=True, text=True, timeout=900, cwd=str(HERE), env=env,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child (record={record}) failed:\n{out.stderr[-3000:]}")
    return {name: value for name, (value, _unit) in json.loads(lines[-1]).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="off/on pairs to run")
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for pair in range(args.pairs):
        for record in (False, True):
            print(f"pair {pair + 1}: call sites {'on' if record else 'off'} ...", flush=True)
            runs[record].append(measure(record))
    print()
    print(f"{'workload':<16} {'off (each run)':<34} {'on (each run)':<34} on/off (medians)")
    for name in WORKLOADS:
        off = [run[name] for run in runs[False]]
        on = [run[name] for run in runs[True]]
        ratio = statistics.median(on) / statistics.median(off)
        print(
            f"{name:<16} {' / '.join(f'{v:,.0f}' for v in off):<34} "
            f"{' / '.join(f'{v:,.0f}' for v in on):<34} {ratio:.3f}"
        )
    print("\nrates per second (higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
