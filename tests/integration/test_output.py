"""What tasks print reaches the driver's terminal, prefixed like Ray's."""

from __future__ import annotations

import glob
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


def test_log_records_of_tasks_and_actors_reach_the_driver_with_their_level():
    script = textwrap.dedent(
        """
        import glob, logging, os, sys, ember
        ctx = ember.init(num_cpus=2)

        @ember.remote
        def work(i):
            log = logging.getLogger("shop.orders")
            log.warning("low stock %d", i)
            log.info("packed %d", i)
            log.debug("never shown %d", i)   # below the worker's level (INFO)
            try:
                1 / 0
            except ZeroDivisionError:
                logging.exception("failed %d", i)
            return i

        @ember.remote
        def own_handler():
            # A handler of the user's own, writing to the task's stderr: it reaches the
            # driver once, through that stream, not twice.
            log = logging.getLogger("mine")
            log.propagate = False
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("MINE %(levelname)s %(message)s"))
            log.addHandler(handler)
            log.error("by my handler")
            log.removeHandler(handler)
            # The runtime's own loggers stay in the worker's file.
            logging.getLogger("asyncio").error("plumbing noise")
            logging.getLogger("ember.runtime.core.executor").warning("internal noise")
            return 0

        @ember.remote
        class Till:
            def ring(self, amount):
                logging.getLogger("shop.till").error("refund of %d", amount)
                return amount

        print("result", ember.get(work.remote(7)), flush=True)
        print("result", ember.get(own_handler.remote()), flush=True)
        till = Till.remote()
        print("result", ember.get(till.ring.remote(3)), flush=True)
        print("session", ctx.session_dir, flush=True)
        ember.shutdown()
        """
    )
    result = run_driver(script)
    assert result.returncode == 0, result.stderr
    err = result.stderr.splitlines()

    def shown(text: str) -> list[str]:
        return [line for line in err if line.endswith(text)]

    [low] = shown(") WARNING shop.orders: low stock 7")
    assert low.startswith("(work pid=")
    assert len(shown(") INFO shop.orders: packed 7")) == 1
    assert not [line for line in err if "never shown" in line or "noise" in line]
    # A record with a traceback: every line prefixed, the exception's last.
    [failed] = shown(") ERROR root: failed 7")
    prefix = failed.split(")")[0] + ")"
    assert f"{prefix} Traceback (most recent call last):" in err
    assert f"{prefix} ZeroDivisionError: division by zero" in err
    assert len(shown(") MINE ERROR by my handler")) == 1
    [refund] = shown(") ERROR shop.till: refund of 3")
    assert refund.startswith("(Till pid=")

    # The worker's own log file holds each record once, as it holds each print once.
    session = result.stdout.split("session ", 1)[1].split()[0]
    files = "".join(open(p).read() for p in glob.glob(f"{session}/logs/worker-*.err"))
    for text in ("low stock 7", "packed 7", "failed 7", "by my handler", "refund of 3"):
        assert files.count(text) == 1, (text, files)
    assert "never shown" not in files
