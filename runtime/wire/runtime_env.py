"""A runtime_env, checked: Ray's field names and shapes, refused with the field named.

A runtime_env reaches the cluster from several doors — ``ember job submit
--runtime-env-json``, ``JobSubmissionClient.submit_job(runtime_env=...)``, an EmberJob's
``spec.runtimeEnv`` through the operator — and must mean the same thing through each, so the
check lives here, where the client, the operator and the head all find it. The head checks
again what it is sent: a client of another version, or a hand-written call, must not store a
runtime_env no worker could set up.

What each field does is the runtime_env's own business (working_dir ships code, env_vars set
variables, pip builds a virtualenv); this module only says whether a value is well-formed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

SUPPORTED = ("working_dir", "py_modules", "excludes", "env_vars", "pip", "uv", "config")
# Ray's fields that ember does not offer: refused by name rather than ignored.
UNSUPPORTED = {
    "conda": "ember builds Python environments with pip or uv, not conda",
    "container": "ember runs workers in the node's own image",
    "image_uri": "ember runs workers in the node's own image",
    "java_jars": "ember runs Python only",
    "nsight": "ember has no profiler plugin",
    "py_executable": "ember workers run the node's Python",
    "worker_process_setup_hook": "not supported by ember",
}
CONFIG_KEYS = ("setup_timeout_seconds", "eager_install")


class RuntimeEnvError(ValueError):
    """A runtime_env that is not well-formed; the message names the field."""


def parse_json(text: str, where: str = "runtime_env") -> dict[str, Any]:
    """``text`` (JSON, "" for none) checked: the runtime_env it holds."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise RuntimeEnvError(f"{where} is not valid JSON: {error}") from None
    return validate(value, where)


def validate(value: Any, where: str = "runtime_env") -> dict[str, Any]:
    """The runtime_env ``value`` as a plain dict, or ``RuntimeEnvError`` naming the bad field."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuntimeEnvError(f"{where} must be a JSON object (a dict), not {type(value).__name__}")
    result: dict[str, Any] = {}
    for key, item in value.items():
        field = f"{where}.{key}"
        if key in UNSUPPORTED:
            raise RuntimeEnvError(f"{field} is not supported: {UNSUPPORTED[key]}")
        if key not in SUPPORTED:
            raise RuntimeEnvError(
                f"{field} is not a runtime_env field (ember knows {', '.join(SUPPORTED)})"
            )
        if item is None:
            continue
        result[key] = _CHECKS[key](item, field)
    if "pip" in result and "uv" in result:
        raise RuntimeEnvError(f"{where} gives both pip and uv: choose one")
    return result


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise RuntimeEnvError(f"{field} must be a non-empty string, not {value!r}")
    return value


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise RuntimeEnvError(f"{field} must be a list of strings, not {type(value).__name__}")
    return [_string(item, f"{field}[{i}]") for i, item in enumerate(value)]


def _env_vars(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise RuntimeEnvError(f"{field} must be an object of names to strings")
    result = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise RuntimeEnvError(f"{field}: {name!r} is not an environment variable name")
        if not isinstance(item, str):
            raise RuntimeEnvError(
                f"{field}.{name} must be a string, not {type(item).__name__} ({item!r})"
            )
        result[name] = item
    return result


def _packages(value: Any, field: str) -> Any:
    """pip and uv: a list of requirements, a requirements file's path, or Ray's dict form."""
    if isinstance(value, str):
        return _string(value, field)
    if isinstance(value, list | tuple):
        return _strings(value, field)
    if isinstance(value, Mapping):
        if "packages" not in value:
            raise RuntimeEnvError(f"{field} as an object needs 'packages' (a list or a file)")
        known = {"packages", "pip_check", "pip_version", "uv_version", "uv_check", "uv_pip_install_options", "pip_install_options"}
        for key in value:
            if key not in known:
                raise RuntimeEnvError(f"{field}.{key} is not a field of {field} ({', '.join(sorted(known))})")
        result = dict(value)
        result["packages"] = _packages(value["packages"], f"{field}.packages")
        return result
    raise RuntimeEnvError(f"{field} must be a list of requirements or a requirements file")


def _config(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RuntimeEnvError(f"{field} must be an object")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key == "setup_timeout_seconds":
            if isinstance(item, bool) or not isinstance(item, int) or (item <= 0 and item != -1):
                raise RuntimeEnvError(
                    f"{field}.setup_timeout_seconds must be a positive whole number of seconds "
                    f"(or -1: no limit), not {item!r}"
                )
        elif key == "eager_install":
            if not isinstance(item, bool):
                raise RuntimeEnvError(f"{field}.eager_install must be true or false, not {item!r}")
        else:
            raise RuntimeEnvError(f"{field}.{key} is not a field of {field} ({', '.join(CONFIG_KEYS)})")
        result[key] = item
    return result


_CHECKS = {
    "working_dir": _string,
    "py_modules": _strings,
    "excludes": _strings,
    "env_vars": _env_vars,
    "pip": _packages,
    "uv": _packages,
    "config": _config,
}


def to_json(runtime_env: Mapping[str, Any]) -> str:
    """The canonical JSON of a checked runtime_env ("" for an empty one)."""
    return json.dumps(dict(runtime_env), sort_keys=True) if runtime_env else ""


# ---------------------------------------------------------------------------------------------
# Which environment a task or actor runs in: Ray's inheritance, and the identity of the result.

# The fields that make a worker what it is: two runtime_envs equal in these share workers.
# (``excludes`` was applied when the working_dir was packed; ``config`` says how to set up.)
WORKER_FIELDS = ("working_dir", "py_modules", "env_vars", "pip", "uv")
OVERRIDE_JOB_ENV = "EMBER_OVERRIDE_JOB_RUNTIME_ENV"


def inherit(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """A task's or actor's runtime_env over its parent's (the job's, or the task's or actor's
    that submits it), as Ray merges them: ``env_vars`` are merged, the child's winning a name
    both set; every other field the child gives replaces the parent's. ``pip`` and ``uv``
    replace each other, since an environment has one of them."""
    if not child:
        return dict(parent)
    result = dict(parent)
    for key, value in child.items():
        if key == "env_vars":
            result["env_vars"] = {**parent.get("env_vars", {}), **value}
        else:
            if key in ("pip", "uv"):
                result.pop("uv" if key == "pip" else "pip", None)
            result[key] = value
    return result


@functools.lru_cache(maxsize=1024)
def inherit_json(parent: str, own: str) -> str:
    """``inherit`` on canonical JSON (``own`` over ``parent``), cached: a process submits many
    tasks of few environments, and merging each one's would cost a parse per submission."""
    if not own:
        return parent
    return to_json(inherit(json.loads(parent) if parent else {}, json.loads(own)))


def merge_job(job: Mapping[str, Any], driver: Mapping[str, Any], override: bool = False) -> dict[str, Any]:
    """The runtime_env of a submitted job's driver: the job's, and what its ``init()`` gives.

    As Ray: the two are merged, and a field both give with different values is an error that
    names it (``env_vars`` are merged name by name, a name both give differently is the
    error); with ``override`` (``EMBER_OVERRIDE_JOB_RUNTIME_ENV=1``) the driver's wins."""
    result = dict(job)
    for key, value in driver.items():
        if key not in result or result[key] == value or override:
            if key == "env_vars" and key in result:
                result[key] = {**result[key], **value}
            else:
                result[key] = value
            continue
        if key == "env_vars":
            merged = dict(result[key])
            for name, item in value.items():
                if name in merged and merged[name] != item:
                    raise RuntimeEnvError(
                        f"runtime_env.env_vars.{name} is {merged[name]!r} in the job's "
                        f"runtime_env and {item!r} in init(): give it in one place (or set "
                        f"{OVERRIDE_JOB_ENV}=1 to let init() win)"
                    )
                merged[name] = item
            result[key] = merged
            continue
        raise RuntimeEnvError(
            f"runtime_env.{key} is given both by the job ({result[key]!r}) and by init() "
            f"({value!r}): give it in one place (or set {OVERRIDE_JOB_ENV}=1 to let init() win)"
        )
    return result


def identity(runtime_env: Mapping[str, Any]) -> str:
    """A short name for what a worker of ``runtime_env`` is: equal for runtime_envs that make
    the same worker, "" for none (the node's own environment)."""
    fields = {key: runtime_env[key] for key in WORKER_FIELDS if runtime_env.get(key)}
    if not fields:
        return ""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def describe(runtime_env: Mapping[str, Any]) -> str:
    """A runtime_env in a few words, for errors and logs: its fields and their gist."""
    parts = []
    for key in WORKER_FIELDS:
        value = runtime_env.get(key)
        if not value:
            continue
        if key == "env_vars":
            parts.append(f"env_vars {', '.join(sorted(value))}")
        elif key in ("pip", "uv"):
            packages = value.get("packages", ()) if isinstance(value, Mapping) else value
            shown = packages if isinstance(packages, str) else " ".join(map(str, packages))
            parts.append(f"{key} [{shown[:120]}{'...' if len(shown) > 120 else ''}]")
        elif key == "py_modules":
            parts.append(f"py_modules {' '.join(value)}")
        else:
            parts.append(f"{key} {value}")
    return "; ".join(parts) or "no fields"
