"""A driver joining a cluster: its I/O thread, its CoreWorker server, its session with the head.

The driver's session with the head lasts as long as the driver: when it ends (the driver exits,
crashes or is killed) the head tells every node to stop the job's workers.

Before joining, the driver checks that it runs the cluster's Python and ember versions and
settles whether it is outside the cluster (``join_checks``). Outside, it reaches everything
through the head's relay (``relay_client``): its server listens on a Unix socket, the head
listens on the cluster's network for it, and every address it dials is routed through the head.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import Any

import grpc

from ember.runtime.core import join_checks
from ember.runtime.core.core_service import CoreWorkerService, print_logs
from ember.runtime.core.owner import Owner
from ember.runtime.core.relay_client import HeadRelay
from ember.runtime.objects.exceptions import RuntimeConnectionError
from ember.runtime.wire import peer_route, reachability, rpc
from ember.runtime.wire.event_loop import IoThread
from ember.runtime.wire.listen_address import bind_host
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

log = logging.getLogger("ember.runtime.core.driver")

CONNECT_TIMEOUT = 15.0


def reachable_host(head_address: str) -> str:
    """The local address the head's network sees us by (loopback for a local head)."""
    host = head_address.rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class DriverConnection:
    def __init__(
        self,
        head_address: str,
        namespace: str,
        local_agent: str | None = None,
        log_to_driver: bool = True,
        via_head: bool | None = None,
    ) -> None:
        self.head_address = head_address
        self.io = IoThread("ember-driver-io")
        self.owner: Owner | None = None
        self.relay: HeadRelay | None = None
        self.channels = rpc.Channels()
        try:
            view = self.io.run(self._first_view(), timeout=CONNECT_TIMEOUT + 5)
            join_checks.check_versions(head_address, view)
            outside = join_checks.via_head_setting(via_head)
            if outside is None:
                outside = local_agent is None and join_checks.is_outside(head_address, view)
            self.outside = outside
            # Outside, the cluster cannot tell where we are: no host of ours means anything there.
            self.host = "" if outside else reachable_host(head_address)
            address, job_id, agent, node = self.io.run(
                self._connect(namespace, local_agent, log_to_driver), timeout=CONNECT_TIMEOUT + 5
            )
        except BaseException:
            self.io.run(self._close_links(), timeout=5.0)
            self.io.stop()
            raise
        self.job_id = job_id
        self.address = address
        self.namespace = namespace
        self.local_agent = agent
        code_paths = []
        if sys.argv and sys.argv[0] and os.path.exists(sys.argv[0]):
            code_paths.append(os.path.dirname(os.path.abspath(sys.argv[0])))
        code_paths.append(os.getcwd())
        job = pb.JobConfig(
            job_id=job_id,
            driver_address=address,
            code_paths=code_paths,
            working_dir=os.getcwd() if self.host == "127.0.0.1" else "",
            namespace=namespace,
        )
        self.node_id = node.node_id
        self.owner = Owner(
            self.io, address, job, agent, head_address, node.node_id, node.store_dir, "driver"
        )

    async def _first_view(self) -> pb.ClusterView:
        """The cluster's view, waiting for the head to answer: its versions and nodes.

        A refused connection fails at once, naming the address; only a host that does not
        answer at all is waited for (``reachability``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        try:
            await reachability.check(self.head_address, CONNECT_TIMEOUT)
        except reachability.Unreachable as error:
            raise RuntimeConnectionError(
                f"cannot reach the ember head at {self.head_address}: {error}"
            ) from None
        left = max(1.0, deadline - loop.time())
        try:
            view: pb.ClusterView = await self.channels.head(self.head_address).GetClusterView(
                pb.Empty(), wait_for_ready=True, timeout=left
            )
        except grpc.aio.AioRpcError as error:
            why = _why(error)
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                why = (
                    f"something accepts connections there but did not answer as an ember head "
                    f"within {CONNECT_TIMEOUT:g}s (another program's port? TLS on one side only?)"
                )
            raise RuntimeConnectionError(
                f"cannot reach the ember head at {self.head_address}: {why}"
            ) from None
        return view

    async def _connect(
        self, namespace: str, local_agent: str | None, log_to_driver: bool
    ) -> tuple[str, bytes, str, pb.NodeInfo]:
        sink = (lambda batch: print_logs(batch, self.host)) if log_to_driver else None
        server = rpc.server(f"driver pid {os.getpid()}")
        rpc_pb.add_CoreWorkerServicer_to_server(
            CoreWorkerService(lambda: self.owner, log_sink=sink), server
        )
        if self.outside:
            self.relay = HeadRelay(self.head_address)
            address = await self.relay.start()
            peer_route.set_route(self.relay.route)
            rpc.bind_unix(server, self.relay.server_socket)
            await server.start()
            self._server = server
            local_agent = None
        else:
            port = rpc.bind(server, bind_host(self.host), 0)
            await server.start()
            self._server = server
            address = f"{self.host}:{port}"
        head = self.channels.head(self.head_address)
        try:
            call = head.DriverSession(
                pb.DriverHello(
                    address=address, namespace=namespace, pid=os.getpid(), host=self.host
                ),
                wait_for_ready=True,
                timeout=None,
            )
            first = await asyncio.wait_for(call.read(), CONNECT_TIMEOUT)
            if first is grpc.aio.EOF:
                raise RuntimeConnectionError(f"the head at {self.head_address} closed the session")
        except (TimeoutError, grpc.aio.AioRpcError) as error:
            raise RuntimeConnectionError(
                f"cannot reach the ember head at {self.head_address}: {_why(error)}"
            ) from None
        self._session = call
        self._session_watch = asyncio.ensure_future(self._watch_session(call, first.job_id))
        node = await self._find_local_node(head, local_agent)
        return address, first.job_id, node.address, node

    async def _find_local_node(self, head: rpc_pb.HeadStub, agent: str | None) -> pb.NodeInfo:
        """The node this driver submits through: the one started for it, or one on its host.
        On no node of the cluster, it submits through any node and has no object store of
        its own (the returned info then has no store directory)."""
        deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT
        while True:
            view = await head.GetClusterView(pb.Empty(), timeout=CONNECT_TIMEOUT)
            alive = [n for n in view.nodes if n.alive]
            for node in alive:
                if agent is not None and node.info.address == agent:
                    return node.info
            if agent is None:
                for node in alive:
                    if node.info.host == self.host and not self.outside:
                        return node.info
                if alive:
                    entry = pb.NodeInfo()
                    entry.CopyFrom(alive[0].info)
                    entry.store_dir = ""
                    entry.node_id = b""
                    return entry
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeConnectionError(
                    f"the cluster at {self.head_address} has no nodes to run tasks on"
                )
            await asyncio.sleep(0.05)

    async def _watch_session(self, call: grpc.aio.UnaryStreamCall, job_id: bytes) -> None:
        """Wait for the session with the head to end; said once, and every call says it after.

        The job does not outlive its head: a restarted head knows nothing of it (only detached
        actors are taken back, with a state directory), so the driver does not re-join."""
        try:
            while (await call.read()) is not grpc.aio.EOF:
                pass
            reason = "it closed the session"
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED:
                return
            reason = _why(error)
        except asyncio.CancelledError:
            return
        why = (
            f"lost the head at {self.head_address} ({reason}): it stopped or restarted, and this "
            f"driver's job ended with it; call ember.shutdown(), then ember.init() to start a "
            f"new job"
        )
        log.warning("driver pid %d (job %s): %s", os.getpid(), job_id.hex(), why)
        if self.owner is not None:
            self.owner.cluster_lost(why)

    def cluster_view(self) -> pb.ClusterView:
        view: pb.ClusterView = self.head_call("GetClusterView", pb.Empty())
        return view

    def head_call(self, method: str, request: Any) -> Any:
        """A unary call to the head from the user's thread; a clear error if it cannot be made."""

        async def call() -> Any:
            return await getattr(self.channels.head(self.head_address), method)(request, timeout=10.0)

        try:
            return self.io.run(call())
        except grpc.aio.AioRpcError as error:
            raise RuntimeConnectionError(
                f"cannot reach the ember head at {self.head_address}: {_why(error)}"
            ) from None

    def close(self) -> None:
        if self.owner is not None:
            self.owner.shutdown()

        async def close() -> None:
            self._session_watch.cancel()
            self._session.cancel()
            await self._server.stop(0.2)
            await self._close_links()

        try:
            self.io.run(close(), timeout=3.0)
        except Exception:
            log.debug("error while closing the driver connection", exc_info=True)
        self.io.stop()

    async def _close_links(self) -> None:
        await self.channels.close()
        if self.relay is not None:
            peer_route.set_route(None)
            await self.relay.close()
            self.relay = None


def _why(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    if isinstance(error, asyncio.TimeoutError):
        return "no answer in time"
    return str(error)
