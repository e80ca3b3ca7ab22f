"""Serving Prometheus metrics over HTTP (HTTPS with TLS) from the head and the node agents.

prometheus-client does the exposition and the HTTP server (a thread); ember only says what the
values are, through collectors that read the process's state when Prometheus scrapes. Reading
happens on the process's event loop (the state belongs to it), so a scrape never sees a dict
half-changed. The library is imported only once the process is serving: its import costs about
50 ms, which a cluster's start-up does not wait for. The HTTP server is ``http_server``'s: it
caps connections, drops idle ones, and speaks HTTPS when TLS is configured.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from ember.runtime import __version__
from ember.runtime.wire import http_server
from ember.runtime.wire.metrics_report import Totals

log = logging.getLogger("ember.runtime.metrics")

RPC_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

Family = Any  # a prometheus_client.metrics_core.Metric; the library is imported late
Snapshot = Callable[[], Coroutine[Any, Any, list[Family]]]
# Why the process is unhealthy, or None: read on the HTTP thread, so a plain attribute read.
Health = Callable[[], str | None]


class RpcLatency:
    """Time spent in each unary RPC handler of this process, by method."""

    def __init__(self) -> None:
        self.by_method: dict[str, Totals] = {}

    def observe(self, method: str, seconds: float) -> None:
        totals = self.by_method.get(method)
        if totals is None:
            totals = self.by_method[method] = Totals(RPC_BOUNDS)
        totals.observe(seconds)

    def families(self) -> list[Family]:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(
            "ember_rpc_server_latency_seconds",
            "Time a gRPC handler of this process took, by method (unary calls).",
            labels=["method"],
        )
        for method, totals in sorted(self.by_method.items()):
            family.add_metric([method], totals.exposition(), totals.sum)
        return [family]


def build_info(component: str) -> Family:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "ember_build_info",
        "Always 1; the labels say which ember and Python this process runs.",
        labels=["version", "python_version", "component"],
    )
    family.add_metric([__version__, platform.python_version(), component], 1.0)
    return family


class MetricsServer:
    """The HTTP endpoint; ``snapshot`` builds the families on the event loop at each scrape.

    ``/healthz`` answers 200 while ``health`` finds nothing wrong and 503 otherwise: it is the
    readiness probe of a worker pod, so a node whose object store broke stops being Ready in
    Kubernetes. It says only "ok" or "unhealthy" (no token is asked for it); the reason is for
    the authenticated ``ember health``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, snapshot: Snapshot, health: Health | None = None) -> None:
        self.loop = loop
        self.snapshot = snapshot
        self.health = health
        self.port = 0
        self._server: Any = None

    def collect(self) -> Iterable[Family]:
        future = asyncio.run_coroutine_threadsafe(self.snapshot(), self.loop)
        try:
            return future.result(timeout=10)
        except Exception:  # noqa: BLE001 - a scrape must get an answer, even a partial one
            log.exception("collecting metrics failed")
            return []

    async def start(self, host: str, port: int) -> int:
        """Listen (port 0: any free one); returns the port. Import and bind off the loop."""

        def serve() -> int:
            import socket
            import threading
            from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

            from prometheus_client import CollectorRegistry, make_wsgi_app

            registry = CollectorRegistry(auto_describe=False)
            registry.register(self)
            metrics = make_wsgi_app(registry)

            def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
                if environ.get("PATH_INFO") == "/healthz":
                    ok = self.health is None or not self.health()
                    start_response("200 OK" if ok else "503 Service Unavailable",
                                   [("Content-Type", "text/plain")])
                    return [b"ok\n" if ok else b"unhealthy\n"]
                return metrics(environ, start_response)

            class Server(http_server.GuardedServer, WSGIServer):
                who = "metrics endpoint"
                address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            class Quiet(WSGIRequestHandler):
                def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                    pass

            handler = http_server.guard_handler(Quiet)
            self._server = make_server(host, port, app, Server, handler_class=handler)
            threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True).start()
            return int(self._server.server_port)

        self.port = await asyncio.get_running_loop().run_in_executor(None, serve)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

