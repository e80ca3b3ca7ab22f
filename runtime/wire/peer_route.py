"""How this process dials a cluster address: straight to it, or through the head's relay.

Inside the cluster every process dials node agents, workers and drivers directly. A driver
outside it (a laptop behind ``kubectl port-forward``) can reach only the head's client port, so
it installs a route here (``relay_client.HeadRelay.route``) that maps each cluster address to
a Unix socket of its own, whose connections the relay carries to that address.

The route is consulted when a connection is opened (a gRPC channel, a task channel), never per
message, and it is unset in every process but such a driver: the inside path stays as it was.
A process has one route, as it has one owner (``context.current_core``).
"""

from __future__ import annotations

from collections.abc import Callable

Route = Callable[[str], "str | None"]

_route: Route | None = None


def set_route(route: Route | None) -> None:
    """Install (or with None, remove) the mapping from cluster addresses to local sockets."""
    global _route
    _route = route


def local_socket(address: str) -> str | None:
    """The path of the Unix socket that reaches ``address``, or None to dial it directly."""
    route = _route
    return route(address) if route is not None else None
