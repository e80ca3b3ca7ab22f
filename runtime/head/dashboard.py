"""The head's dashboard: one page, and a JSON API under ``/api/`` that serves the same data.

It runs on the standard library's threaded HTTP server: the page needs no framework, and a
framework's import would cost the head's start-up more than the page is worth. Handlers ask
the head's event loop for what they show (``cluster_queries``), so the data is read where it
lives.

The dashboard shows everything a driver could learn and more, so it asks for the cluster token
when the cluster has one (as a bearer token, or once through the page's form, which sets a
cookie derived from the token), and it listens on 127.0.0.1 unless told otherwise. Ray's
dashboard accepted anyone, and was exploited for it (CVE-2023-48022).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping
from importlib import resources as package_files
from typing import TYPE_CHECKING, Any

import grpc

from ember.runtime.head import cluster_inspection, cluster_queries, task_detail, worker_profiles
from ember.runtime.objects import ids, memory_report
from ember.runtime.wire import http_server, profile_formats
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.head.head import Head
    from ember.runtime.head.job_manager import JobManager
    from ember.runtime.head.metric_history import MetricHistory

log = logging.getLogger("ember.runtime.head.dashboard")

COOKIE = "ember_session"
ANSWER_TIMEOUT = 15.0
JOB_LOG_TAIL = 64 << 10  # bytes of a job's output the jobs view shows
SESSION_SECONDS = 12 * 3600  # a login lasts a working day
MAX_LOGIN_BODY = 4096


def reached_from_outside(port: int, environ: Mapping[str, str] = os.environ) -> str:
    """How to open the dashboard from outside the cluster, when this head runs in a Kubernetes
    pod (every container there has ``KUBERNETES_SERVICE_HOST``): through the head Service. The
    operator names that Service as it names the head pod (``<cluster>-head``, the pod's
    ``POD_NAME``); "" outside Kubernetes."""
    if not environ.get("KUBERNETES_SERVICE_HOST"):
        return ""
    service = environ.get("POD_NAME") or "<cluster>-head"
    return f"from outside the cluster, through the head Service: kubectl port-forward svc/{service} {port}"


def session_cookie(token: str, expires: int | None = None) -> str:
    """What the login cookie holds: when it expires, and a MAC of that by the token (so the
    token itself is not kept, and a stolen cookie stops working)."""
    if expires is None:
        expires = int(time.time()) + SESSION_SECONDS
    mac = hmac.new(token.encode(), f"ember-dashboard-session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def valid_cookie(token: str, value: str, now: float | None = None) -> bool:
    expires, _, _ = value.partition(".")
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return False
    if int(expires) <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(value.encode(), session_cookie(token, int(expires)).encode())


class DashboardServer(http_server.GuardedServer, http.server.HTTPServer):
    who = "dashboard"


class Dashboard:
    def __init__(
        self, head: Head, loop: asyncio.AbstractEventLoop, token: Callable[[], str],
        jobs: JobManager | None = None, history: MetricHistory | None = None,
    ) -> None:
        self.head = head
        self.jobs = jobs
        self.history = history
        self.loop = loop
        self.token = token
        self.port = 0
        self._server: DashboardServer | None = None
        self.page = package_files.files("ember.runtime.head").joinpath("dashboard.html").read_bytes()
        self.static = _static_files()

    # ------------------------------------------------------------------ serving

    def start(self, host: str, port: int) -> int:
        """Listen on ``port``, or on any free port if it is taken (several local clusters)."""
        handler = http_server.guard_handler(_handler_for(self))
        try:
            server = DashboardServer((host, port), handler)
        except OSError as error:
            if port == 0:
                raise
            log.warning("dashboard: port %d on %s is taken (%s); using another", port, host, error)
            server = DashboardServer((host, 0), handler)
        self._server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, name="ember-dashboard", daemon=True).start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ answers

    def authorized(self, headers: Any) -> bool:
        token = self.token()
        if not token:
            return True
        bearer = headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and hmac.compare_digest(bearer[7:].encode(), token.encode()):
            return True
        cookies = headers.get("Cookie", "")
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and valid_cookie(token, value):
                return True
        return False

    def on_loop(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(ANSWER_TIMEOUT)

    def api(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        head = self.head

        async def now(value: Callable[[], Any]) -> Any:
            return value()

        if path == "overview":
            return 200, self.on_loop(lambda: cluster_queries.overview(head))
        if path == "nodes":
            return 200, self.on_loop(lambda: cluster_queries.nodes(head))
        if path == "workers":
            return 200, self.on_loop(lambda: cluster_queries.workers(head))
        if path == "tasks":
            return 200, self.on_loop(lambda: cluster_queries.tasks(head))
        if path == "actors":
            return 200, self.on_loop(lambda: now(lambda: cluster_queries.actors(head)))
        if path == "logs":
            logs = self.on_loop(lambda: cluster_queries.cluster_logs(head))
            return 200, [
                {
                    "node": node.node_id.hex()[:12],
                    "node_address": node.node_address,
                    "error": node.error,
                    "files": [{"name": f.name, "size": f.size, "modified": f.modified} for f in node.files],
                }
                for node in logs.nodes
            ]
        if path == "logs/tail":
            request = pb.NodeTailRequest(
                node=query.get("node", ""),
                tail=pb.TailRequest(name=query.get("name", ""), lines=int(query.get("lines", "100"))),
            )
            try:
                reply = self.on_loop(lambda: cluster_queries.tail(head, request))
            except cluster_queries.NodeNotFound as missing:
                return 404, {"error": str(missing)}
            except grpc.aio.AioRpcError as refused:  # the agent's refusal, said to the page
                return 404, {"error": refused.details() or refused.code().name}
            return 200, {"text": reply.text}
        if path in ("timeline", "timeline/trace"):
            seconds = _number(query, "seconds", cluster_inspection.TIMELINE_SECONDS)
            if seconds is None or seconds <= 0:
                return 400, {"error": f"seconds must be a positive number, not {query.get('seconds')!r}"}
            if path == "timeline":
                return 200, self.on_loop(lambda: cluster_inspection.timeline(head, seconds))
            return 200, self.on_loop(lambda: cluster_inspection.chrome_trace(head, seconds))
        if path == "stacks":
            pid = _number(query, "pid", 0)
            if pid is None or pid < 0 or pid != int(pid):
                return 400, {"error": f"pid must be a process id, not {query.get('pid')!r}"}
            asked = pb.StackRequest(node=query.get("node", ""), pid=int(pid))
            try:
                reply = self.on_loop(lambda: cluster_inspection.stacks(head, asked))
            except cluster_queries.NodeNotFound as missing:
                return 404, {"error": str(missing)}
            return 200, cluster_inspection.stacks_view(reply)
        if path == "history":
            return self._history(query)
        if path == "memory":
            return self._memory(query)
        if path == "jobs":
            return 200, self.on_loop(lambda: now(self._jobs))
        if path == "jobs/logs":
            return self.on_loop(lambda: now(lambda: self._job_log(query.get("id", ""))))
        inspected = self._inspection_api(path, query)
        if inspected is not None:
            return inspected
        return 404, {"error": f"no API /api/{path}"}

    def _history(self, query: dict[str, str]) -> tuple[int, Any]:
        """The charts' figures after ``since`` (seconds since the epoch; all of the last hour
        without it), read on the head's loop, where they are sampled."""
        since = _number(query, "since", 0.0)
        if since is None or since < 0:
            return 400, {"error": f"since must be seconds since the epoch, not {query.get('since')!r}"}
        history = self.history
        if history is None:
            return 404, {"error": "this head keeps no metric history"}

        async def view() -> Any:
            return history.view(since)

        return 200, self.on_loop(view)
    # ------------------------------------------------------------------ profiles and details

    def _inspection_api(self, path: str, query: dict[str, str]) -> tuple[int, Any] | None:
        """``/api/profile`` (a worker's CPU profile), ``/api/task/<id>`` and ``/api/actor/<id>``
        (the detail pages); None for any other path."""
        head = self.head
        if path == "profile":
            pid = _number(query, "pid", 0)
            duration = _number(query, "duration", profile_formats.DEFAULT_DURATION)
            if pid is None or pid <= 0 or pid != int(pid):
                return 400, {"error": f"pid must be a process id, not {query.get('pid')!r}"}
            if duration is None:
                return 400, {"error": f"duration must be a number of seconds, not {query.get('duration')!r}"}
            asked = pb.ProfileRequest(
                node=query.get("node", ""), pid=int(pid), duration=duration, sampler=query.get("sampler", "")
            )
            try:
                asked = profile_formats.checked(asked)
                reply = asyncio.run_coroutine_threadsafe(
                    worker_profiles.profile(head, asked), self.loop
                ).result(asked.duration + ANSWER_TIMEOUT + worker_profiles.ANSWER_SLACK)
            except profile_formats.BadProfileRequest as bad:
                return 400, {"error": str(bad)}
            except cluster_queries.NodeNotFound as missing:
                return 404, {"error": str(missing)}
            return 200, worker_profiles.profile_view(reply)
        kind, _, given = path.partition("/")
        if kind not in ("task", "actor") or not given:
            return None
        try:
            wanted = task_detail.parse_id(given, ids.TASK_ID_SIZE, kind)  # actor ids have the same size
        except task_detail.BadId as bad:
            return 400, {"error": str(bad)}
        if kind == "task":
            found = self.on_loop(lambda: task_detail.task(head, wanted))
            absent = f"no node keeps task {given} (they keep the latest tasks that ended, and those waiting and running)"
        else:
            found = self.on_loop(lambda: task_detail.actor(head, wanted))
            absent = f"no actor {given} in this cluster"
        return (200, found) if found is not None else (404, {"error": absent})

    def _jobs(self) -> list[dict[str, Any]]:
        """Submitted jobs, newest first, as ``ember job list`` shows them."""
        if self.jobs is None:
            return []
        found = []
        for record in sorted(self.jobs.jobs.values(), key=lambda r: -r.info.submit_time):
            info = record.info
            found.append({
                "submission_id": info.submission_id,
                "status": pb.JobStatus.Name(info.status).removeprefix("JOB_"),
                "entrypoint": info.entrypoint,
                "message": info.message,
                "error_type": info.error_type,
                "submit_time": info.submit_time,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "exit_code": info.exit_code if info.HasField("exit_code") else None,
                "node": info.node_address,
                "entrypoint_resources": dict(info.entrypoint_shape.quantities),
                "metadata": dict(info.metadata),
                "log_bytes": record.log_bytes,
            })
        return found

    def _memory(self, query: dict[str, str]) -> tuple[int, Any]:
        """Every live object, grouped and sorted as asked (``ember memory``'s report)."""
        group_by = memory_report.option(query.get("group_by", "node"))
        sort_by = memory_report.option(query.get("sort_by", "size"))
        try:
            memory_report.check_options(group_by, sort_by)
        except memory_report.MemoryReportError as wrong:
            return 400, {"error": str(wrong)}
        listing = self.on_loop(lambda: cluster_queries.cluster_objects(self.head))
        return 200, memory_report.build(listing, group_by, sort_by).as_json()

    def _job_log(self, submission_id: str) -> tuple[int, Any]:
        """The end of a job's output (the last ``JOB_LOG_TAIL`` bytes)."""
        record = self.jobs.jobs.get(submission_id) if self.jobs is not None else None
        if record is None or self.jobs is None:
            return 404, {"error": f"no job with submission id {submission_id!r}"}
        start = max(0, record.log_bytes - JOB_LOG_TAIL)
        data = self.jobs.store.read(submission_id, start, JOB_LOG_TAIL)
        return 200, {"text": data.decode(errors="replace"), "truncated": start > 0}


# The charting library the page draws with, served by the head itself (nothing is fetched
# from elsewhere at run time): uPlot, MIT licensed, its files and licence vendored as they ship.
STATIC_FILES = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}


def _static_files() -> dict[str, tuple[bytes, str]]:
    """``/static/NAME`` -> (its bytes, its content type), read once from the package."""
    folder = package_files.files("ember.runtime.head").joinpath("static")
    return {name: (folder.joinpath(name).read_bytes(), kind) for name, kind in STATIC_FILES.items()}


WRONG_TOKEN = "wrong token: it is the cluster token ember start --head printed"


def _refusal(headers: Any) -> str:
    """Why a request without a valid token is refused: a token that was sent and is wrong says
    so (the page shows it above its login form), rather than asking for a token again."""
    if headers.get("Authorization", "").startswith("Bearer "):
        return WRONG_TOKEN
    if any(part.strip().startswith(COOKIE + "=") for part in headers.get("Cookie", "").split(";")):
        return "the dashboard login expired (or the cluster's token changed): log in again"
    return "the cluster token is needed: log in, or send Authorization: Bearer TOKEN"


def _number(query: dict[str, str], key: str, default: float) -> float | None:
    """``query[key]`` as a number (``default`` when absent); None when it is not one."""
    text = query.get(key)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _handler_for(dashboard: Dashboard) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "ember-dashboard"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("dashboard %s: %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any, extra: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(value).encode(), "application/json", extra)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(200, dashboard.page, "text/html; charset=utf-8")
                return
            if url.path.startswith("/static/"):
                # Public library code, like the page: no token needed, no cluster data in it.
                found = dashboard.static.get(url.path[len("/static/"):])
                if found is None:
                    self._json(404, {"error": f"nothing at {url.path}"})
                else:
                    self._send(200, found[0], found[1])
                return
            if not url.path.startswith("/api/"):
                self._json(404, {"error": f"nothing at {url.path}"})
                return
            if not dashboard.authorized(self.headers):
                self._json(401, {"error": _refusal(self.headers)})
                return
            query = dict(urllib.parse.parse_qsl(url.query))
            try:
                status, value = dashboard.api(url.path[len("/api/"):], query)
            except Exception as error:  # noqa: BLE001 - one failed view must not kill the server
                log.exception("dashboard: %s failed", url.path)
                status, value = 500, {"error": f"{type(error).__name__}: {error}"}
            self._json(status, value)

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/api/login":
                self._json(404, {"error": f"nothing to post at {self.path}"})
                return
            declared = self.headers.get("Content-Length", "0").strip() or "0"
            if not declared.isascii() or not declared.isdigit():
                # Nothing of the body is read: the connection ends with the answer.
                self.close_connection = True
                self._json(400, {"error": f"Content-Length must be a number of bytes, not {declared[:40]!r}"})
                return
            if int(declared) > MAX_LOGIN_BODY:
                self.close_connection = True
                self._json(413, {"error": f"a login is at most {MAX_LOGIN_BODY} bytes, not {declared}"})
                return
            try:
                given = str(json.loads(self.rfile.read(int(declared)) or b"{}").get("token", ""))
            except (ValueError, AttributeError):
                given = ""
            token = dashboard.token()
            if token and not hmac.compare_digest(given.encode(), token.encode()):
                self._json(401, {"error": WRONG_TOKEN})
                return
            cookie = (
                f"{COOKIE}={session_cookie(token)}; Max-Age={SESSION_SECONDS}; HttpOnly; "
                f"SameSite=Strict; Path=/{'; Secure' if http_server.scheme() == 'https' else ''}"
                if token else ""
            )
            self._json(200, {"ok": True}, {"Set-Cookie": cookie} if cookie else None)

    return Handler
