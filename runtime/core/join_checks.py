"""What a driver settles before it joins a cluster: matching versions, and inside or outside.

Versions: functions, classes and values travel cloudpickled between the driver and the
workers, and pickled code only loads in the Python (major.minor) that made it; the wire
protocol is ember's own. So a driver whose Python or ember version differs from the cluster's
is refused at once, with both versions named, instead of failing later in a worker with an
obscure unpickling error.

Inside or outside: a driver outside the cluster (a laptop behind ``kubectl port-forward``)
must send everything through the head (``relay_client``); one inside must not, since the relay
costs a hop. The user can say which (``init(via_head=...)``, ``EMBER_VIA_HEAD``); otherwise
the driver dials one node agent of the cluster with a short timeout, and is outside when it
cannot. A cluster with no node yet is asked through the head's own address as the cluster
knows it: a driver that dialed the head by that very address is inside.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from ember.runtime import __version__
from ember.runtime.objects.exceptions import VersionMismatchError
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.core.driver")

ENV_VIA_HEAD = "EMBER_VIA_HEAD"
PROBE_TIMEOUT = 1.0
PROBES = 3  # node agents tried before deciding the driver is outside


def python_version() -> str:
    return "{}.{}".format(*sys.version_info[:2])


def check_versions(
    head_address: str, view: pb.ClusterView, python: str | None = None, ember: str | None = None
) -> None:
    """Raise ``VersionMismatchError`` when this driver's Python or ember differs from the
    cluster's (``python`` and ``ember`` default to this process's)."""
    python = python or python_version()
    ember = ember or __version__
    cluster_python = view.python_version
    if not cluster_python:
        # A head from before versions were reported: an older ember by construction.
        raise VersionMismatchError(
            f"the ember cluster at {head_address} does not report its versions (ember older "
            f"than {ember}); this driver runs Python {python} and ember {ember}: connect with "
            f"the ember version the cluster runs"
        )
    if cluster_python == python and view.version == ember:
        return
    raise VersionMismatchError(
        f"this driver runs Python {python} and ember {ember}, but the ember cluster at "
        f"{head_address} runs Python {cluster_python} and ember {view.version}: code and values "
        f"travel pickled between them, so both must match; run this driver with Python "
        f"{cluster_python} and ember {view.version}"
    )


def via_head_setting(explicit: bool | None) -> bool | None:
    """What the user said: ``init(via_head=...)``, else ``EMBER_VIA_HEAD``; None: find out."""
    if explicit is not None:
        return explicit
    value = os.environ.get(ENV_VIA_HEAD, "").strip().lower()
    if not value:
        return None
    return value not in ("0", "false", "no", "off")


def is_outside(head_address: str, view: pb.ClusterView) -> bool:
    """Whether this process cannot reach the cluster's processes directly (blocking: it may
    wait up to ``PROBES * PROBE_TIMEOUT`` seconds)."""
    candidates = [n.info.address for n in view.nodes if n.alive][:PROBES]
    if not candidates:
        if not view.head_address or view.head_address == head_address:
            return False
        candidates = [view.head_address]
    for address in candidates:
        if _answers(address):
            return False
    log.info(
        "no process of the cluster answers at %s within %gs: this driver is outside the "
        "cluster and goes through the head at %s for everything (%s=0 turns this off)",
        ", ".join(candidates), PROBE_TIMEOUT, head_address, ENV_VIA_HEAD,
    )
    return True


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False
