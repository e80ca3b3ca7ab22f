"""The seed programs in examples/ run unchanged (apart from the import) and print what they should."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _run(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(EXAMPLES),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_sleep_tasks_take_about_the_longest_sleep():
    out = _run("sleep_tasks.py")
    assert "Total time of sleep: 9.9 for 16 tasks" in out
    remote = float(re.search(r"^Finished in ([\d.]+)", out, re.M).group(1))
    # ray.init() is inside the timed region, as in the article; the longest sleep is 1.5 s.
    assert 1.5 <= remote < 3.0, out


def test_matrix_dag():
    out = _run("matrix_dag.py")
    assert "result (1000, 1000)" in out


def test_map_reduce():
    out = _run("map_reduce.py")
    assert "results_serial = 5050" in out
    assert "reduce parallel = 5050" in out
    assert "results_parallel = 5050" in out


def test_fibonacci():
    out = _run("fibonacci.py")
    assert "Local execution time" in out and "Remote execution time" in out


def test_parameter_server():
    out = _run("parameter_server.py")
    assert re.search(r"^Actor\(ParameterServer, [0-9a-f]+\)$", out, re.M), out
    assert "2 workers x 1000 iterations" in out
    # The sharded part: each of the 4 worker tasks returns None once its updates are sent.
    assert "[None, None, None, None]" in out
    assert "sharded: 4 workers x 10 iterations" in out
