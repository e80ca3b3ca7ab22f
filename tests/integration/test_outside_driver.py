"""A driver outside the cluster, through the head's client port only (a laptop behind
``kubectl port-forward``). A head and two node agents on other loopback addresses, with their own
token; the driver is a process of its own, told to go through the head, and watched from here:
it must never hold a TCP connection to any port but the head's, nor listen on one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from ember.runtime import launcher, session
from ember.runtime.wire import auth, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from tests.conftest import REPO, wait_until_gone
from tests.integration.test_drain import _wait_nodes
from tests.proc_sockets import socket_rows

pytestmark = pytest.mark.slow

LISTEN = "0A"
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "0A": "LISTEN"}


class Cluster:
    def __init__(self) -> None:
        self.session_dir = session.new_session_dir()
        self.processes: list[launcher.LocalProcesses] = []
        self.previous = auth.token()
        auth.set_token(auth.generate())
        self.env = dict(os.environ, EMBER_TOKEN=auth.token())
        self.env.pop("EMBER_VIA_HEAD", None)
        head = launcher.start_head(self.session_dir)
        self.processes.append(head)
        self.head_address = head.head_address
        for host in ("127.0.0.2", "127.0.0.3"):
            self.processes.append(
                launcher.start_agent(self.session_dir, self.head_address, host=host, num_cpus=2)
            )
        _wait_nodes(self.head_address, 2)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        auth.set_token(self.previous)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    try:
        yield started
    finally:
        started.stop()
    assert wait_until_gone(started.session_dir) == []


# ------------------------------------------------------------------ watching a process's sockets


def tcp_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(local, remote, state) of each TCP socket the process holds, IPv4 and IPv6."""
    return [(_endpoint(local), _endpoint(remote), state) for _, local, remote, state in socket_rows(pid)]


def _endpoint(hex_endpoint: str) -> str:
    address, port = hex_endpoint.split(":")
    if len(address) == 8:
        host = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
    else:
        host = f"[{address}]"
    return f"{host}:{int(port, 16)}"


class SocketWatch:
    """Samples a process's TCP sockets every few milliseconds while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: set[tuple[str, str, str]] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.update(tcp_sockets(self.pid))
            self.samples += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------ the driver

DRIVER = r"""
import os, sys
import numpy as np
import ember

ctx = ember.init(sys.argv[1], via_head=True)
assert ctx["_extra"]["via_head"], ctx

@ember.remote
def add(x, y):
    return x + y

@ember.remote
def fan_out(n):
    return sum(ember.get([add.remote(i, 1) for i in range(n)]))

@ember.remote
def total(array):
    return float(array.sum())

@ember.remote
def make(n):
    return np.full(n, 3.0)

@ember.remote
def first_of(array):
    return float(array[0])

@ember.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self, k):
        self.n += k
        return self.n

print("tasks", sum(ember.get([add.remote(i, i) for i in range(50)])), flush=True)
print("nested", ember.get(fan_out.remote(10)), flush=True)
counter = Counter.remote()
print("actor", ember.get([counter.add.remote(2) for _ in range(3)]), flush=True)

MB = 1 << 20
sent = np.arange(200 * MB // 8, dtype=np.float64)
ref = ember.put(sent)                              # 200 MB up, through the head
print("put", ember.get(total.remote(ref)) == float(sent.sum()), flush=True)
back = ember.get(ref)                              # and back down
print("get-put", bool(np.array_equal(back, sent)), flush=True)
made = make.remote(200 * MB // 8)                  # 200 MB made in the cluster
print("get", float(ember.get(made).sum()), flush=True)
print("borrowed", ember.get(first_of.remote(made)), flush=True)   # a result another task reads
nodes = sorted(n["NodeManagerAddress"] for n in ember.nodes())
print("nodes", ",".join(nodes), flush=True)
print("done", flush=True)
sys.stdin.readline()   # the test looks at this process's sockets now
ember.shutdown()
"""


def test_a_driver_outside_reaches_everything_through_the_head_port(cluster: Cluster) -> None:
    head_port = cluster.head_address.rpartition(":")[2]
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, f"ember://{cluster.head_address}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=str(REPO), env=cluster.env,
    )
    watch = SocketWatch(driver.pid)
    try:
        assert driver.stdout is not None and driver.stdin is not None
        lines = []
        while True:
            line = driver.stdout.readline()
            if not line:
                break
            lines.append(line.split())
            if line.strip() == "done":
                break
        at_the_end = tcp_sockets(driver.pid)
        driver.stdin.write("bye\n")
        driver.stdin.flush()
        _, err = driver.communicate(timeout=60)
    finally:
        watch.stop()
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err
    total_200mb = float(np.arange(200 * (1 << 20) // 8, dtype=np.float64).sum())
    assert lines == [
        ["tasks", str(sum(2 * i for i in range(50)))],
        ["nested", str(sum(range(1, 11)))],
        ["actor", "[2,", "4,", "6]"],
        ["put", "True"],
        ["get-put", "True"],
        ["get", str(3.0 * 200 * (1 << 20) // 8)],
        ["borrowed", "3.0"],
        ["nodes", "127.0.0.2,127.0.0.3"],
        ["done"],
    ], err
    assert total_200mb > 0
    assert "through the head" in err
    # The key property: one TCP peer, the head's client port; no TCP port listened on.
    assert watch.samples > 10 and at_the_end
    seen = watch.seen | set(at_the_end)
    listening = [s for s in seen if s[2] == LISTEN]
    assert not listening, f"the driver listened on {listening}"
    elsewhere = [
        (local, remote, TCP_STATES.get(state, state))
        for local, remote, state in seen
        if remote.rpartition(":")[2] != head_port
    ]
    assert not elsewhere, f"the driver connected elsewhere than the head port {head_port}: {elsewhere}"


def test_an_inside_driver_still_goes_direct(cluster: Cluster) -> None:
    """Not told, a driver that reaches the nodes talks to them itself: the relay costs a hop."""
    script = (
        "import sys, ember\n"
        "ctx = ember.init(sys.argv[1])\n"
        "print(ctx['_extra']['via_head'], ember.get(ember.remote(lambda: 7).remote()))\n"
        "ember.shutdown()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"ember://{cluster.head_address}"],
        capture_output=True, text=True, timeout=60, cwd=str(REPO), env=cluster.env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "7"]


def test_the_head_relays_only_to_the_cluster_and_only_with_the_token(cluster: Cluster) -> None:
    import socket

    stranger = socket.create_server(("127.0.0.1", 0))  # not a process of the cluster
    elsewhere = f"127.0.0.1:{stranger.getsockname()[1]}"
    agent = cluster.processes[1].agent_address
    try:
        assert _tunnel_error(cluster.head_address, elsewhere) == grpc.StatusCode.PERMISSION_DENIED
        assert _tunnel_error(cluster.head_address, "example.com:443") == grpc.StatusCode.PERMISSION_DENIED
        assert _tunnel_error(cluster.head_address, agent) is None  # a node agent: allowed
        saved = auth.token()
        auth.set_token("not-the-token")
        try:
            assert _tunnel_error(cluster.head_address, agent) == grpc.StatusCode.UNAUTHENTICATED
        finally:
            auth.set_token(saved)
    finally:
        stranger.close()


def _tunnel_error(head_address: str, target: str) -> grpc.StatusCode | None:
    """Open a tunnel to ``target`` and send an HTTP/2 preface (a gRPC peer answers with its
    settings); None if bytes came back."""
    import asyncio

    async def attempt() -> grpc.StatusCode | None:
        channel = rpc.open_channel(head_address)
        try:
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"

            async def opening() -> Any:
                yield pb.TunnelChunk(open=pb.TunnelOpen(target=target), data=preface)
                await asyncio.Event().wait()  # keep our side open until the answer is read

            call = rpc_pb.RelayStub(channel).Tunnel(opening(), timeout=10)
            try:
                reply = await call.read()
            except grpc.aio.AioRpcError as error:
                return error.code()
            call.cancel()
            assert reply is not grpc.aio.EOF and reply.data
            return None
        finally:
            await channel.close()

    return asyncio.run(attempt())


def test_a_driver_of_another_ember_version_is_refused_with_both_named(cluster: Cluster, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from ember.runtime.core import join_checks\n"
        "join_checks.__version__ = '0.0.1'   # as if this laptop had an older ember\n"
        "import ember\n"
        "try:\n"
        "    ember.init(sys.argv[1], via_head=True)\n"
        "except ember.exceptions.VersionMismatchError as error:\n"
        "    print(error)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"ember://{cluster.head_address}"],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path), env=cluster.env,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    python = "{}.{}".format(*sys.version_info[:2])
    from ember.runtime import __version__

    assert f"this driver runs Python {python} and ember 0.0.1" in done.stdout
    assert f"runs Python {python} and ember {__version__}" in done.stdout
    assert cluster.head_address in done.stdout
