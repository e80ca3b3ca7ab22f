"""A process's own CPU profile (``ember profile``, where py-spy is missing or cannot attach).

A thread of its own reads ``sys._current_frames()`` ``rate`` times a second for the duration
and counts each thread's stack. The task keeps running on the main thread meanwhile: the
sampler takes the GIL for a few microseconds a sample, as any other thread would, and the
gRPC answer waits on the I/O thread's event loop without blocking it.

What it cannot see, py-spy can: native frames, and a task that holds the GIL in a C loop keeps
this thread from sampling at all (its samples are then missing, not wrong). Threads that wait
(in a selector, a lock, a queue: the worker's own I/O threads between messages, an idle main
thread) are left out unless ``idle`` is asked for, as py-spy leaves them out.

Memory is bounded: at most ``MAX_STACKS`` distinct stacks of at most ``MAX_DEPTH`` frames;
samples of further stacks are counted under one frame. One profile runs at a time per process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from types import CodeType, FrameType

from ember.runtime.wire import profile_formats
from ember.runtime.wire.protocol import ember_pb2 as pb

# Innermost Python frames of a thread that waits rather than works (file name's end, function).
WAITING = frozenset({
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("socket.py", "accept"),
    ("concurrent/futures/thread.py", "_worker"),
    # A thread whose target is C code (gRPC's poller) shows Thread.run innermost: it waits in C.
    ("threading.py", "run"),
})

_running = threading.Lock()


def _waiting(frame: FrameType) -> bool:
    code = frame.f_code
    filename = code.co_filename
    return any(name == code.co_name and filename.endswith(end) for end, name in WAITING)


def _label(code: CodeType) -> str:
    name = getattr(code, "co_qualname", code.co_name).replace(";", ":")
    return f"{name} ({code.co_filename.replace(';', ':')}:{code.co_firstlineno})"


def sample(request: pb.ProfileRequest, kind: str) -> pb.ProcessProfile:
    """Sample this process for ``request.duration`` seconds (blocking: run it on a thread of
    its own). ``request`` has been ``profile_formats.checked``."""
    interval = 1.0 / request.rate
    me = threading.get_ident()
    counts: dict[tuple[int, tuple[CodeType, ...]], int] = {}
    names: dict[int, str] = {}
    labels: dict[CodeType, str] = {}
    text = samples = dropped = 0
    started = time.time()
    begin = time.monotonic()
    deadline = begin + request.duration
    next_names = begin
    due = begin
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if now >= next_names:  # threads come and go; their names are read once a second
            names = {t.ident: t.name for t in threading.enumerate() if t.ident is not None}
            next_names = now + 1.0
        frames = sys._current_frames()
        walk: FrameType | None = None
        for ident in list(frames):
            walk = frames[ident]
            if ident == me or (not request.idle and _waiting(walk)):
                continue
            codes: list[CodeType] = []
            while walk is not None and len(codes) < profile_formats.MAX_DEPTH:
                codes.append(walk.f_code)
                walk = walk.f_back
            key = (ident, tuple(codes))
            count = counts.get(key)
            if count is None:
                if len(counts) >= profile_formats.MAX_STACKS or text > profile_formats.MAX_TEXT:
                    dropped += 1
                    continue
                text += sum(len(labels.get(code) or labels.setdefault(code, _label(code))) + 1 for code in codes)
                count = 0
            counts[key] = count + 1
        del frames  # no frame outlives its sample
        walk = None
        samples += 1
        due += interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            due = time.monotonic()  # behind (the GIL was busy): sample now, do not catch up
    profile = pb.ProcessProfile(
        pid=os.getpid(), kind=kind, sampler="self", started=started,
        duration=time.monotonic() - begin, rate=request.rate, samples=samples, dropped=dropped,
    )
    merged: dict[str, int] = {}
    for (ident, stack_codes), count in counts.items():
        thread = f"thread {names.get(ident, ident)}".replace(";", ":")
        stack = ";".join([thread, *(labels[code] for code in reversed(stack_codes))])
        merged[stack] = merged.get(stack, 0) + count
    if dropped:
        merged[profile_formats.OVERFLOW_FRAME] = dropped
    profile.stacks.extend(pb.StackCount(stack=s, count=c) for s, c in merged.items())
    return profile


async def profile(request: pb.ProfileRequest, kind: str) -> pb.ProcessProfile:
    """``sample`` on a thread of its own, awaited without blocking the event loop; one at a time."""
    try:
        request = profile_formats.checked(request)
    except profile_formats.BadProfileRequest as bad:
        return pb.ProcessProfile(pid=os.getpid(), kind=kind, error=str(bad))
    if not _running.acquire(blocking=False):
        return pb.ProcessProfile(
            pid=os.getpid(), kind=kind,
            error=f"{kind.lower()} pid {os.getpid()} is being profiled already; ask again when that ends",
        )
    loop = asyncio.get_running_loop()
    done: asyncio.Future[pb.ProcessProfile] = loop.create_future()

    def run() -> None:
        try:
            result = sample(request, kind)
        except BaseException as error:  # noqa: BLE001 - said to the asker, never lost
            result = pb.ProcessProfile(
                pid=os.getpid(), kind=kind, error=f"sampling failed: {type(error).__name__}: {error}"
            )
        finally:
            _running.release()
        def settle() -> None:
            if not done.done():
                done.set_result(result)

        loop.call_soon_threadsafe(settle)

    threading.Thread(target=run, name="ember-profiler", daemon=True).start()
    return await done
