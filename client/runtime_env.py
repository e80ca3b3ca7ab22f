"""``ember.runtime_env.RuntimeEnv``: Ray's class for a runtime_env, a dict with its fields.

``RuntimeEnv(working_dir=".", env_vars={"A": "1"})`` is the dict ``{"working_dir": ".",
"env_vars": {"A": "1"}}``, checked as it is made (a bad field is named at once); it goes wherever
a runtime_env does. ``RuntimeEnvConfig`` is the dict of its ``config``. See
docs/runtime-env.md.
"""

from __future__ import annotations

from typing import Any

from ember.runtime.wire import runtime_env as env_spec


class RuntimeEnvConfig(dict[str, Any]):
    """``config`` of a runtime_env: ``setup_timeout_seconds`` (600; -1: none), ``eager_install``."""

    def __init__(self, setup_timeout_seconds: int = 600, eager_install: bool = True) -> None:
        super().__init__(setup_timeout_seconds=setup_timeout_seconds, eager_install=eager_install)
        env_spec.validate({"config": dict(self)})


class RuntimeEnv(dict[str, Any]):
    """A runtime_env: ``working_dir``, ``py_modules``, ``excludes``, ``env_vars``, ``pip``,
    ``uv``, ``config`` (Ray's names); fields left out or None are not set."""

    def __init__(self, **fields: Any) -> None:
        super().__init__({key: value for key, value in fields.items() if value is not None})
        from ember import runtime_env_upload

        try:
            runtime_env_upload.checked(dict(self))
        except env_spec.RuntimeEnvError as error:
            raise ValueError(str(error)) from None


__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
