"""Where a server listens, given the address it advertises.

A node advertises one host (``ember start --host``): peers dial it there. Listening only on that
address breaks the two ways a container is reached from outside: ``kubectl port-forward``
connects to 127.0.0.1 inside the pod, and a port Docker publishes arrives on the container's
interface through NAT, not necessarily on the advertised address. So a node that advertises a
non-loopback address listens on every interface (the cluster token guards every port), while a
node that advertises a loopback address — the local default — stays reachable from this machine
only.
"""

from __future__ import annotations

import ipaddress
import socket

ANY_IPV4 = "0.0.0.0"
ANY_IPV6 = "::"


def bind_host(advertised: str) -> str:
    """The host to bind for a server whose peers dial ``advertised``."""
    host = advertised.strip("[]")
    if host in (ANY_IPV4, ANY_IPV6):
        return host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host if _names_only_loopback(host) else ANY_IPV4
    if address.is_loopback:
        return host
    return ANY_IPV6 if address.version == 6 else ANY_IPV4


def open_host(bound: str, advertised: str) -> str:
    """The host users open a server bound to ``bound`` at: that one, or, for a server bound to
    every interface (``0.0.0.0`` opens nothing), the host this node advertises (in a pod its IP),
    else the machine's name."""
    if bound.strip("[]") not in (ANY_IPV4, ANY_IPV6, ""):
        return bound
    if advertised.strip("[]") not in (ANY_IPV4, ANY_IPV6, ""):
        return advertised
    return socket.gethostname()


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (as gRPC and URLs want it)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _names_only_loopback(name: str) -> bool:
    """A host name that resolves to loopback addresses only (``localhost``); an unresolvable
    name is not loopback, so that the node stays reachable when the name starts to resolve."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_loopback for info in infos
    )


def tcp_listener(advertised: str, port: int = 0) -> socket.socket:
    """A listening TCP socket for a plain-socket server (task channels, bulk transfers) whose
    peers dial ``advertised``."""
    host = bind_host(advertised)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)
