"""How cost grows: each scenario at sizes doubled several times, ember beside Ray.

    python bench/scale.py                          # every scenario, ember and Ray (~10 min)
    python bench/scale.py --quick                  # the two smallest sizes of each
    python bench/scale.py --only tasks,policy_demand --max-size tasks=250000
    python bench/scale.py --systems ember --points 3
    python bench/scale.py --render bench/results/scale-<time>.json   # as Markdown tables

Every figure is per unit (per task, per ref, per node, per pending bundle) next to the size,
so that a cost growing faster than the work shows as a rising column; the last line of each
table says by how much each per-unit figure grew from the smallest size to the largest.
As ``bench/run.py`` does, each system runs in child processes of its own, one after the
other, in the same run: compare within one run. Scenarios whose figures are a process's peak
memory start a fresh child (and cluster) per size; the others grow one cluster.

A size is skipped, with the reason printed, when the previous one took over half the
``--budget`` (its double would take longer), or when its memory would not fit this machine.
Results go to ``bench/results/scale-<time>.json`` with the machine and its load averages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scale_probes  # noqa: E402
from scale_workloads import Budget  # noqa: E402

SYSTEMS = ("ember", "ray")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    digits: int = 1
    per_unit: bool = True  # a per-unit figure: flat is linear growth, rising is worse


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    unit: str
    sizes: tuple[int, ...]
    columns: tuple[Column, ...]
    fresh: bool  # a child process (and cluster) per size: peak memory is the size's own
    systems: tuple[str, ...] = SYSTEMS  # where it can run at all


def _doubling(first: int, last: int) -> tuple[int, ...]:
    sizes = [first]
    while sizes[-1] * 2 <= last:
        sizes.append(sizes[-1] * 2)
    return tuple(sizes)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "tasks",
            "N no-op tasks submitted at once by one driver, then awaited",
            "tasks",
            _doubling(15_625, 1_000_000),
            (
                Column("us_per_task", "µs/task"),
                Column("submit_us_per_task", "submit µs/task"),
                Column("driver_bytes_per_task", "driver peak B/task", 0),
                Column("agent_growth_mb", "agent +MB", 1, per_unit=False),
                Column("head_growth_mb", "head +MB", 1, per_unit=False),
            ),
            fresh=True,
        ),
        Scenario(
            "objects",
            "N small objects put and kept by one owner, then all dropped",
            "objects",
            _doubling(12_500, 200_000),
            (
                Column("put_us_per_object", "put µs/obj"),
                Column("driver_bytes_per_ref", "owner B/ref", 0),
                Column("agent_bytes_per_ref", "agent B/ref", 0),
                Column("free_us_per_ref", "free µs/ref"),
            ),
            fresh=True,
        ),
        Scenario(
            "borrowed",
            "N objects lent to an actor that keeps them; the owner's refs dropped; the actor "
            "lets go, the owner frees them",
            "refs",
            _doubling(2_500, 20_000),
            (
                Column("lend_us_per_ref", "lend µs/ref"),
                Column("owner_bytes_per_borrowed_ref", "owner B/borrowed", 0),
                Column("free_us_per_ref", "free µs/ref"),
            ),
            fresh=True,
        ),
        Scenario(
            "nodes",
            "one cluster grown to N 1-CPU nodes on this machine: the head idle, its queries, "
            "10,000 SPREAD tasks placed by a second driver, and that driver's end",
            "nodes",
            (8, 16, 32, 64),
            (
                Column("head_idle_cpu_ms_per_s_per_node", "head idle CPU ms/s/node", 2),
                Column("head_kib_per_node", "head KiB/node", 0),
                Column("job_end_head_cpu_ms", "job end head CPU ms", 1, per_unit=False),
                Column("agent_idle_cpu_ms_per_s", "agent idle CPU ms/s", 1, per_unit=False),
                Column("cluster_pss_mib_per_node", "MiB/node", 0),
                Column("join_s_per_node", "join s/node", 2),
                Column("status_ms", "status ms", 1, per_unit=False),
                Column("demand_ms", "GetDemand ms", 2, per_unit=False),
                Column("place_us_per_task", "place µs/task", 0, per_unit=False),
                Column("nodes_used", "nodes used", 0, per_unit=False),
            ),
            fresh=False,
        ),
        Scenario(
            "head_tables",
            "ember's head in-process with N simulated nodes: its handlers' cost per node, "
            "without the network (ember only: Ray's GCS is a C++ server)",
            "nodes",
            _doubling(125, 1_000),
            (
                Column("join_us_per_node", "join µs/node"),
                Column("first_report_us_per_node", "1st report µs/node"),
                Column("report_us", "report µs", 1, per_unit=False),
                Column("leave_us_per_node", "leave µs/node"),
                Column("dead_worker_report_us", "dead-worker report µs"),
                Column("owners_gone_messages_per_node", "OwnersGone msgs/node", 1, per_unit=False),
                Column("view_us_per_node", "ClusterView µs/node"),
                Column("demand_us_per_node", "GetDemand µs/node"),
                Column("place_us_per_node", "FindNode µs/node", 2),
                Column("view_bytes_per_node", "ClusterView B/node", 0, per_unit=False),
            ),
            fresh=False,
            systems=("ember",),
        ),
        Scenario(
            "policy_nodes",
            "one autoscaling decision: N live nodes (90% busy), 1,000 pending bundles",
            "nodes",
            _doubling(10, 1_280),
            (
                Column("ms", "decision ms", 1, per_unit=False),
                Column("us_per_node", "µs/node"),
            ),
            fresh=False,
        ),
        Scenario(
            "policy_demand",
            "one autoscaling decision: 1,000 live nodes (90% busy), N pending bundles",
            "bundles",
            (100, 400, 1_600, 6_400, 25_600, 102_400),
            (
                Column("ms", "decision ms", 1, per_unit=False),
                Column("us_per_pending", "µs/bundle"),
            ),
            fresh=False,
        ),
        Scenario(
            "broadcast",
            "one large array put on the first node, read at once by a task on each of N others",
            "readers",
            (1, 2, 4, 8),
            (
                Column("s", "total s", 2, per_unit=False),
                Column("s_per_reader", "s/reader", 2),
                Column("gb_per_s", "GB/s in all", 2, per_unit=False),
            ),
            fresh=False,
        ),
    )
}


# ------------------------------------------------------------------ the child


def child_main(argv: list[str]) -> int:
    scenario, system, sizes, options = argv[0], argv[1], argv[2], json.loads(argv[3])
    import cloudpickle

    import scale_workloads

    cloudpickle.register_pickle_by_value(scale_workloads)
    if system == "ray":
        from ray import cloudpickle as ray_cloudpickle

        ray_cloudpickle.register_pickle_by_value(scale_workloads)

    def emit(point: dict[str, Any]) -> None:
        print("POINT " + json.dumps(point), flush=True)

    try:
        scale_workloads.SCENARIOS[scenario](
            system, [int(s) for s in sizes.split(",")], options, emit
        )
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        leftover = _reap_descendants()
        if leftover:
            print("LEFTOVER " + json.dumps(leftover), flush=True)
    return 0


def _reap_descendants(grace: float = 15.0) -> list[str]:
    """Wait for what the scenario started to exit; kill (by pid) and name whatever did not."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = scale_probes.descendants(os.getpid())
        if not alive:
            return []
        time.sleep(0.2)
    survivors = [f"{pid} {scale_probes.cmdline(pid)[:120]}" for pid in alive]
    _kill(alive)
    return survivors


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------ the parent


def run_child(
    scenario: str, system: str, sizes: list[int], options: dict[str, Any], timeout: float
) -> tuple[list[dict[str, Any]], float]:
    """The points a child measured, and its wall time. A child past ``timeout`` is stopped
    with everything it started."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--child", scenario, system,
         ",".join(map(str, sizes)), json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(HERE),
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tree = scale_probes.descendants(child.pid)
        _kill([child.pid, *tree])
        out, err = child.communicate()
        err += f"\nstopped after {timeout:.0f} s (and {len(tree)} processes it started)"
    points = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("POINT ")]
    for line in out.splitlines():
        if line.startswith("LEFTOVER "):
            print(f"  warning: {system} {scenario} left processes behind (killed): {line[9:]}")
    if child.returncode != 0:
        last = sizes[len(points)] if len(points) < len(sizes) else sizes[-1]
        points.append({"size": last, "skipped": "failed: " + _last_error(err)})
    return points, time.perf_counter() - started


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def measure(
    scenario: Scenario, system: str, sizes: list[int], options: dict[str, Any]
) -> list[dict[str, Any]]:
    timeout = float(options["budget"]) * 6 + 300
    if not scenario.fresh:
        points, took = run_child(scenario.name, system, sizes, options, timeout)
        print(f"  {system:5} {scenario.name}: {took:.1f} s", flush=True)
        return points
    points: list[dict[str, Any]] = []
    budget = Budget(float(options["budget"]))
    for size in sizes:
        reason = budget.refuses(size)
        if reason:
            points.append({"size": size, "skipped": reason})
            break
        got, took = run_child(scenario.name, system, [size], options, timeout)
        budget.record(size, took, got[-1].get("s") if got else None)
        points += got
        print(f"  {system:5} {scenario.name} {size:,}: {took:.1f} s", flush=True)
        if not got or "skipped" in got[-1]:
            break
    return points


# ------------------------------------------------------------------ the report


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _parts(
    scenario: Scenario, results: dict[str, list[dict[str, Any]]]
) -> tuple[list[str], list[list[str]], list[str]]:
    """The header, one row per system and size (each system's sizes together, so that its
    columns read as curves), and the notes: growth, skipped sizes, failures."""
    main = scenario.columns[0]
    header = [scenario.unit, "system"] + [c.header for c in scenario.columns]
    compare = "ember" in results and len(results) > 1
    if compare:
        header.append(f"{main.header} ÷ ember's")
    ember = {p["size"]: p.get(main.key) for p in results.get("ember", []) if "skipped" not in p}
    rows, notes = [], []
    for system, points in results.items():
        for point in points:
            if "skipped" in point:
                notes.append(f"{system} at {point['size']:,} {scenario.unit}: skipped, {point['skipped']}")
                continue
            if "failure" in point:
                notes.append(f"{system} at {point['size']:,} {scenario.unit}: FAILED, {point['failure']}")
            row = [f"{point['size']:,}", system]
            row += [_cell(point.get(c.key), c.digits) for c in scenario.columns]
            if compare:
                mine, theirs = point.get(main.key), ember.get(point["size"])
                row.append(f"{mine / theirs:.1f}x" if system != "ember" and mine and theirs else "")
            rows.append(row)
    return header, rows, growth(scenario, results) + notes


def table(scenario: Scenario, results: dict[str, list[dict[str, Any]]]) -> str:
    header, rows, notes = _parts(scenario, results)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = [f"{scenario.name}: {scenario.what}"]
    lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def markdown(scenario: Scenario, results: dict[str, list[dict[str, Any]]]) -> str:
    """The same table in Markdown, for the docs: ``--render results.json``."""
    header, rows, notes = _parts(scenario, results)
    lines = [f"**{scenario.name}**: {scenario.what}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join([" --- ", " --- "] + [" ---: "] * (len(header) - 2)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def growth(scenario: Scenario, results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per system, how much each per-unit figure grew from the smallest size to the largest."""
    lines = []
    for system, points in results.items():
        measured = [p for p in points if "skipped" not in p]
        if len(measured) < 2:
            continue
        first, last = measured[0], measured[-1]
        parts = []
        for column in scenario.columns:
            if not column.per_unit:
                continue
            a, b = first.get(column.key), last.get(column.key)
            if a and b:
                parts.append(f"{column.header} x{b / a:.2f}")
        if parts:
            lines.append(
                f"{system}: {', '.join(parts)} from {first['size']:,} to {last['size']:,} "
                f"{scenario.unit} (x{last['size'] / first['size']:g} the size; x1 is linear)"
            )
    return lines


def render(path: str) -> int:
    stored = json.loads(Path(path).read_text())
    info = stored["machine"]
    print(
        f"{info['cpus']} CPUs, {info['memory_gib']} GiB, Python {info['python']}, "
        f"{', '.join(f'{k} {v}' for k, v in info['versions'].items())}; {info['date']}; load "
        f"average {info['load_before']} before, {info['load_after']} after; {info['seconds']} s\n"
    )
    for name, results in stored["results"].items():
        print(markdown(SCENARIOS[name], results) + "\n")
    return 0


# ------------------------------------------------------------------ the command line


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--systems", default="ember,ray", help="comma-separated: ember, ray")
    parser.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--points", type=int, help="measure only the first N sizes of each")
    parser.add_argument(
        "--max-size", action="append", default=[], metavar="SCENARIO=N",
        help="the largest size of a scenario (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--sizes", action="append", default=[], metavar="SCENARIO=N,N,...",
        help="a scenario's sizes instead of its own (repeatable): beyond them, or fewer",
    )
    parser.add_argument("--budget", type=float, default=45.0,
                        help="seconds a size may take: a size whose predicted time (the last one's, scaled linearly) is over it is skipped")
    parser.add_argument("--broadcast-mb", type=int, default=1000, help="the broadcast array's size")
    parser.add_argument("--quick", action="store_true",
                        help="the two smallest sizes of each scenario, a 100 MB broadcast")
    parser.add_argument("--json", help="where to write the results (default: bench/results/)")
    args = parser.parse_args(argv)
    args.scenarios = list(SCENARIOS)
    if args.only:
        args.scenarios = [s for s in args.only.split(",") if s]
        unknown = [s for s in args.scenarios if s not in SCENARIOS]
        if unknown:
            parser.error(f"no scenario {', '.join(unknown)} (there are: {', '.join(SCENARIOS)})")
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown or not args.systems:
        parser.error(f"no system {', '.join(unknown) or '(none given)'} (there are: ember, ray)")
    if args.quick:
        args.points = args.points or 2
        args.broadcast_mb = min(args.broadcast_mb, 100)
    if args.points is not None and args.points < 1:
        parser.error(f"--points {args.points}: at least one size is needed")
    if args.budget <= 0 or args.broadcast_mb <= 0:
        parser.error("--budget and --broadcast-mb must be positive")
    caps: dict[str, int] = {}
    for item in ",".join(args.max_size).split(","):
        if not item:
            continue
        name, _, value = item.partition("=")
        if name not in SCENARIOS or not value.isdigit():
            parser.error(f"--max-size {item!r}: expected SCENARIO=N with one of {', '.join(SCENARIOS)}")
        caps[name] = int(value)
    chosen: dict[str, list[int]] = {}
    for item in args.sizes:
        name, _, values = item.partition("=")
        numbers = values.split(",")
        if name not in SCENARIOS or not all(n.isdigit() and int(n) > 0 for n in numbers):
            parser.error(f"--sizes {item!r}: expected SCENARIO=N,N,... with one of {', '.join(SCENARIOS)}")
        chosen[name] = sorted({int(n) for n in numbers})
    args.sizes = {}
    for name in args.scenarios:
        sizes = chosen.get(name) or list(SCENARIOS[name].sizes)
        if name in caps:
            sizes = [s for s in sizes if s <= caps[name]]
            if not sizes:
                parser.error(
                    f"--max-size {name}={caps[name]} is below its smallest size, "
                    f"{(chosen.get(name) or SCENARIOS[name].sizes)[0]:,}"
                )
        args.sizes[name] = sizes[: args.points] if args.points else sizes
    return args


def machine() -> dict[str, Any]:
    import importlib.metadata as metadata

    versions = {}
    for package in ("ember", "ray"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        return child_main(argv[1:])
    if argv and argv[0] == "--render":
        if len(argv) != 2:
            print("usage: scale.py --render RESULTS.json", file=sys.stderr)
            return 2
        return render(argv[1])
    args = parse(argv)
    systems = [s for s in args.systems if _installed(s)]
    for missing in set(args.systems) - set(systems):
        print(f"{missing} is not installed, skipped (pip install {missing})")
    options = {"budget": args.budget, "broadcast_mb": args.broadcast_mb}
    info = machine()
    info["load_before"] = scale_probes.load_average()
    print(f"{info['cpus']} CPUs, {info['memory_gib']} GiB, load average {info['load_before']}")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    tables = []
    started = time.perf_counter()
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        results[name] = {}
        for system in systems:
            if system not in scenario.systems:
                print(f"{name} on {system}: not measured; {scenario.what.rpartition('(')[2].rstrip(')')}")
                continue
            print(f"{name} on {system}: {', '.join(f'{s:,}' for s in args.sizes[name])} {scenario.unit}", flush=True)
            results[name][system] = measure(scenario, system, args.sizes[name], options)
        tables.append(table(scenario, results[name]))
        print("\n" + tables[-1] + "\n", flush=True)
    info["load_after"] = scale_probes.load_average()
    info["seconds"] = round(time.perf_counter() - started)
    print(f"load average before {info['load_before']}, after {info['load_after']}; "
          f"{info['seconds']} s in all")
    path = Path(args.json) if args.json else HERE / "results" / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    path.with_suffix(".txt").write_text("\n\n".join(tables) + "\n")
    print(f"written: {path}")
    return 0


def _installed(system: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(system) is not None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
