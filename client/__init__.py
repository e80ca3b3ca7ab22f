"""ember: Ray's core API — tasks, actors, objects — on a small gRPC runtime.

    import ember as ray
    ray.init()

    @ray.remote
    def f(x):
        return x + 1

    print(ray.get([f.remote(i) for i in range(4)]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from ember.runtime import __version__
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime_context import get_gpu_ids, get_runtime_context


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
