"""What tasks print reaches the driver's terminal, prefixed like Ray's."""

from __future__ import annotations

import textwrap

from tests.conftest import run_driver


def test_task_output_is_prefixed_and_reaches_the_driver():
    script = textwrap.dedent(
        """
        import sys, ember
        ember.init(num_cpus=2)

        @ember.remote
        def talk(i):
            print("hello from", i)
            print("warning", i, file=sys.stderr)
            return i

        for i in range(3):
            print("result", ember.get(talk.remote(i)), flush=True)
        ember.shutdown()
        """
    )
    result = run_driver(script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for i in range(3):
        said = next(n for n, line in enumerate(lines) if line.endswith(f") hello from {i}"))
        assert lines[said].startswith("(talk pid=")
        # A task's output arrives before its result.
        assert said < lines.index(f"result {i}")
        assert f") warning {i}" in result.stderr
