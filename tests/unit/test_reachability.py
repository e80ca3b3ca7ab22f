"""Telling "nothing listens there" from "the host does not answer", on loopback sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ember.runtime.wire import reachability


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused, and no other process
    can take it while the test holds it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener never answers a new connection: its accept queue (backlog 0) is
    full with a connection nobody accepts, so the kernel drops further SYNs, as a firewall or
    a machine that is down does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_refused_connection_is_said_at_once_naming_the_address(closed_port: int) -> None:
    # An hour's timeout: only a refusal seen at once lets this test finish.
    with pytest.raises(reachability.Unreachable) as caught:
        reachability.check_now(f"127.0.0.1:{closed_port}", 3600)
    assert str(caught.value) == f"nothing is listening at 127.0.0.1:{closed_port} (connection refused)"


def test_a_name_is_refused_only_when_every_address_refuses(closed_port: int) -> None:
    with pytest.raises(reachability.Unreachable, match="connection refused"):
        reachability.check_now(f"localhost:{closed_port}", 3600)


def test_a_silent_host_is_waited_for_and_said_to_be_silent(silent_port: int) -> None:
    with pytest.raises(reachability.Unreachable) as caught:
        reachability.check_now(f"127.0.0.1:{silent_port}", 0.5)
    message = str(caught.value)
    assert message.startswith("the host 127.0.0.1 did not answer within 0.5s"), message
    assert "refused" in message and f"127.0.0.1:{silent_port}" in message


def test_a_listening_port_passes_and_bad_addresses_are_named() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        reachability.check_now(f"127.0.0.1:{listener.getsockname()[1]}", 5)
    with pytest.raises(reachability.Unreachable, match="'127.0.0.1' is not an address"):
        reachability.check_now("127.0.0.1", 5)
    with pytest.raises(reachability.Unreachable, match="cannot resolve the host 'no-such-host.invalid'"):
        reachability.check_now("no-such-host.invalid:10001", 5)
