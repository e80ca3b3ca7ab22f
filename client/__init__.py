"""ember: Ray's core API — tasks, actors, objects — on a small gRPC runtime.

    import ember as ray
    ray.init()

    @ray.remote
    def f(x):
        return x + 1

    print(ray.get([f.remote(i) for i in range(4)]))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember.runtime import __version__

if TYPE_CHECKING:
    from ember import autoscaler, exceptions, runtime_env
    from ember.actor import ActorClass, ActorHandle, get_actor, kill, method
    from ember.connection import (
        EmberContext,
        available_resources,
        cluster_resources,
        init,
        is_initialized,
        nodes,
        shutdown,
    )
    from ember.objects import cancel, get, put, wait
    from ember.remote_function import RemoteFunction
    from ember.runtime.objects.object_ref import ObjectRef
    from ember.runtime_context import get_gpu_ids, get_runtime_context

# Where each public name lives. They are imported on first use (PEP 562), not by ``import
# ember``: every process of a cluster (head, node agent, zygote) starts with ``python -m
# ember.runtime...``, which imports this package first, and the driver's API (connection,
# launcher, autoscaler: a fifth of a second) is on the path to their first task otherwise.
_HOMES = {
    "ActorClass": "ember.actor",
    "ActorHandle": "ember.actor",
    "get_actor": "ember.actor",
    "kill": "ember.actor",
    "method": "ember.actor",
    "EmberContext": "ember.connection",
    "available_resources": "ember.connection",
    "cluster_resources": "ember.connection",
    "init": "ember.connection",
    "is_initialized": "ember.connection",
    "nodes": "ember.connection",
    "shutdown": "ember.connection",
    "cancel": "ember.objects",
    "get": "ember.objects",
    "put": "ember.objects",
    "wait": "ember.objects",
    "RemoteFunction": "ember.remote_function",
    "ObjectRef": "ember.runtime.objects.object_ref",
    "get_gpu_ids": "ember.runtime_context",
    "get_runtime_context": "ember.runtime_context",
}
_SUBMODULES = {"autoscaler", "exceptions", "runtime_env", "util"}  # `ray.util` works without an import too


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"ember.{name}")
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def timeline(filename: str | None = None) -> list[dict[str, Any]] | None:
    """Ray's ``ray.timeline``: the cluster's recent tasks as Chrome trace events, or written to
    ``filename`` (see ``ember.timeline_trace``; imported only when asked for)."""
    from ember import timeline_trace

    return timeline_trace.timeline(filename)


def remote(*args: Any, **options: Any) -> Any:
    """Make a function a remote function: ``@remote`` or ``@remote(num_cpus=2, ...)``."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError(
            "The @ember.remote decorator takes either no arguments or only keyword "
            "arguments, e.g. @ember.remote(num_cpus=2)"
        )

    def decorate(target: Callable[..., Any]) -> Any:
        return _make_remote(target, options)

    return decorate


def _make_remote(target: Any, options: dict[str, Any]) -> Any:
    from ember.actor import ActorClass
    from ember.remote_function import RemoteFunction

    if isinstance(target, type):
        return ActorClass(target, options)
    if not callable(target):
        raise TypeError(f"@ember.remote expects a function or a class, got {type(target).__name__}")
    return RemoteFunction(target, options)


__all__ = [
    "ActorClass",
    "ActorHandle",
    "EmberContext",
    "ObjectRef",
    "RemoteFunction",
    "__version__",
    "autoscaler",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "runtime_env",
    "remote",
    "shutdown",
    "timeline",
    "wait",
]
