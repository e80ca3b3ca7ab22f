"""A profile's files (collapsed, speedscope, SVG), its bounds, and the worker's own sampler and
task log index, without a cluster."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import xml.etree.ElementTree as ElementTree

import pytest

from ember.runtime.core import cpu_profile
from ember.runtime.core.task_log_index import TaskLogIndex
from ember.runtime.wire import flame_graph, profile_formats
from ember.runtime.wire.protocol import ember_pb2 as pb

SVG = "{http://www.w3.org/2000/svg}"


def _profile(*stacks: tuple[str, int]) -> pb.ProcessProfile:
    return pb.ProcessProfile(
        pid=42, kind="WORKER", sampler="self", duration=1.0, rate=100,
        stacks=[pb.StackCount(stack=s, count=c) for s, c in stacks],
    )


def test_speedscope_has_one_sampled_profile_per_thread_with_shared_frames() -> None:
    profile = _profile(
        ("thread MainThread;main (/app/a.py:1);work (/app/a.py:10)", 30),
        ("thread MainThread;main (/app/a.py:1)", 10),
        ("thread helper;loop (/app/b.py:5)", 5),
    )
    document = profile_formats.speedscope(profile)
    assert document["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = document["shared"]["frames"]
    assert {"name": "work", "file": "/app/a.py", "line": 10} in frames
    assert len({f["name"] for f in frames}) == len(frames) == 3  # main is shared, not repeated
    by_name = {p["name"].split(": ")[-1]: p for p in document["profiles"]}
    main = by_name["thread MainThread"]
    assert main["type"] == "sampled" and main["unit"] == "seconds" and main["startValue"] == 0
    assert sorted(main["weights"]) == [0.1, 0.3] and main["endValue"] == pytest.approx(0.4)
    assert document["profiles"][document["activeProfileIndex"]] is main  # the busiest opens
    assert json.loads(profile_formats.speedscope_text(profile)) == document


def test_collapsed_round_trips_and_keeps_its_bounds() -> None:
    profile = _profile(("a;b", 3), ("a;c", 7))
    text = profile_formats.collapsed(profile)
    assert text == "a;c 7\na;b 3\n"
    stacks, dropped = profile_formats.parse_collapsed(text + "garbage line\n\n")
    assert {(s.stack, s.count) for s in stacks} == {("a;b", 3), ("a;c", 7)} and dropped == 0
    many = "".join(f"s{i};f 1\n" for i in range(profile_formats.MAX_STACKS + 10))
    stacks, dropped = profile_formats.parse_collapsed(many)
    assert dropped == 10 and len(stacks) == profile_formats.MAX_STACKS + 1
    assert stacks[-1].stack == profile_formats.OVERFLOW_FRAME and stacks[-1].count == 10


def test_requests_are_checked_and_filled() -> None:
    filled = profile_formats.checked(pb.ProfileRequest(pid=7))
    assert filled.duration == profile_formats.DEFAULT_DURATION and filled.rate == profile_formats.DEFAULT_RATE
    for bad, message in (
        (pb.ProfileRequest(), "give its pid"),
        (pb.ProfileRequest(pid=7, duration=61), "at most 60 seconds, not 61"),
        (pb.ProfileRequest(pid=7, duration=-1), "more than 0"),
        (pb.ProfileRequest(pid=7, rate=5000), "at most 1000 times a second"),
        (pb.ProfileRequest(pid=7, sampler="perf"), "not 'perf'"),
    ):
        with pytest.raises(profile_formats.BadProfileRequest, match=message):
            profile_formats.checked(bad)


def test_the_svg_is_wellformed_escaped_and_has_no_script() -> None:
    profile = _profile(("thread <Main>;f&g (/a.py:1);<lambda> (/a.py:2)", 9), ("thread <Main>;h (/a.py:3)", 1))
    text = flame_graph.svg(profile, 'pid 42 "quoted" <title>')
    root = ElementTree.fromstring(text)  # would fail on an unescaped < or &
    titles = [t.text for t in root.iter(SVG + "title")]
    assert "<lambda> (/a.py:2) (9 samples, 90.00%)" in titles
    assert "<script" not in text and "href" not in text
    widths = {
        g.find(SVG + "title").text.split(" (")[0]: float(g.find(SVG + "rect").get("width"))
        for g in root.iter(SVG + "g")
    }
    assert widths["f&g"] == pytest.approx(9 * widths["h"], rel=0.01)  # as wide as its samples
    assert widths["thread <Main>"] == pytest.approx(widths["all"])
    empty = ElementTree.fromstring(flame_graph.svg(_profile(), "nothing"))
    assert any("no samples" in (t.text or "") for t in empty.iter(SVG + "text"))


def spin_in_the_unit_test(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_the_worker_sampler_sees_a_busy_thread_and_one_runs_at_a_time() -> None:
    stop = threading.Event()
    busy = threading.Thread(target=spin_in_the_unit_test, args=(stop,), name="busy-one")
    busy.start()

    async def twice() -> tuple[pb.ProcessProfile, pb.ProcessProfile]:
        request = pb.ProfileRequest(pid=os.getpid(), duration=0.5, rate=200)
        first = asyncio.ensure_future(cpu_profile.profile(request, "WORKER"))
        await asyncio.sleep(0)  # the first has taken the sampler
        second = await cpu_profile.profile(request, "WORKER")
        return await first, second

    try:
        first, second = asyncio.run(twice())
    finally:
        stop.set()
        busy.join()
    assert first.error == "" and first.sampler == "self" and first.samples > 0
    spinning = [s for s in first.stacks if "spin_in_the_unit_test" in s.stack]
    assert spinning and all(s.stack.startswith("thread busy-one;") for s in spinning)
    assert "being profiled already" in second.error
    assert not any("ember-profiler" in s.stack for s in first.stacks)  # not itself


def test_the_task_log_index_reads_each_tasks_own_bytes(tmp_path) -> None:
    out_path, err_path = str(tmp_path / "w.out"), str(tmp_path / "w.err")
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        index = TaskLogIndex(out_path, err_path, out, err)
        os.write(out, b"before any task\n")
        index.started(b"a")
        os.write(out, b"a says hi\n")
        os.write(err, b"a warns\n")
        index.ended(b"a")
        index.started(b"b")
        os.write(out, b"b is running\n")
        a, b = index.read(b"a"), index.read(b"b")
        assert (a.found, a.out, a.err) == (True, "a says hi\n", "a warns\n")
        assert b.out == "b is running\n" and b.err == ""  # still running: to the end so far
        assert not index.read(b"c").found
    finally:
        os.close(out)
        os.close(err)
