"""A worker's task channel, reached without the token: idle connections, a frame declared huge
and a forged log line cost the worker nothing lasting, and it keeps running tasks."""

from __future__ import annotations

import glob
import os
import selectors
import socket
import time

import ember
from ember.runtime.core import context
from ember.runtime.wire import auth, task_channel
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.security.conftest import (
    CLUSTER_DESCRIPTORS,
    actor_info,
    alive,
    close_all,
    flood,
    reset_peak,
    split,
    usage,
)


@ember.remote
class Target:
    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return "pong"


def _hello(address: str, token: bytes, owner: str = "127.0.0.1:1") -> pb.ChannelWelcome:
    """A raw hello; the worker's welcome (an error, when it refuses)."""
    core = context.require_core()
    with socket.create_connection(split(address), timeout=30) as sock:
        sock.sendall(task_channel.encode(pb.ChannelHello(token=token, job=core.job_config, owner_address=owner)))
        reader = task_channel.FrameReader()
        frames: list[bytes] = []
        while not frames:
            data = sock.recv(65536)
            assert data, "closed without a welcome"
            frames = reader.feed(data)
        return pb.ChannelWelcome.FromString(frames[0])


def test_idle_connections_neither_kill_nor_fill_a_worker(few_descriptors: object) -> None:
    """Before: each connection that never said hello was kept for good, until accept() failed
    with EMFILE and the worker died. Now they are capped and dropped after a few seconds."""
    target = Target.remote()
    pid = ember.get(target.pid.remote())
    address = actor_info("Target", pid).channel
    before = usage(pid)
    idle = flood(address, 3 * CLUSTER_DESCRIPTORS)
    selector = selectors.DefaultSelector()
    for sock in idle:
        selector.register(sock, selectors.EVENT_READ)
    most = before.descriptors
    dropped = 0
    try:
        deadline = time.monotonic() + 90
        # Until the worker drops a silent connection of ours (EOF where we sent nothing), or dies.
        while not dropped and alive(pid) and time.monotonic() < deadline:
            most = max(most, usage(pid).descriptors)
            for key, _ in selector.select(0.2):
                try:
                    if key.fileobj.recv(1) == b"":  # type: ignore[union-attr]
                        dropped += 1
                except (ConnectionError, BlockingIOError):
                    dropped += 1
                selector.unregister(key.fileobj)
        assert alive(pid), f"the worker died under {len(idle)} idle connections (it held {most} descriptors)"
        assert dropped, "no idle connection was ever dropped"
        assert most <= before.descriptors + task_channel.UNWELCOMED_CAP + 16, (before, most)
        # It still runs tasks, flood or not.
        assert ember.get(target.ping.remote(), timeout=120) == "pong"
        print(f"worker descriptors: {before.descriptors} before, at most {most} under {len(idle)} idle connections")
    finally:
        selector.close()
        close_all(idle)
    # New owners get in again.
    assert _hello(address, auth.token().encode()).error == ""
    assert ember.get(target.ping.remote()) == "pong"


def test_a_frame_declared_huge_is_refused_before_its_bytes_are_kept(few_descriptors: object) -> None:
    """Before: the worker buffered a whole frame (up to 2 GiB) before parsing the hello in it."""
    target = Target.remote()
    pid = ember.get(target.pid.remote())
    address = actor_info("Target", pid).channel
    reset_peak(pid)
    before = usage(pid)
    sent = 0
    chunk = b"\0" * (1 << 20)
    with socket.create_connection(split(address), timeout=30) as sock:
        try:
            sock.sendall(task_channel.HEADER.pack(task_channel.MAX_FRAME))
            for _ in range(64):
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            refused = sock.recv(1) == b""
        except ConnectionResetError:
            refused = True
        assert refused, f"the worker took {sent >> 20} MiB of a frame nobody authenticated"
    after = usage(pid)
    grew = (after.peak_kib - before.rss_kib) >> 10
    print(f"worker peak: {before.rss_kib >> 10} MiB before, +{grew} MiB after {sent >> 20} MiB sent")
    assert grew < 16, f"the worker's memory grew by {grew} MiB"
    assert alive(pid) and ember.get(target.ping.remote()) == "pong"


def test_an_owner_address_cannot_forge_a_log_line(few_descriptors: object) -> None:
    """Before: a newline in a refused hello's owner_address went into the worker's log as is,
    making a second line of the caller's choosing."""
    target = Target.remote()
    pid = ember.get(target.pid.remote())
    address = actor_info("Target", pid).channel
    forged = "2030-01-01 00:00:00,000 INFO worker FORGED: the cluster token is hunter2"
    owner = f"10.0.0.1:1\n{forged}"
    assert _hello(address, b"wrong-token-of-enough-length", owner=owner).error
    logs = glob.glob(os.path.join(few_descriptors.session_dir, "logs", f"worker-*-{pid}.*"))  # type: ignore[attr-defined]
    assert logs
    for path in logs:
        with open(path, errors="replace") as f:
            for line in f:
                assert not line.startswith(forged[:30]), f"{path}: {line!r}"
    # With the token too, such an address is refused, saying why.
    refused = _hello(address, auth.token().encode(), owner=owner)
    assert "owner_address" in refused.error and "HOST:PORT" in refused.error, refused.error
    assert ember.get(target.ping.remote()) == "pong"


def test_log_arguments_are_escaped() -> None:
    import logging

    from ember.runtime.wire import log_lines

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "from %s: %d", ("a\nb\x1b[2J", 3), None)
    assert log_lines.EscapeControlCharacters().filter(record)
    assert record.getMessage() == r"from a\nb\x1b[2J: 3"
