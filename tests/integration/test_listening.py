"""A node advertising a non-loopback address listens on every interface; a loopback one only
on loopback.

In a pod, ``kubectl port-forward`` dials 127.0.0.1 inside it, and Docker delivers a published
port on the container's interface: both miss a server bound to the advertised address alone.
Here a head and its node agent advertise this machine's default-interface address, and the
test reads every listening socket of their processes (head, agent, workers) from ``/proc``,
then connects through 127.0.0.1: a driver, and Prometheus scrapes.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import ember
from ember.runtime import launcher
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import processes_of_session, wait_until_gone
from tests.proc_sockets import socket_rows


def default_interface_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: routed, never reached
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of each TCP socket ``pid`` listens on, from /proc."""
    found = []
    for table, local, _, state in socket_rows(pid):
        if state != "0A":  # 0A: LISTEN
            continue
        address_hex, port_hex = local.split(":")
        if table == "tcp":
            address = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address_hex)[::-1])
        else:
            words = bytes.fromhex(address_hex)
            raw = b"".join(words[i : i + 4][::-1] for i in range(0, 16, 4))
            address = socket.inet_ntop(socket.AF_INET6, raw).removeprefix("::ffff:")
            # gRPC binds 0.0.0.0 as a dual-stack [::] socket: every interface too.
            address = "0.0.0.0" if address == "::" else address
        found.append((address, int(port_hex, 16)))
    return found


def listeners_by_role(session_dir: str) -> dict[str, list[tuple[str, int]]]:
    """The listening sockets of a session's processes, by what each process is."""
    roles: dict[str, list[tuple[str, int]]] = {}
    for pid in processes_of_session(session_dir):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "ember.runtime.head_main" in cmdline:
            role = "head"
        elif "ember.runtime.agent_main" in cmdline:
            role = "agent"
        else:
            role = "worker"  # the zygote and the workers forked from it
        roles.setdefault(role, []).extend(listening_sockets(pid))
    return roles


def wait_for_listeners(session_dir: str, counts: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Wait until each role listens on at least its count of sockets (workers start last)."""
    deadline = time.monotonic() + 30
    while True:
        roles = listeners_by_role(session_dir)
        if all(len(roles.get(role, [])) >= n for role, n in counts.items()):
            return roles
        if time.monotonic() > deadline:
            raise AssertionError(f"listeners of session {session_dir}: {roles}, wanted {counts}")
        time.sleep(0.1)


# head: gRPC and metrics; agent: gRPC, metrics, bulk transfers; a worker: gRPC and task channel.
EXPECTED = {"head": 2, "agent": 3, "worker": 2}


def start(tmp_path: Path, host: str, token: str) -> launcher.LocalProcesses:
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    return launcher.start(
        str(session_dir), host=host, num_cpus=1, dashboard_port=-1, token=token
    )


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value = auth.generate()
    monkeypatch.setenv(auth.ENV, value)
    yield value
    auth.set_token("")


@ember.remote
def where() -> str:
    return ember.get_runtime_context().get_node_id()


@ember.remote
class Tally:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return self.n


def test_a_node_advertising_its_network_address_is_reached_through_loopback(
    tmp_path: Path, token: str
) -> None:
    host = default_interface_address()
    if host is None:
        pytest.skip("this machine has no non-loopback address on a default route")
    processes = start(tmp_path, host, token)
    try:
        assert processes.head_address.startswith(f"{host}:")
        roles = wait_for_listeners(processes.session_dir, EXPECTED)
        every = [listener for listeners in roles.values() for listener in listeners]
        assert {address for address, _ in every} == {"0.0.0.0"}, roles

        head_port = int(processes.head_address.rsplit(":", 1)[1])
        ember.init(f"ember://127.0.0.1:{head_port}")
        try:
            view = ember.connection._view()  # type: ignore[attr-defined]
            node = next(n for n in view.nodes if n.alive)
            assert node.info.host == host  # advertised as given, reached through loopback
            assert ember.get(where.remote()) == node.info.node_id.hex()
            tally = Tally.remote()
            assert ember.get([tally.add.remote(2), tally.add.remote(3)]) == [2, 5]
            metrics_ports = [int(view.metrics_address.rsplit(":", 1)[1]), node.info.metrics_port]
        finally:
            ember.shutdown()
        for port in metrics_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                assert b"ember_" in reply.read()
    finally:
        processes.stop()
    assert wait_until_gone(processes.session_dir) == []


def test_a_loopback_node_listens_on_loopback_only(tmp_path: Path, token: str) -> None:
    host = default_interface_address()
    processes = start(tmp_path, "127.0.0.1", token)
    try:
        roles = wait_for_listeners(processes.session_dir, EXPECTED)
        every = [listener for listeners in roles.values() for listener in listeners]
        assert {address for address, _ in every} == {"127.0.0.1"}, roles
        if host is not None:
            for _, port in every:
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((host, port), timeout=5).close()
        # Still a working cluster on loopback.
        ember.init(f"ember://{processes.head_address}")
        try:
            view = ember.connection._view()  # type: ignore[attr-defined]
            assert any(n.alive and n.info.host == "127.0.0.1" for n in view.nodes)
            assert isinstance(view, pb.ClusterView)
            assert ember.get(where.remote())
        finally:
            ember.shutdown()
    finally:
        processes.stop()
    assert wait_until_gone(processes.session_dir) == []
