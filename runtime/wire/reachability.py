"""Whether anything listens at an address, told apart before a gRPC call waits for it.

A gRPC channel hides why it cannot connect: dialled with ``wait_for_ready`` it retries until
its deadline and then says ``DEADLINE_EXCEEDED``, whether the port was refused at once (a wrong
port, a cluster that is not running) or the host never answered (a machine that is down, a
firewall that drops packets). The first is a mistake to say at once; only the second is worth
the wait. So callers that join a head (drivers, ``ember status``, ``ember start --address``)
open one plain TCP connection first: a refusal, a name that does not resolve or a network that
cannot be reached fails in milliseconds with words for what happened; only silence uses up the
timeout, and then says so.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any


class Unreachable(ConnectionError):
    """Nothing answers at the address; the message says which of the ways it failed."""


def split(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host may be in brackets) as ``(host, port)``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise Unreachable(f"{address!r} is not an address: give HOST:PORT")
    return host.strip("[]"), int(port)


def refused(address: str) -> str:
    return f"nothing is listening at {address} (connection refused)"


def silent(address: str, timeout: float) -> str:
    host = split(address)[0]
    return (
        f"the host {host} did not answer within {timeout:g}s (neither accepted nor refused a "
        f"connection to {address}: it may be down, or a firewall drops what is sent to it)"
    )


async def check(address: str, timeout: float) -> None:
    """Return once a TCP connection to ``address`` is accepted (and closed again); raise
    ``Unreachable`` at once when it is refused or cannot be tried, after ``timeout`` seconds
    when nothing answers. A name with several addresses (``localhost``: ``::1`` and
    ``127.0.0.1``) is refused only when every one of them refuses."""
    host, port = split(address)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError:
        raise Unreachable(f"cannot resolve the host {host!r} of {address} within {timeout:g}s") from None
    except socket.gaierror as error:
        raise Unreachable(f"cannot resolve the host {host!r} of {address}: {error.strerror}") from None
    try:
        await asyncio.wait_for(_first_accepted(infos, address), timeout)
    except TimeoutError:
        raise Unreachable(silent(address, timeout)) from None


async def _first_accepted(infos: list[tuple[Any, ...]], address: str) -> None:
    reasons = []
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, sockaddr)
            return
        except OSError as error:
            reasons.append(error)
        finally:
            sock.close()
    if reasons and all(r.errno == errno.ECONNREFUSED for r in reasons):
        raise Unreachable(refused(address))
    why = "; ".join(sorted({r.strerror or str(r) for r in reasons})) or "no address to try"
    raise Unreachable(f"cannot connect to {address}: {why}")


def check_now(address: str, timeout: float) -> None:
    """``check`` from synchronous code that has no event loop running (the CLI)."""
    asyncio.run(check(address, timeout))
