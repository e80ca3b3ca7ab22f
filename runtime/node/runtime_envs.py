"""Runtime environments on a node: code unpacked and virtualenvs built, once each, for the
workers that ask for them.

A lease request may name a runtime_env (``LeaseRequest.runtime_env``: canonical JSON, its code
already on the head as packages). Before a worker of that environment can be granted, the node
sets the environment up, while the request waits in the queue — never on a worker's path:

- ``working_dir`` and each of ``py_modules``: the package is downloaded from the head (or from
  an http(s) URL) and unpacked once into this node's cache, ``<cache>/packages/<sha256>``; a
  py_module that is a wheel is installed once with pip (``--no-deps --target``).
- ``pip`` or ``uv``: one virtualenv per distinct requirement list, ``<cache>/venvs/<hash>``,
  made from the node's Python with a ``.pth`` that adds the node's own site-packages *after*
  the venv's — ember, grpc and numpy stay importable, and what the venv installs wins — then
  the requirements installed into it by the node's pip (``pip --python``) or by ``uv``. It is
  ready once ember's worker imports with it, so a pin that breaks ember fails here, saying so.

Each part is made once and shared by every environment that names it; an environment is set up
once however many requests wait for it. Setup has a deadline (``config.setup_timeout_seconds``,
600 s by default, -1 for none): past it, the installer's process group is killed. A failure is
remembered for ``FAILURE_KEPT`` seconds, so that the requests for the environment in that time
fail at once with the same words rather than install the same broken thing again; after that a
request tries again (an index that was down may be back).

Where a worker of an environment comes from (``worker_pool.WorkerSetup``): an environment with
a virtualenv, or with ``env_vars``, gets workers that are processes of their own, started with
the venv's (or the node's) interpreter and with the variables in place from their first
instruction — a worker forked from the zygote would have numpy imported already, deaf to
``OMP_NUM_THREADS``, and a pinned package the zygote had imported would stay the cluster's
version. An environment of code only (``working_dir``, ``py_modules``) gets workers forked by
the zygote, as fast as the default ones, which move into its directory and path first thing.

The cache is collected: an environment that no live job asks for and no live worker runs is
dropped once it has been unused for ``EMBER_RUNTIME_ENV_CACHE_S`` (600 s: the next run of the
same program, a minute later, finds its virtualenv built), and then every package and venv no
remaining environment names leaves the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import site
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ember.runtime.node.worker_pool import WorkerSetup
from ember.runtime.wire import package_format
from ember.runtime.wire import runtime_env as env_spec

log = logging.getLogger("ember.runtime.node.runtime_envs")

DEFAULT_TIMEOUT = 600  # seconds, as Ray's
FAILURE_KEPT = 60.0  # seconds a failed setup is answered from memory
UNUSED_KEPT = float(os.environ.get("EMBER_RUNTIME_ENV_CACHE_S", "600"))
TAIL_LINES = 30
TAIL_BYTES = 4000
READY = ".ember-ready"  # written last into a venv that is whole
CLUSTER_PTH = "_ember_cluster.pth"
# A venv is ready when ember's worker imports in it with the venv's packages first.
WORKER_IMPORT = "import ember.runtime.worker_main"


class SetupFailed(Exception):
    """One step of a setup failed; the message says which and ends with the output's tail."""


@dataclass(eq=False)
class Environment:
    """One runtime_env on this node: being set up, ready (``setup``), or failed."""

    key: str
    spec: dict[str, Any]
    text: str
    node: str
    setup: WorkerSetup | None = None
    failure: str = ""
    failed_at: float = 0.0
    task: asyncio.Task[None] | None = None
    jobs: set[bytes] = field(default_factory=set)
    parts: set[str] = field(default_factory=set)  # cache directories it uses
    unused_since: float | None = None  # since when no job asks for it and no worker runs it

    @property
    def ready(self) -> bool:
        return self.setup is not None

    def describe(self) -> str:
        return f"runtime_env {self.key} ({env_spec.describe(self.spec)})"


Fetch = Callable[[str], Awaitable[bytes]]


class RuntimeEnvs:
    """The node's runtime environments and their cache under ``root``.

    ``fetch(uri)`` brings a package's bytes (from the head, or an http(s) URL); ``settled(env)``
    is told when an environment's setup ends, ready or failed."""

    def __init__(self, root: str, node: str, fetch: Fetch, settled: Callable[[Environment], None]) -> None:
        self.root = root
        self.node = node  # the node, for messages
        self.fetch = fetch
        self.settled = settled
        self.envs: dict[str, Environment] = {}
        self._by_text: dict[str, Environment] = {}
        self._making: dict[str, asyncio.Task[None]] = {}
        # Setups of parts, by kind (working_dir, py_module, wheel, pip, uv) and outcome.
        self.setups: Counter[tuple[str, str]] = Counter()

    # ------------------------------------------------------------------ asking for one

    def environment(self, text: str, job_id: bytes) -> Environment:
        """The environment a lease request names, its setup started if it is new here (or
        failed long enough ago to try again)."""
        env = self._by_text.get(text)
        if env is None:
            env = self._parse(text)
            self._by_text[text] = env
        env.jobs.add(job_id)
        env.unused_since = None
        if env.failure and time.monotonic() - env.failed_at > FAILURE_KEPT and env.spec:
            env.failure = ""
        if not env.ready and not env.failure and env.task is None:
            env.task = asyncio.ensure_future(self._set_up(env))
        return env

    def _parse(self, text: str) -> Environment:
        try:
            spec = env_spec.parse_json(text)
        except env_spec.RuntimeEnvError as error:
            key = hashlib.sha256(text.encode()).hexdigest()[:16]
            env = Environment(key, {}, text, self.node, failure=f"{self.node}: {error}")
            env.failed_at = time.monotonic()
            return env
        key = env_spec.identity(spec)
        known = self.envs.get(key)
        if known is not None:
            return known
        env = self.envs[key] = Environment(key, spec, text, self.node)
        return env

    def worker_failed(self, setup: WorkerSetup, how: str) -> Environment | None:
        """A worker of the environment ended before it was ready: the environment fails, with
        what the worker printed, rather than start workers that die one after the other."""
        env = self.envs.get(setup.key)
        if env is None or env.setup is not setup:
            return None
        env.setup = None
        env.failure = (
            f"{self.node}: a worker of {env.describe()} {how} before it was ready; its "
            f"output:\n{tail(setup.log_path)}"
        )
        env.failed_at = time.monotonic()
        log.error("%s", env.failure)
        return env

    # ------------------------------------------------------------------ setting one up

    async def _set_up(self, env: Environment) -> None:
        timeout = env.spec.get("config", {}).get("setup_timeout_seconds", DEFAULT_TIMEOUT)
        started = time.monotonic()
        log.info("%s: setting up %s", self.node, env.describe())
        try:
            env.setup = await asyncio.wait_for(self._build(env), None if timeout == -1 else timeout)
        except TimeoutError:
            env.failure = (
                f"{self.node}: setting up {env.describe()} took longer than {timeout}s "
                f"(config.setup_timeout_seconds); it was stopped. Its output so far:\n"
                f"{self._latest_output(env)}"
            )
        except SetupFailed as error:
            env.failure = f"{self.node}: cannot set up {env.describe()}: {error}"
        except Exception as error:  # noqa: BLE001 - whatever went wrong, the tasks must hear it
            log.exception("%s: setting up %s", self.node, env.describe())
            env.failure = f"{self.node}: cannot set up {env.describe()}: {type(error).__name__}: {error}"
        finally:
            env.task = None
        if env.failure:
            env.failed_at = time.monotonic()
            log.error("%s", env.failure)
        else:
            log.info("%s: %s ready in %.1fs", self.node, env.describe(), time.monotonic() - started)
        self.settled(env)

    async def _build(self, env: Environment) -> WorkerSetup:
        spec = env.spec
        for kind in ("packages", "wheels", "venvs"):
            os.makedirs(os.path.join(self.root, kind), exist_ok=True)
        cwd = ""
        paths: list[str] = []
        working_dir = spec.get("working_dir")
        if working_dir:
            cwd = await self._package(env, working_dir, "working_dir")
            paths.append(cwd)
        for index, module in enumerate(spec.get("py_modules", ())):
            paths.append(await self._module(env, module, f"py_modules[{index}]"))
        python = ""
        for tool in ("pip", "uv"):
            if tool in spec:
                python = os.path.join(await self._venv(env, tool, spec[tool]), "bin", "python")
        env_vars = spec.get("env_vars", {})
        if env_vars and not python:
            python = sys.executable
        log_path = os.path.join(self.root, f"workers-{env.key}.log")
        return WorkerSetup(
            key=env.key,
            runtime_env=env.text,
            env_vars=dict(env_vars),
            cwd=cwd,
            paths=tuple(paths),
            python=python,
            log_path=log_path,
            description=env.describe(),
        )

    async def _once(self, path: str, make: Callable[[], Awaitable[None]], done: Callable[[], bool]) -> None:
        """Make ``path`` unless it is made; one making at a time, whoever asks.

        Not shielded: an environment whose deadline passes stops the installer it waits for.
        Another environment that waited for the same part then makes it again, under its own
        deadline."""
        while not done():
            making = self._making.get(path)
            if making is None:
                making = self._making[path] = asyncio.ensure_future(make())
                making.add_done_callback(lambda _: self._making.pop(path, None))
            try:
                await making
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                # Stopped by another environment's deadline, not ours: make it again.

    async def _package(self, env: Environment, uri: str, field_name: str) -> str:
        """The directory a package (or a URL's zip) is unpacked in."""
        if package_format.is_package_uri(uri):
            target = os.path.join(self.root, "packages", package_format.digest_of(uri))
        elif uri.startswith(("https://", "http://")):
            target = os.path.join(self.root, "packages", "url-" + hashlib.sha256(uri.encode()).hexdigest())
        else:
            raise SetupFailed(
                f"{field_name} {uri!r} is neither a package URI nor an http(s) URL (a local "
                f"directory is packed and uploaded by the driver that names it)"
            )
        env.parts.add(target)
        kind = "working_dir" if field_name == "working_dir" else "py_module"

        async def make() -> None:
            try:
                data = await self.fetch(uri)
                await asyncio.to_thread(package_format.extract, data, target, not package_format.is_package_uri(uri))
            except (package_format.PackageError, OSError) as error:
                self.setups[(kind, "failed")] += 1
                raise SetupFailed(f"{field_name}: {error}") from None
            self.setups[(kind, "built")] += 1

        await self._once(target, make, lambda: os.path.isdir(target))
        return target

    async def _module(self, env: Environment, uri: str, field_name: str) -> str:
        """A py_module's directory on the import path: its package, or the wheel it holds
        installed (a package of one ``.whl`` is a wheel, as the client packs one)."""
        unpacked = await self._package(env, uri, field_name)
        members = os.listdir(unpacked)
        if not (len(members) == 1 and members[0].endswith(".whl")):
            return unpacked
        target = os.path.join(self.root, "wheels", os.path.basename(unpacked))
        env.parts.add(target)
        marker = os.path.join(target, READY)

        async def make() -> None:
            shutil.rmtree(target, ignore_errors=True)
            log_path = target + ".log"
            try:
                await run(
                    [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                     "--disable-pip-version-check", "--no-input", "--target", target,
                     os.path.join(unpacked, members[0])],
                    log_path, f"{field_name}: pip install of {members[0]}",
                )
            except SetupFailed:
                self.setups[("wheel", "failed")] += 1
                raise
            with open(marker, "w"):
                pass
            self.setups[("wheel", "built")] += 1

        await self._once(target, make, lambda: os.path.exists(marker))
        return target

    async def _venv(self, env: Environment, tool: str, value: Any) -> str:
        """The virtualenv of a pip or uv requirement list: made once per node."""
        packages, options, check = _requirements(tool, value)
        digest = hashlib.sha256(
            json.dumps([tool, packages, options, check, sys.executable, sys.version]).encode()
        ).hexdigest()[:24]
        path = os.path.join(self.root, "venvs", digest)
        env.parts.add(path)
        marker = os.path.join(path, READY)

        async def make() -> None:
            shutil.rmtree(path, ignore_errors=True)  # a venv left half-made
            try:
                await self._make_venv(path, tool, packages, options, check)
            except SetupFailed:
                self.setups[(tool, "failed")] += 1
                raise
            self.setups[(tool, "built")] += 1

        await self._once(path, make, lambda: os.path.exists(marker))
        return path

    async def _make_venv(
        self, path: str, tool: str, packages: list[str], options: list[str], check: bool
    ) -> None:
        log_path = path + ".log"
        if os.path.exists(log_path):
            os.unlink(log_path)
        await run([sys.executable, "-m", "venv", "--without-pip", path], log_path, "making the virtualenv")
        python = os.path.join(path, "bin", "python")
        site_dir = _site_packages(path)
        with open(os.path.join(site_dir, CLUSTER_PTH), "w") as pth:
            # After the venv's own: what the requirements install wins over the cluster's.
            for directory in cluster_site_dirs():
                pth.write(f"import site; site.addsitedir({directory!r})\n")
        requirements = os.path.join(path, "requirements.txt")
        with open(requirements, "w") as f:
            f.write("".join(line + "\n" for line in packages))
        if tool == "pip":
            installer = [sys.executable, "-m", "pip", "--python", python, "install",
                         "--disable-pip-version-check", "--no-input", "-r", requirements]
        else:
            uv = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
            if uv is None:
                raise SetupFailed("uv is not installed on this node (give pip instead, or put uv on the node's PATH)")
            installer = [uv, "pip", "install", "--python", python, "-r", requirements]
        await run([*installer, *options], log_path, f"{tool} install")
        if check and tool == "pip":
            await run([sys.executable, "-m", "pip", "--python", python, "check"], log_path, "pip check")
        await run([python, "-c", WORKER_IMPORT], log_path,
                  "ember's worker with the environment's packages (does a requirement pin a "
                  "version of one of ember's own dependencies?)")
        with open(os.path.join(path, READY), "w"):
            pass

    def _latest_output(self, env: Environment) -> str:
        """The tail of the newest installer log of the environment's parts."""
        logs = [p + ".log" for p in env.parts if os.path.exists(p + ".log")]
        if not logs:
            return "(no output)"
        return tail(max(logs, key=os.path.getmtime))

    # ------------------------------------------------------------------ the cache

    def job_finished(self, job_id: bytes) -> None:
        for env in self.envs.values():
            env.jobs.discard(job_id)
        for env in self._by_text.values():
            env.jobs.discard(job_id)

    async def collect(self, running: Iterable[WorkerSetup], keep: float | None = None) -> list[str]:
        """Drop the environments no live job asks for and no live worker runs (for ``keep``
        seconds, ``UNUSED_KEPT`` by default), then remove from disk every part no remaining
        environment uses. Returns what was removed."""
        keep = UNUSED_KEPT if keep is None else keep
        live = {setup.key for setup in running}
        now = time.monotonic()
        for text, env in list(self._by_text.items()):
            if env.jobs or env.key in live or env.task is not None:
                env.unused_since = None
                continue
            if env.unused_since is None:
                env.unused_since = now
            if now - env.unused_since >= keep:
                del self._by_text[text]
                if self.envs.get(env.key) is env:
                    del self.envs[env.key]
        used = set(self._making)
        for env in self.envs.values():
            used |= env.parts
        removed = []
        for kind in ("packages", "wheels", "venvs"):
            directory = os.path.join(self.root, kind)
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                base = path.removesuffix(".log")
                if base in used or name.startswith(".unpacking-"):
                    continue
                if os.path.isdir(path):
                    await asyncio.to_thread(shutil.rmtree, path, True)
                else:
                    os.unlink(path)
                removed.append(path)
        for name in os.listdir(self.root) if os.path.isdir(self.root) else ():
            if name.startswith("workers-") and name[8:-4] not in self.envs:
                os.unlink(os.path.join(self.root, name))
        if removed:
            log.info("%s: removed %d cached runtime_env part(s) no job uses", self.node, len(removed))
        return removed

    def close(self) -> None:
        """The agent stops: what it set up goes with it."""
        shutil.rmtree(self.root, ignore_errors=True)


def _requirements(tool: str, value: Any) -> tuple[list[str], list[str], bool]:
    """(requirement lines, installer options, pip check) of a pip or uv field."""
    if isinstance(value, Mapping):
        for unsupported in (f"{tool}_version",):
            if value.get(unsupported):
                raise SetupFailed(
                    f"{tool}.{unsupported} is not supported: the node's own {tool} installs"
                )
        packages = value["packages"]
        options = list(value.get(f"{tool}_install_options", value.get("pip_install_options", ())) or ())
        check = bool(value.get("pip_check", False))
    else:
        packages, options, check = value, [], False
    if isinstance(packages, str):
        raise SetupFailed(
            f"{tool} names the requirements file {packages!r}: the driver reads it and sends its "
            f"lines (a node cannot read the driver's files)"
        )
    return list(packages), [str(o) for o in options], check


def _site_packages(venv: str) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = os.path.join(venv, "lib", version, "site-packages")
    os.makedirs(path, exist_ok=True)
    return path


def cluster_site_dirs() -> list[str]:
    """The node's own site-packages, where ember and its dependencies are installed."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if os.path.isdir(d)]


async def run(argv: list[str], log_path: str, what: str) -> None:
    """Run one setup step, its output appended to ``log_path``; ``SetupFailed`` with the tail of
    that output when it fails. Cancelled (the deadline passed), its process group is killed."""
    environment = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=environment, start_new_session=True,
        )
    try:
        code = await process.wait()
    except asyncio.CancelledError:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await process.wait()
        raise
    if code != 0:
        raise SetupFailed(f"{what} failed (exit code {code}); its output ends:\n{tail(log_path)}")


def tail(path: str) -> str:
    """The last lines of a log, at most ``TAIL_BYTES``."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no output)"
    lines = text.splitlines()[-TAIL_LINES:]
    return "\n".join(lines).strip() or "(no output)"
