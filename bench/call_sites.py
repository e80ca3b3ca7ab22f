"""What recording call sites costs (``EMBER_RECORD_CALL_SITES``, for ``ember memory``): task
throughput and small puts with it off and on, in one run.

    python bench/call_sites.py              # three pairs, off then on, each a fresh cluster
    python bench/call_sites.py --pairs 5
    python bench/call_sites.py --per-call   # microseconds a put / a submission costs, one cluster

Each measurement is ``run.py``'s core suite (``tasks_sync``, ``tasks_async``, ``put_get_small``)
in a child process of its own, with the variable unset or set to 1; the two alternate so that
whatever else the machine does weighs on both, and which goes first alternates too. Compare the
columns of one run, not runs. ``--per-call`` instead times ``put`` and ``.remote()`` in one
driver, switching its recording off and on between blocks (the owner's ``record_call_sites``),
which isolates the cost of one call from the noise of separate clusters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
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


def per_call(blocks: int = 6) -> None:
    import ember
    from ember.runtime.core import context

    ember.init(num_cpus=2)
    core = context.require_core()
    noop = ember.remote(lambda: None)
    value = {"key": "value"}

    def puts(n: int = 20_000) -> float:
        start = time.perf_counter()
        for _ in range(n):
            ember.put(value)
        return (time.perf_counter() - start) / n * 1e6

    def submits(n: int = 5_000) -> float:
        start = time.perf_counter()
        refs = [noop.remote() for _ in range(n)]
        took = (time.perf_counter() - start) / n * 1e6
        ember.get(refs)
        return took

    ember.get([noop.remote() for _ in range(1000)])
    times: dict[bool, dict[str, list[float]]] = {False: {"put": [], "submit": []}, True: {"put": [], "submit": []}}
    try:
        for block in range(blocks):
            for record in (False, True) if block % 2 == 0 else (True, False):
                core.record_call_sites = record
                times[record]["put"].append(puts())
                times[record]["submit"].append(submits())
    finally:
        ember.shutdown()
    for name in ("put", "submit"):
        off, on = statistics.median(times[False][name]), statistics.median(times[True][name])
        print(f"{name:<7} off {off:6.2f} us   on {on:6.2f} us   (+{on - off:.2f} us a call, medians)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="off/on pairs to run")
    parser.add_argument("--per-call", action="store_true", help="time one put and one submission instead")
    args = parser.parse_args()
    if args.per_call:
        per_call()
        return 0
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for pair in range(args.pairs):
        # Which goes first alternates (off-on, on-off, ...): a run right after another's
        # cluster stopped may pay for its leftovers, and neither side should always pay.
        for record in (False, True) if pair % 2 == 0 else (True, False):
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
