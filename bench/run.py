"""Benchmarks: ember beside Ray and Dask, in one run, with ratios.

    python bench/run.py                 # every system that is installed
    python bench/run.py --systems ember,ray --only tasks_async,cold_start

Each system runs in processes of its own (they cannot share one), one after the other, on the
same machine within the same run: compare the ratios, not absolute figures across runs. Every
figure is the median of a few repetitions. The workloads come in suites (``workloads.SUITES``),
each run on a fresh cluster in a child process of its own; ``--only`` skips the suites it does
not name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import systems  # noqa: E402
import workloads  # noqa: E402

# ------------------------------------------------------------------ children


def _child_suite(system_name: str, suite: str, only: set[str] | None) -> dict[str, Any]:
    import cloudpickle

    cloudpickle.register_pickle_by_value(workloads)
    # Tasks that drive actors receive the adapter's in_task(), an object of a class in systems.
    cloudpickle.register_pickle_by_value(systems)
    chosen = workloads.SUITES[suite]
    system = systems.make(system_name)
    system.init(num_cpus=chosen.num_cpus, nodes=chosen.nodes)
    results: dict[str, Any] = {}
    try:
        for name, workload in chosen.workloads.items():
            if only and name not in only:
                continue
            results[name] = workload(system)
    finally:
        system.shutdown()
    return results


COLD = {
    "ember": """
        import time; t0 = time.perf_counter()
        import ember
        ember.init()
        t1 = time.perf_counter()
        f = ember.remote(lambda: 1)
        assert ember.get(f.remote()) == 1
        t2 = time.perf_counter()
        print(t2 - t0, t1 - t0, t2 - t1)
        ember.shutdown()
    """,
    "ray": """
        import time; t0 = time.perf_counter()
        import ray
        ray.init(include_dashboard=False, logging_level="ERROR")
        t1 = time.perf_counter()
        f = ray.remote(lambda: 1)
        assert ray.get(f.remote()) == 1
        t2 = time.perf_counter()
        print(t2 - t0, t1 - t0, t2 - t1)
        ray.shutdown()
    """,
    "dask": """
        import time; t0 = time.perf_counter()
        from distributed import Client, LocalCluster
        cluster = LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
        t1 = time.perf_counter()
        assert client.submit(lambda: 1).result() == 1
        t2 = time.perf_counter()
        print(t2 - t0, t1 - t0, t2 - t1)
        client.close(); cluster.close()
    """,
}

IDLE = {
    "ember": "import ember; ember.init()",
    "ray": "import ray; ray.init(include_dashboard=False, logging_level='ERROR')",
    "dask": (
        "from distributed import Client, LocalCluster; "
        "cluster = LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None); "
        "client = Client(cluster)"
    ),
}


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child_idle(system_name: str) -> dict[str, Any]:
    exec(IDLE[system_name], {})
    time.sleep(5)  # let start-up work settle and idle workers be trimmed
    pids = _descendants(os.getpid())
    pss = sum(_pss_bytes(pid) for pid in pids)
    return {"idle_processes": [len(pids), "processes"], "idle_pss": [pss / 2**30, "GiB"]}


def child_main(args: list[str]) -> None:
    kind, system_name = args[0], args[1]
    if kind == "idle":
        result = _child_idle(system_name)
        print(json.dumps(result), flush=True)
        os._exit(0)  # leave the cluster to the systems' own exit handling
    only = set(args[3].split(",")) if len(args) > 3 and args[3] else None
    print(json.dumps(_child_suite(system_name, args[2], only)), flush=True)


# ------------------------------------------------------------------ parent


def _run_child(*args: str, timeout: float = 900) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(HERE),
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def _cold_start(system_name: str, repeat: int = 3) -> dict[str, list[Any]]:
    """From ``import`` to the first result, and its two halves: ``init`` (with the import) and
    the first task right after it, which waits for whatever ``init`` left starting."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(COLD[system_name])],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=str(HERE),
        )
        if out.returncode != 0:
            raise RuntimeError(f"cold start of {system_name} failed:\n{out.stderr[-2000:]}")
        runs.append([float(x) for x in out.stdout.strip().splitlines()[-1].split()])
    names = ("cold_start", "init", "first_get_after_init")
    return {name: [statistics.median(run[i] for run in runs), "s"] for i, name in enumerate(names)}


def measure(system_name: str, only: set[str] | None) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def wanted(names: list[str] | dict[str, Any]) -> bool:
        return only is None or bool(only.intersection(names))

    if wanted(["cold_start", "init", "first_get_after_init"]):
        results.update(_cold_start(system_name))
    for suite_name, suite in workloads.SUITES.items():
        if wanted(suite.workloads):
            results.update(_run_child("suite", system_name, suite_name, ",".join(only or [])))
    if wanted(["idle_pss", "idle_processes"]):
        results.update(_run_child("idle", system_name))
    return results


def _ratio(ember: list[Any], other: list[Any] | None) -> str:
    if not other or not other[0] or not ember[0]:
        return ""
    value, unit = ember
    if unit.endswith("/s"):
        factor = value / other[0]
    else:
        factor = other[0] / value
    return f"{factor:.2f}x"


def _fmt(entry: list[Any] | None) -> str:
    if not entry:
        return "-"
    value, unit = entry
    if unit == "GiB":
        return f"{value:.2f} GiB"
    if unit == "processes":
        return f"{value:.0f}"
    if unit == "GB/s":
        return f"{value:.2f} GB/s"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3f} {unit}"


def report(all_results: dict[str, dict[str, Any]]) -> str:
    names = list(all_results)
    peers = [n for n in names if n != "ember"]
    rows = []
    workloads_seen: list[str] = []
    for results in all_results.values():
        for key in results:
            if key not in workloads_seen:
                workloads_seen.append(key)
    header = ["workload"] + names + [f"ember vs {p}" for p in peers]
    for workload in workloads_seen:
        row = [workload] + [_fmt(all_results[n].get(workload)) for n in names]
        ember = all_results.get("ember", {}).get(workload)
        for peer in peers:
            row.append(_ratio(ember, all_results[peer].get(workload)) if ember else "")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append("")
    lines.append("ratios: how many times better ember is (higher rate, or shorter time)")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--systems", default=",".join(s for s in systems.SYSTEMS if systems.installed(s))
    )
    parser.add_argument("--only", help="comma-separated workload names")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    chosen = [s for s in args.systems.split(",") if s]
    missing = [s for s in chosen if not systems.installed(s)]
    if missing:
        print(f"not installed, skipped: {', '.join(missing)} (pip install ray 'dask[distributed]')")
        chosen = [s for s in chosen if s not in missing]
    all_results: dict[str, dict[str, Any]] = {}
    for name in chosen:
        print(f"running {name} ...", flush=True)
        all_results[name] = measure(name, only)
    text = report(all_results)
    print()
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps(all_results, indent=2))
    (out / f"{stamp}.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
