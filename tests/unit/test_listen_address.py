"""Where servers listen for the host a node advertises."""

from __future__ import annotations

import socket

from ember.runtime.wire.listen_address import bind_host, host_port, open_host, tcp_listener


def test_loopback_hosts_stay_on_loopback() -> None:
    assert bind_host("127.0.0.1") == "127.0.0.1"
    assert bind_host("127.0.0.2") == "127.0.0.2"
    assert bind_host("::1") == "::1"
    assert bind_host("localhost") == "localhost"


def test_other_hosts_listen_on_every_interface() -> None:
    assert bind_host("10.244.1.7") == "0.0.0.0"
    assert bind_host("192.0.2.2") == "0.0.0.0"
    assert bind_host("fd00::7") == "::"
    assert bind_host("[fd00::7]") == "::"
    assert bind_host("0.0.0.0") == "0.0.0.0"
    # A name that does not resolve (yet) is not taken for loopback.
    assert bind_host("head.ember-test.invalid") == "0.0.0.0"


def test_a_server_on_every_interface_is_opened_at_the_advertised_host() -> None:
    assert open_host("0.0.0.0", "10.244.1.7") == "10.244.1.7"  # a pod: its IP
    assert open_host("::", "fd00::7") == "fd00::7"
    assert open_host("127.0.0.1", "10.244.1.7") == "127.0.0.1"  # bound to one: that one
    assert open_host("0.0.0.0", "0.0.0.0") == socket.gethostname()  # nothing better to say


def test_host_port_brackets_ipv6() -> None:
    assert host_port("10.0.0.1", 10001) == "10.0.0.1:10001"
    assert host_port("::", 80) == "[::]:80"
    assert host_port("[::1]", 80) == "[::1]:80"


def test_tcp_listener_binds_what_bind_host_says() -> None:
    with tcp_listener("127.0.0.1") as loopback, tcp_listener("198.51.100.9") as wildcard:
        assert loopback.getsockname()[0] == "127.0.0.1"
        assert wildcard.getsockname()[0] == "0.0.0.0"
        assert wildcard.family == socket.AF_INET
