"""A CPU profile's bounds and the files it is written as (``ember profile``, the dashboard).

A profile travels as collapsed stacks (``frame;frame;frame`` with a sample count, outermost
frame first), the format py-spy's ``--format raw`` and Brendan Gregg's ``flamegraph.pl`` use:
whoever took the samples (py-spy from outside, or the process itself), the head, the CLI and
the dashboard read the same thing. From it this module writes:

- ``collapsed``: the lines themselves;
- ``speedscope``: the JSON file speedscope.app opens
  (https://www.speedscope.app/file-format-schema.json): one sampled profile per thread, frames
  shared, weights in seconds;
- SVG: ``flame_graph.svg``.

The bounds live here because every hop enforces them: the node agent, the worker and the head
refuse a longer duration or a higher rate, and the sampler keeps at most ``MAX_STACKS``
distinct stacks and ``MAX_TEXT`` characters of them (the rest is counted under one frame), so
an answer fits a control message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ember.runtime.wire.protocol import ember_pb2 as pb

DEFAULT_DURATION = 10.0  # seconds
MAX_DURATION = 60.0
DEFAULT_RATE = 100  # samples a second
MAX_RATE = 1000
MAX_STACKS = 4000  # distinct stacks kept per profile
MAX_DEPTH = 256  # frames kept per stack (the innermost)
MAX_TEXT = 1 << 20  # characters of stacks per profile
OVERFLOW_FRAME = "(other stacks: beyond the profile's size bound)"
FORMATS = ("speedscope", "svg", "collapsed")
SAMPLERS = ("", "auto", "py-spy", "self")


class BadProfileRequest(ValueError):
    pass


def checked(request: pb.ProfileRequest) -> pb.ProfileRequest:
    """``request`` with its defaults filled in, or ``BadProfileRequest`` naming what is wrong."""
    if not request.pid:
        raise BadProfileRequest("a profile names the process to sample: give its pid")
    duration = request.duration or DEFAULT_DURATION
    if not 0 < duration <= MAX_DURATION:
        raise BadProfileRequest(
            f"a profile lasts more than 0 and at most {MAX_DURATION:g} seconds, not {request.duration:g}"
        )
    rate = request.rate or DEFAULT_RATE
    if rate > MAX_RATE:
        raise BadProfileRequest(f"a profile samples at most {MAX_RATE} times a second, not {rate}")
    if request.sampler not in SAMPLERS:
        raise BadProfileRequest(
            f"sampler must be one of auto, py-spy, self, not {request.sampler!r}"
        )
    filled = pb.ProfileRequest()
    filled.CopyFrom(request)
    filled.duration = duration
    filled.rate = rate
    return filled


def parse_collapsed(text: str) -> tuple[list[pb.StackCount], int]:
    """py-spy's raw output as stack counts (bounded as the sampler bounds its own), and the
    samples counted under ``OVERFLOW_FRAME``."""
    counts: dict[str, int] = {}
    size = dropped = 0
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if stack not in counts and (len(counts) >= MAX_STACKS or size + len(stack) > MAX_TEXT):
            dropped += int(count)
            continue
        if stack not in counts:
            size += len(stack)
        counts[stack] = counts.get(stack, 0) + int(count)
    if dropped:
        counts[OVERFLOW_FRAME] = counts.get(OVERFLOW_FRAME, 0) + dropped
    return [pb.StackCount(stack=stack, count=count) for stack, count in counts.items()], dropped


def collapsed(profile: pb.ProcessProfile) -> str:
    """The collapsed lines, most samples first."""
    ordered = sorted(profile.stacks, key=lambda s: (-s.count, s.stack))
    return "".join(f"{s.stack} {s.count}\n" for s in ordered)


def _frame(label: str) -> dict[str, Any]:
    """``name (file:line)`` as a speedscope frame (``name`` alone when it has no place)."""
    name, space, place = label.rpartition(" (")
    if space and place.endswith(")"):
        file, colon, line = place[:-1].rpartition(":")
        if colon and line.isdigit():
            return {"name": name, "file": file, "line": int(line)}
    return {"name": label}


def speedscope(profile: pb.ProcessProfile, title: str = "") -> dict[str, Any]:
    """The profile as a speedscope file: one sampled profile per thread (the stacks' first
    frame names the thread), in seconds."""
    frames: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    threads: dict[str, tuple[list[list[int]], list[float]]] = {}
    interval = 1.0 / (profile.rate or DEFAULT_RATE)
    for entry in sorted(profile.stacks, key=lambda s: s.stack):
        labels = entry.stack.split(";")
        thread, labels = (labels[0], labels[1:]) if labels[0].startswith("thread ") else ("all threads", labels)
        sample = []
        for label in labels:
            at = index.get(label)
            if at is None:
                at = index[label] = len(frames)
                frames.append(_frame(label))
            sample.append(at)
        samples, weights = threads.setdefault(thread, ([], []))
        samples.append(sample)
        weights.append(entry.count * interval)
    name = title or f"{profile.kind.lower() or 'process'} pid {profile.pid}"
    profiles = [
        {
            "type": "sampled",
            "name": f"{name}: {thread}",
            "unit": "seconds",
            "startValue": 0,
            "endValue": sum(weights),
            "samples": samples,
            "weights": weights,
        }
        for thread, (samples, weights) in sorted(threads.items())
    ]
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": f"{name}, {profile.duration:g} s sampled by {profile.sampler or 'nothing'}",
        "activeProfileIndex": _busiest(profiles),
        "exporter": "ember profile",
    }


def _busiest(profiles: Iterable[dict[str, Any]]) -> int:
    totals = [p["endValue"] for p in profiles]
    return totals.index(max(totals)) if totals else 0


def speedscope_text(profile: pb.ProcessProfile, title: str = "") -> str:
    return json.dumps(speedscope(profile, title), separators=(",", ":"))
