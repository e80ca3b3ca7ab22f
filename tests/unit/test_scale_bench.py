"""bench/scale.py's command line, its skipping rules and its tables; one pure scenario run
for real at its smallest size. The benchmark itself never runs in ``make test``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import scale  # noqa: E402
from scale_workloads import SCENARIOS as MEASURED  # noqa: E402
from scale_workloads import Budget  # noqa: E402


def test_every_scenario_is_measured_by_a_workload_and_sizes_double() -> None:
    assert set(scale.SCENARIOS) == set(MEASURED)
    for scenario in scale.SCENARIOS.values():
        sizes = scenario.sizes
        assert list(sizes) == sorted(set(sizes)), scenario.name
        assert all(b >= 2 * a for a, b in zip(sizes, sizes[1:], strict=False)), scenario.name
        assert scenario.columns, scenario.name


def test_sizes_are_capped_per_scenario_and_cut_to_the_first_points() -> None:
    args = scale.parse(["--only", "tasks,nodes", "--max-size", "tasks=100000", "--points", "3"])
    assert args.scenarios == ["tasks", "nodes"]
    assert args.sizes["tasks"] == [15_625, 31_250, 62_500]
    assert args.sizes["nodes"] == [8, 16, 32]
    args = scale.parse(["--only", "tasks", "--max-size", "tasks=100000"])
    assert args.sizes["tasks"] == [15_625, 31_250, 62_500]
    quick = scale.parse(["--quick"])
    assert all(len(sizes) <= 2 for sizes in quick.sizes.values())
    assert quick.broadcast_mb == 100


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--only", "tasks,nodez"], "no scenario nodez"),
        (["--systems", "ember,dask"], "no system dask"),
        (["--max-size", "tasks"], "expected SCENARIO=N"),
        (["--max-size", "tasks=many"], "expected SCENARIO=N"),
        (["--only", "tasks", "--max-size", "tasks=10"], "below its smallest size, 15,625"),
        (["--points", "0"], "at least one size"),
        (["--budget", "0"], "must be positive"),
    ],
)
def test_bad_arguments_are_refused_naming_what_is_wrong(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        scale.parse(argv)
    assert says in capsys.readouterr().err


def test_a_size_is_skipped_when_its_predicted_time_overruns_the_budget() -> None:
    budget = Budget(10)
    assert budget.refuses(100) == ""  # the first size always runs
    budget.record(100, total=5.0, work=4.0)  # 1 s of start-up, 4 s of work
    assert budget.refuses(200) == ""  # 1 + 8 s
    assert "about 13 s (scaled linearly)" in budget.refuses(300)


def test_a_per_unit_cost_that_grew_is_expected_to_grow_again() -> None:
    budget = Budget(10)
    budget.record(100, total=1.0)
    budget.record(200, total=3.0)  # 1.5x the cost per unit
    reason = budget.refuses(400)  # 3 s x 2 x 1.5 = 9 s... under the budget
    assert reason == ""
    budget.record(400, total=9.0)
    assert "about 27 s (scaled its per-unit cost growing as it did)" in budget.refuses(800)


def test_the_table_shows_curves_ratios_growth_and_why_points_are_missing() -> None:
    scenario = scale.SCENARIOS["objects"]
    results = {
        "ember": [
            {"size": 12_500, "put_us_per_object": 5.0, "driver_bytes_per_ref": 400, "free_us_per_ref": 2.0},
            {"size": 25_000, "put_us_per_object": 10.0, "driver_bytes_per_ref": 400, "free_us_per_ref": 2.0},
        ],
        "ray": [
            {"size": 12_500, "put_us_per_object": 500.0, "driver_bytes_per_ref": 2000},
            {"size": 25_000, "skipped": "the previous size took 40 s"},
        ],
    }
    text = scale.table(scenario, results)
    assert "100.0x" in text  # Ray's put beside ember's at the same size
    assert "put µs/obj x2.00" in text  # ember's per-object put doubled: a rising column
    assert "ray at 25,000 objects: skipped, the previous size took 40 s" in text
    rendered = scale.markdown(scenario, results)
    assert "| 12,500 | ray | 500.0 | 2,000 | - | - | 100.0x |" in rendered
    assert "| 25,000 | ember | 10.0 | 400 | - | 2.0 |  |" in rendered
    assert "- ray at 25,000 objects: skipped, the previous size took 40 s" in rendered
    results["ember"][1]["failure"] = "3 of 25000 objects were freed"
    assert "ember at 25,000 objects: FAILED, 3 of 25000 objects were freed" in scale.table(
        scenario, results
    )


def test_the_policy_scenario_runs_at_its_smallest_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    code = scale.main([
        "--only", "policy_nodes", "--systems", "ember", "--points", "1", "--json", str(out),
    ])
    assert code == 0
    written = json.loads(out.read_text())
    [point] = written["results"]["policy_nodes"]["ember"]
    assert point["size"] == 10 and point["pending"] == 1000 and point["ms"] > 0
    assert written["machine"]["cpus"] and "load_before" in written["machine"]
    assert "policy_nodes" in out.with_suffix(".txt").read_text()


def test_sizes_can_be_chosen_beyond_a_scenarios_own() -> None:
    args = scale.parse(["--only", "head_tables", "--sizes", "head_tables=4000,1000,2000"])
    assert args.sizes["head_tables"] == [1000, 2000, 4000]
    with pytest.raises(SystemExit):
        scale.parse(["--sizes", "head_tables=1000,lots"])
