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
