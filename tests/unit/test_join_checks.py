"""What a driver settles before joining: versions (refused with both named) and whether it is
outside the cluster (it dials a node agent; one that does not answer means outside)."""

from __future__ import annotations

import socket

import pytest

from ember.runtime import __version__
from ember.runtime.core import join_checks
from ember.runtime.objects.exceptions import VersionMismatchError
from ember.runtime.wire.protocol import ember_pb2 as pb


def view(python: str = "", ember: str = "", nodes: list[str] | None = None, head: str = "") -> pb.ClusterView:
    return pb.ClusterView(
        python_version=python,
        version=ember,
        head_address=head,
        nodes=[pb.NodeView(alive=True, info=pb.NodeInfo(address=a)) for a in nodes or []],
    )


def test_matching_versions_pass() -> None:
    here = join_checks.python_version()
    join_checks.check_versions("h:1", view(here, __version__))


def test_another_python_is_refused_naming_both() -> None:
    with pytest.raises(VersionMismatchError) as raised:
        join_checks.check_versions("head:10001", view("3.11", "0.1.0"), python="3.12", ember="0.1.0")
    message = str(raised.value)
    assert "this driver runs Python 3.12 and ember 0.1.0" in message
    assert "the ember cluster at head:10001 runs Python 3.11 and ember 0.1.0" in message


def test_another_ember_is_refused_naming_both() -> None:
    with pytest.raises(VersionMismatchError, match=r"ember 0\.2\.0.*ember 0\.1\.0"):
        join_checks.check_versions("head:10001", view("3.11", "0.1.0"), python="3.11", ember="0.2.0")


def test_a_head_that_reports_no_versions_is_refused() -> None:
    with pytest.raises(VersionMismatchError, match="does not report its versions"):
        join_checks.check_versions("head:10001", view())


def test_the_setting_wins_over_finding_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(join_checks.ENV_VIA_HEAD, raising=False)
    assert join_checks.via_head_setting(None) is None
    assert join_checks.via_head_setting(True) is True
    monkeypatch.setenv(join_checks.ENV_VIA_HEAD, "1")
    assert join_checks.via_head_setting(None) is True
    assert join_checks.via_head_setting(False) is False
    monkeypatch.setenv(join_checks.ENV_VIA_HEAD, "0")
    assert join_checks.via_head_setting(None) is False


def test_a_node_that_answers_means_inside_and_none_means_outside() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    up = f"127.0.0.1:{listening.getsockname()[1]}"
    down = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now: connection refused, as from a laptop
    try:
        assert not join_checks.is_outside("localhost:10001", view(nodes=[up]))
        assert not join_checks.is_outside("localhost:10001", view(nodes=[down, up]))
        assert join_checks.is_outside("localhost:10001", view(nodes=[down]))
        # No node yet: the head's own address as the cluster knows it decides.
        assert not join_checks.is_outside(up, view(head=up))
        assert join_checks.is_outside("localhost:10001", view(head=down))
    finally:
        listening.close()
