"""The process's current owner core: set by ``init`` in a driver and at start in a worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ember.runtime.owner import Owner

_core: Owner | None = None


def current_core() -> Owner | None:
    return _core


def set_core(core: Owner | None) -> None:
    global _core
    _core = core


def require_core() -> Owner:
    core = _core
    if core is None:
        raise RuntimeError(
            "ember is not initialized in this process: call ember.init() first"
        )
    return core
