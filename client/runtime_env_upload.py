"""A runtime_env made ready for the cluster: local code packed and uploaded, files read.

``init(runtime_env=...)``, ``@remote(runtime_env=...)`` and ``.options(runtime_env=...)`` take
Ray's fields, some of which name things on the user's machine: a ``working_dir`` or
``py_modules`` directory (or ``.zip``, ``.whl``, ``.py`` file, or an imported module), a
requirements file for ``pip`` or ``uv``. A node cannot read any of them, so before the first
task that needs them they are made into things the cluster has: each directory is packed
(``working_dir.pack``: ``excludes``, ``.gitignore``, a size limit naming the biggest files) and
uploaded to the head once (its name is its hash, so unchanged code is not sent again), and a
requirements file becomes its list of lines. What is left is canonical JSON naming package URIs
only: what travels with leases and actors, and what nodes set up.

The upload goes through the head's client port, the one port an outside driver reaches, with
the driver's job named: the head keeps the package while that job lives. Resolutions are cached
per connection: the same runtime_env in a loop of ``.options()`` calls is packed once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ember import working_dir as working_dirs
from ember.runtime.wire import package_format
from ember.runtime.wire import runtime_env as env_spec
from ember.runtime.wire.package_format import PackageError

if TYPE_CHECKING:
    from ember.runtime.core.owner import Owner

Options = TypeVar("Options")

_resolved: weakref.WeakKeyDictionary[Owner, dict[str, str]] = weakref.WeakKeyDictionary()


def checked(value: Any, where: str = "runtime_env") -> dict[str, Any]:
    """``value`` (a dict, or Ray's ``RuntimeEnv``, which is one) checked, with imported modules in
    ``py_modules`` named by their path; ``ValueError`` naming the field when it is wrong."""
    if value is None:
        return {}
    if isinstance(value, Mapping) and isinstance(value.get("py_modules"), list | tuple):
        value = {**value, "py_modules": [_module_path(m, where) for m in value["py_modules"]]}
    env = env_spec.validate(value, where)
    for tool in ("pip", "uv"):
        spec = env.get(tool)
        if isinstance(spec, Mapping) and spec.get(f"{tool}_version"):
            raise env_spec.RuntimeEnvError(
                f"{where}.{tool}.{tool}_version is not supported: each node installs with its own {tool}"
            )
    return env


def _module_path(module: Any, where: str) -> Any:
    if not isinstance(module, types.ModuleType):
        return module
    path = getattr(module, "__file__", None)
    if not path:
        raise env_spec.RuntimeEnvError(f"{where}.py_modules: module {module.__name__} has no file to ship")
    if os.path.basename(path) == "__init__.py":
        return os.path.dirname(os.path.abspath(path))  # a package: its directory
    return os.path.abspath(path)


def _remote(value: str) -> bool:
    return package_format.is_package_uri(value) or value.startswith(("http://", "https://"))


def resolve(env: Mapping[str, Any], upload: Callable[[bytes], str]) -> dict[str, Any]:
    """``env`` with every local path replaced by what the cluster can use: packages uploaded
    with ``upload`` (bytes -> URI), requirements files read. ``ValueError`` says what is wrong
    (a path that is not there, a directory over the size limit)."""
    result = dict(env)
    excludes = result.pop("excludes", None) or ()
    working_dir = result.get("working_dir")
    if working_dir and not _remote(working_dir):
        result["working_dir"] = upload(_pack(working_dir, excludes, "", "runtime_env.working_dir"))
    modules = result.get("py_modules")
    if modules:
        result["py_modules"] = [
            module if _remote(module) else upload(_pack_module(module, excludes, f"runtime_env.py_modules[{i}]"))
            for i, module in enumerate(modules)
        ]
    for tool in ("pip", "uv"):
        if tool in result:
            result[tool] = _requirements(result[tool], f"runtime_env.{tool}")
    return result


def _pack(path: str, excludes: Any, prefix: str, field: str) -> bytes:
    if not os.path.exists(path):
        raise ValueError(f"{field} {path!r} does not exist on this machine")
    try:
        return working_dirs.pack(path, excludes, prefix=prefix, what=field)
    except PackageError as error:
        raise ValueError(str(error)) from None


def _pack_module(path: str, excludes: Any, field: str) -> bytes:
    """A py_module as a package: a directory under its own name (so that its parent goes on
    the path and ``import name`` finds it), a ``.py`` file or ``.whl`` as the one member."""
    if os.path.isdir(path):
        return _pack(path, excludes, os.path.basename(os.path.abspath(path)) + "/", field)
    if os.path.isfile(path) and path.endswith(".zip"):
        return _pack(path, excludes, "", field)
    if os.path.isfile(path) and path.endswith((".py", ".whl")):
        with open(path, "rb") as f:
            data = f.read()
        return package_format.pack_files([(os.path.basename(path), data, False)])
    if not os.path.exists(path):
        raise ValueError(f"{field} {path!r} does not exist on this machine")
    raise ValueError(f"{field} {path!r} is not a directory, .py, .whl or .zip file")


def _requirements(value: Any, field: str) -> Any:
    """A requirements file's path replaced by its lines (blank lines and comments left out)."""
    if isinstance(value, Mapping):
        packages = value.get("packages")
        if isinstance(packages, str):
            return {**value, "packages": _read_requirements(packages, f"{field}.packages")}
        return dict(value)
    if isinstance(value, str):
        return _read_requirements(value, field)
    return list(value)


def _read_requirements(path: str, field: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as error:
        raise ValueError(f"{field}: cannot read the requirements file {path!r}: {error.strerror}") from None
    result = []
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            result.append(line)
    return result


def resolved_json(core: Owner, own: str) -> str:
    """A task's or actor's own runtime_env (canonical JSON, as the options hold it) resolved
    for ``core``'s cluster, once per connection."""
    cache = _resolved.get(core)
    if cache is None:
        cache = _resolved[core] = {}
    result = cache.get(own)
    if result is None:
        result = cache[own] = env_spec.to_json(resolve(json.loads(own), core.upload_package))
    return result


def with_resolved_env(core: Owner, options: Options) -> Options:
    """``options`` (TaskOptions or ActorOptions) with their runtime_env resolved for ``core``."""
    own: str = options.runtime_env  # type: ignore[attr-defined]
    resolved = resolved_json(core, own)
    if resolved == own:
        return options
    return dataclasses.replace(options, runtime_env=resolved)  # type: ignore[type-var]
