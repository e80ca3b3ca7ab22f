"""``init`` and ``shutdown``: starting or joining a cluster from a driver.

``init()`` with no address starts a local cluster (a head and a node agent as processes of
their own, tied to this driver by a lifeline pipe) and connects to it. With an address
(``"ember://HOST:PORT"``, ``"auto"``, or ``EMBER_ADDRESS``) it joins a running cluster.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from ember import job_environment, runtime_env_upload
from ember.runtime import __version__, launcher, session
from ember.runtime.core import context
from ember.runtime.core.driver import DriverConnection
from ember.runtime.core.owner import Owner
from ember.runtime.wire import auth, http_server, resources
from ember.runtime.wire import runtime_env as env_spec
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember")

ENV_ADDRESS = "EMBER_ADDRESS"
SCHEME = "ember://"


@dataclass
class _State:
    connection: DriverConnection
    processes: launcher.LocalProcesses | None
    context: EmberContext


_state: _State | None = None
_lock = threading.RLock()


@dataclass
class EmberContext:
    """What ``init`` returns; its repr shows where the driver is connected, as Ray's does."""

    address: str
    dashboard_url: str | None
    python_version: str
    ember_version: str
    session_dir: str
    node_id: str
    namespace: str
    _extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __enter__(self) -> EmberContext:
        return self

    def __exit__(self, *_: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()


def _parse_address(address: str) -> str:
    if address.startswith(SCHEME):
        address = address[len(SCHEME):]
    if ":" not in address:
        raise ValueError(f"address {address!r} must be HOST:PORT or ember://HOST:PORT")
    return address


def _resolve_address(address: str | None) -> str | None:
    """None means: start a local cluster."""
    if address is None:
        address = os.environ.get(ENV_ADDRESS) or None
        if address is None:
            return None
    if address == "local":
        return None
    if address == "auto":
        found = os.environ.get(ENV_ADDRESS) or session.read_current_cluster()
        if not found:
            raise ConnectionError(
                "init(address='auto') found no running cluster: start one with "
                "'ember start --head' or set EMBER_ADDRESS"
            )
        address = found
    return _parse_address(address)


def init(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict[str, float] | None = None,
    memory: int | None = None,
    object_store_memory: int | None = None,
    labels: dict[str, str] | None = None,
    ignore_reinit_error: bool = False,
    namespace: str | None = None,
    include_dashboard: bool | None = None,
    dashboard_host: str = "127.0.0.1",
    dashboard_port: int | None = None,
    log_to_driver: bool = True,
    logging_level: int | str = logging.INFO,
    via_head: bool | None = None,
    token: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    **unsupported: Any,
) -> EmberContext:
    """Start a local cluster, or connect to one, and make this process its driver.

    ``via_head=True`` (or ``EMBER_VIA_HEAD=1``) sends everything through the head's client
    port, for a driver outside the cluster (a laptop behind ``kubectl port-forward``);
    ``False`` never does. Left unset, a driver joining by address finds out: it is outside when
    no node of the cluster answers it directly. ``token`` is the cluster's (``ember token
    CLUSTER`` prints it from the cluster's Secret); without it, ``EMBER_TOKEN``, or the token of
    a cluster started on this machine.

    ``runtime_env`` is the job's: every task and actor of this driver runs in it, merged with
    what their options give (Ray's fields; local code is packed and uploaded here, once). In a
    submitted job's entrypoint it is merged with the job's own runtime_env."""
    global _state
    with _lock:
        if _state is not None:
            if ignore_reinit_error:
                log.info("ember.init() called again; using the existing connection")
                return _state.context
            raise RuntimeError(
                "Maybe you called ember.init twice by accident? This error can be suppressed "
                "with ember.init(ignore_reinit_error=True), or call ember.shutdown() first."
            )
        if context.current_core() is not None:
            raise RuntimeError("ember.init() inside a task or actor: the worker is connected already")
        for key, value in unsupported.items():
            if key in ("job_config", "_system_config") and not value:
                continue
            raise TypeError(f"ember.init() got an unsupported argument {key!r}")
        _configure_logging(logging_level)
        job_runtime_env = _job_runtime_env(runtime_env)
        head_address = _resolve_address(address)
        processes = None
        if token:
            auth.check_strength(token, "init(token=...)")
        auth.set_token(token if token is not None else _token_for(head_address))
        if head_address is None:
            processes = launcher.start(
                session.new_session_dir(),
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                memory=memory,
                object_store_memory=object_store_memory,
                resources=resources,
                labels=_checked_labels(labels),
                dashboard_host=dashboard_host,
                dashboard_port=-1 if include_dashboard is False else (
                    dashboard_port if dashboard_port is not None else launcher.DEFAULT_DASHBOARD_PORT
                ),
            )
            head_address = processes.head_address
            auth.set_token(processes.token)
        elif any(v is not None for v in (num_cpus, num_gpus, resources, object_store_memory, labels)):
            raise ValueError(
                "When connecting to an existing cluster, num_cpus, num_gpus, resources, "
                "object_store_memory and labels must not be provided: they belong to the nodes"
            )
        try:
            connection = DriverConnection(
                head_address,
                namespace or _anonymous_namespace(),
                local_agent=processes.agent_address if processes else None,
                log_to_driver=log_to_driver,
                via_head=via_head,
            )
            assert connection.owner is not None
            if job_runtime_env:
                try:
                    job_runtime_env = runtime_env_upload.resolve(job_runtime_env, connection.owner.upload_package)
                except BaseException:
                    connection.close()
                    raise
                connection.owner.runtime_env = env_spec.to_json(job_runtime_env)
            view = connection.cluster_view()
        except BaseException:
            if processes is not None:
                processes.stop()
            raise
        node_id = next(
            (n.info.node_id.hex() for n in view.nodes if n.info.address == connection.local_agent),
            "",
        )
        ctx = EmberContext(
            address=f"{SCHEME}{head_address}",
            dashboard_url=view.dashboard_address or None,
            python_version=".".join(map(str, sys.version_info[:3])),
            ember_version=__version__,
            session_dir=view.session_dir,
            node_id=node_id,
            namespace=connection.namespace,
            _extra={"include_dashboard": include_dashboard, "dashboard_host": dashboard_host,
                    "dashboard_port": dashboard_port, "via_head": connection.outside,
                    "runtime_env": job_runtime_env},
        )
        assert connection.owner is not None
        context.set_core(connection.owner)
        context.node_id = node_id
        _state = _State(connection, processes, ctx)
        dashboard = f"; dashboard at {http_server.scheme()}://{ctx.dashboard_url}" if ctx.dashboard_url else ""
        if processes is not None:
            log.info("Started a local ember cluster at %s (session %s)%s", ctx.address, ctx.session_dir, dashboard)
        elif connection.outside:
            log.info(
                "Connected to the ember cluster at %s, from outside it: everything goes through "
                "the head%s", ctx.address, dashboard,
            )
        else:
            log.info("Connected to the ember cluster at %s%s", ctx.address, dashboard)
        return ctx


def _job_runtime_env(given: dict[str, Any] | None) -> dict[str, Any]:
    """The driver's job-wide runtime_env: ``init``'s, merged (as Ray does) with the job's when
    this driver is a submitted job's entrypoint; a field both give differently is an error."""
    try:
        own = runtime_env_upload.checked(given, "init(runtime_env)")
    except env_spec.RuntimeEnvError as error:
        raise ValueError(str(error)) from None
    job = job_environment.runtime_env()
    if not job:
        return own
    override = os.environ.get(env_spec.OVERRIDE_JOB_ENV, "") not in ("", "0")
    try:
        return env_spec.merge_job(job, own, override)
    except env_spec.RuntimeEnvError as error:
        raise ValueError(str(error)) from None


def _token_for(head_address: str | None) -> str:
    """The token to present: the environment's, else — for the cluster ``ember start`` left
    running on this machine — the one in its session. A new local cluster gets a new one."""
    token = auth.from_environment()
    if token or head_address is None:
        return token
    return session.token_of_current_cluster(head_address)


def _anonymous_namespace() -> str:
    return f"anonymous-{os.urandom(4).hex()}"


def _configure_logging(level: int | str) -> None:
    logger = logging.getLogger("ember")
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s -- %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _checked_labels(labels: dict[str, str] | None) -> dict[str, str] | None:
    """The local node's labels (what ``label_selector`` matches), as plain strings."""
    if labels is None:
        return None
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError(f"ember.init(labels=...) takes a dict of strings to strings, got {labels!r}")
    return labels


def auto_init() -> Owner:
    """Ray starts a local cluster on the first ``.remote()`` without ``init``; so does ember."""
    with _lock:
        core = context.current_core()
        if core is None:
            init()
            core = context.require_core()
        return core


def is_initialized() -> bool:
    return _state is not None or context.current_core() is not None


def shutdown() -> None:
    """Disconnect, and stop every process ``init`` started."""
    global _state
    with _lock:
        state = _state
        if state is None:
            return
        _state = None
        context.set_core(None)
        try:
            state.connection.close()
        finally:
            if state.processes is not None:
                state.processes.stop()
                session.release(state.processes.session_dir)


atexit.register(shutdown)


def _connection() -> DriverConnection:
    if _state is None:
        raise RuntimeError("ember is not initialized: call ember.init() first")
    return _state.connection


def _view() -> pb.ClusterView:
    return _connection().cluster_view()


def head_call(method: str, request: Any) -> Any:
    """A unary call to the connected cluster's head (``ember.autoscaler`` and friends)."""
    return _connection().head_call(method, request)


def cluster_resources() -> dict[str, float]:
    """Total resources of the live nodes, as Ray reports them."""
    totals: dict[str, int] = {}
    for node in _view().nodes:
        if node.alive:
            resources.add(totals, resources.to_fixed(node.info.total.quantities))
    return resources.to_float(totals)


def available_resources() -> dict[str, float]:
    """Resources not in use right now (as last reported by the nodes)."""
    free: dict[str, int] = {}
    for node in _view().nodes:
        if node.alive:
            resources.add(free, resources.to_fixed(node.available.quantities))
    return {k: v for k, v in resources.to_float(free).items() if v > 0}


def nodes() -> list[dict[str, Any]]:
    """One dict per node, with Ray's keys and meanings: the address peers dial in
    ``NodeManagerAddress``, the machine's name (in Kubernetes the pod's, as ``kubectl get
    pods`` shows it) in ``NodeManagerHostname``, and in ``NodeName`` the address, which is
    Ray's default node name."""
    result = []
    for node in _view().nodes:
        info = node.info
        host, _, port = info.address.rpartition(":")
        result.append(
            {
                "NodeID": info.node_id.hex(),
                "Alive": node.alive,
                "NodeManagerAddress": info.host,
                "NodeManagerHostname": info.hostname or info.host,
                "NodeManagerPort": int(port) if port.isdigit() else 0,
                "NodeName": info.host,
                "Resources": dict(info.total.quantities),
                "Labels": dict(info.labels),
                "DeathReasonMessage": node.death_cause,
                "MetricsExportPort": info.metrics_port,
                "alive": node.alive,
            }
        )
    return result
