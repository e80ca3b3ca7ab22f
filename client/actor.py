"""``@ember.remote`` on a class: actors, their handles and their methods.

``Counter.remote(...)`` registers an actor with the head (which creates it on a worker of its
own) and returns an ``ActorHandle`` at once; ``handle.add.remote(1)`` sends the call straight to
the actor's worker and returns an ``ObjectRef``. Handles are ordinary values: pass them to tasks
and other actors, return them, store them in objects.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import cloudpickle

from ember import options as opts
from ember import placement_options, runtime_env_upload
from ember.runtime.core import context
from ember.runtime.core.actor_host import is_async_class
from ember.runtime.core.owner import Owner
from ember.runtime.core.task_record import ActorOptions, FunctionDescriptor, TaskOptions
from ember.runtime.objects import serialization
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire import runtime_env as env_spec


def method(*args: Any, **options: Any) -> Any:
    """``@ember.method(num_returns=2)`` on an actor method, as Ray's ``@ray.method``."""
    if args:
        raise TypeError("@ember.method takes keyword arguments only, e.g. @ember.method(num_returns=2)")
    checked = opts.validate(options, opts.METHOD_OPTIONS, "@method")

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function.__ember_method_options__ = checked  # type: ignore[attr-defined]
        return function

    return mark


def _core() -> Owner:
    core = context.current_core()
    if core is None:
        from ember.connection import auto_init

        core = auto_init()
    return core


def _method_table(cls: type) -> dict[str, dict[str, Any]]:
    table = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or not callable(member):
            continue
        table[name] = dict(getattr(member, "__ember_method_options__", {}))
    return table


class ActorClass:
    """What ``@ember.remote`` turns a class into. Pickles to its class and options only."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = opts.validate(options, opts.ACTOR_OPTIONS, f"@remote {cls.__qualname__}")
        self._descriptor: FunctionDescriptor | None = None
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', "
            f"use '{self.__name__}.remote()'."
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"cls": self._cls, "options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cls"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ActorClass({self._cls.__module__}.{self._cls.__qualname__})"

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._create(args, kwargs, self._options)

    def options(self, **overrides: Any) -> _ActorClassWithOptions:
        merged = dict(self._options)
        merged.update(opts.validate(overrides, opts.ACTOR_OPTIONS, f"{self.__name__}.options"))
        return _ActorClassWithOptions(self, merged)

    def _create(self, args: Any, kwargs: dict[str, Any], options: dict[str, Any]) -> ActorHandle:
        core = _core()
        descriptor = self._descriptor
        if descriptor is None:
            data, function_id = serialization.dumps_function(self._cls, self.__qualname__)
            descriptor = self._descriptor = FunctionDescriptor(self.__qualname__, function_id, data)
        actor_options = placement_options.captured(actor_options_of(self._cls, options))
        if actor_options.runtime_env:
            actor_options = runtime_env_upload.with_resolved_env(core, actor_options)
        meta = {
            "class_name": self._cls.__name__,
            "methods": _method_table(self._cls),
            "max_task_retries": actor_options.max_task_retries,
        }
        actor_id, meta_bytes = core.create_actor(
            descriptor, args, kwargs, actor_options, cloudpickle.dumps(meta)
        )
        return ActorHandle(actor_id, serialization.loads(meta_bytes), core)


class _ActorClassWithOptions:
    def __init__(self, actor_class: ActorClass, options: dict[str, Any]) -> None:
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._actor_class._create(args, kwargs, self._options)


def actor_options_of(cls: type, options: dict[str, Any]) -> ActorOptions:
    is_async = is_async_class(cls)
    num_cpus = options.get("num_cpus")
    place = opts.shape_of(options, default_cpus=1)
    hold = opts.shape_of(options, default_cpus=0) if num_cpus is None else dict(place)
    hold = {k: v for k, v in hold.items() if v}
    placement = placement_options.resolve(options, place, hold, cls.__name__)
    assert placement.hold is not None
    lifetime = options.get("lifetime")
    concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
    return ActorOptions(
        class_name=cls.__name__,
        shape=placement.shape,
        hold=placement.hold,
        max_restarts=options.get("max_restarts") or 0,
        max_task_retries=options.get("max_task_retries") or 0,
        max_concurrency=concurrency,
        is_async=is_async,
        name=options.get("name") or "",
        namespace=options.get("namespace") or "",
        detached=lifetime == "detached",
        get_if_exists=bool(options.get("get_if_exists")),
        placement_group=placement.placement_group,
        capture_child_tasks=placement.capture_child_tasks,
        may_capture=placement.may_capture,
        constraints=placement.constraints,
        runtime_env=env_spec.to_json(options.get("runtime_env") or {}),
    )


class ActorHandle:
    """A way to call an actor. ``repr`` is ``Actor(ClassName, <id>)``, as in Ray."""

    __slots__ = ("_ember_actor_id", "_ember_meta", "_ember_core", "_ember_methods", "__weakref__")

    def __init__(self, actor_id: bytes, meta: dict[str, Any], core: Owner | None) -> None:
        self._ember_actor_id = actor_id
        self._ember_meta = meta
        self._ember_core = core
        # Each method's call options, made once. Not the methods themselves: a method keeps its
        # handle alive, and the cycle would outlive ``del handle``.
        self._ember_methods: dict[str, TaskOptions] = {}
        if core is not None:
            core.add_handle(actor_id)

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_ember_"):
            raise AttributeError(name)
        options = self._ember_methods.get(name)
        if options is None:
            table = self._ember_meta["methods"]
            if name not in table:
                raise AttributeError(
                    f"'ActorHandle' object has no attribute '{name}': "
                    f"{self._ember_meta['class_name']} has no public method of that name"
                )
            options = self._ember_methods[name] = _method_options(self._ember_meta, name, table[name])
        return ActorMethod(self, name, options)

    def __dir__(self) -> list[str]:
        return sorted(self._ember_meta["methods"])

    def __repr__(self) -> str:
        return f"Actor({self._ember_meta['class_name']}, {self._ember_actor_id.hex()})"

    def __hash__(self) -> int:
        return hash(self._ember_actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._ember_actor_id == self._ember_actor_id

    def __del__(self) -> None:
        core = self._ember_core
        if core is not None:
            core.handles.release_local(self._ember_actor_id)

    def __reduce__(self) -> tuple[Any, ...]:
        core = self._ember_core
        if core is not None:
            core.actor_lifecycle.handle_escaped(self._ember_actor_id)
        return (_rebuild_handle, (self._ember_actor_id, self._ember_meta))


def _rebuild_handle(actor_id: bytes, meta: dict[str, Any]) -> ActorHandle:
    core = context.current_core()
    if core is not None:
        core.io.call_soon(core.actors.client, actor_id, meta["class_name"])
    return ActorHandle(actor_id, meta, core)


def _method_options(meta: dict[str, Any], name: str, options: dict[str, Any]) -> TaskOptions:
    return TaskOptions(
        name=f"{meta['class_name']}.{name}",
        shape={},
        key=(),
        num_returns=options.get("num_returns", 1),
        max_retries=meta.get("max_task_retries", 0),
    )


class ActorMethod:
    """``handle.method``: call it with ``.remote(...)``.

    It keeps its handle alive, as a call made through it is a call made through the handle. In
    ``Counter.remote().incr.remote()`` Python drops the handle once it has looked up ``incr``,
    before ``remote()`` runs: were the handle gone then, its owner could let the actor go
    before the call is made (its calls keep an actor alive only once they are made).
    """

    __slots__ = ("_handle", "_actor_id", "_core", "_name", "_task_options")

    def __init__(self, handle: ActorHandle, name: str, options: TaskOptions) -> None:
        self._handle = handle
        self._actor_id = handle._ember_actor_id
        self._core = handle._ember_core
        self._name = name
        self._task_options = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of '{self._name}()', "
            f"use '{self._name}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(args, kwargs, self._task_options)

    def options(self, **overrides: Any) -> _MethodWithOptions:
        checked = opts.validate(overrides, opts.METHOD_OPTIONS, f"{self._name}.options")
        task_options = self._task_options
        return _MethodWithOptions(
            self,
            TaskOptions(
                name=checked.get("name") or task_options.name,
                shape={},
                key=(),
                num_returns=checked.get("num_returns", task_options.num_returns),
                max_retries=task_options.max_retries,
            ),
        )

    def _call(self, args: Any, kwargs: dict[str, Any], options: TaskOptions) -> Any:
        core = self._core or _core()
        refs = core.submit_actor_call(self._actor_id, self._name, args, kwargs, options)
        return _returns(refs, options.num_returns)


class _MethodWithOptions:
    def __init__(self, method: ActorMethod, options: TaskOptions) -> None:
        self._method = method
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method._call(args, kwargs, self._options)


def _returns(refs: list[ObjectRef], num_returns: int) -> Any:
    if num_returns == 1:
        return refs[0]
    if num_returns == 0:
        return None
    return refs


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of a named actor, from any driver or task of the cluster."""
    import grpc

    if not name:
        raise ValueError("get_actor needs the actor's name")
    core = _core()
    try:
        info = core.get_actor_info(name, namespace or "")
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise ValueError(_not_found(core, name, error.details() or "")) from None
        raise
    meta = serialization.loads(info.handle_meta)
    core.io.call_soon(core.actors.client, info.actor_id, info.class_name)
    return ActorHandle(info.actor_id, meta, core)


def _not_found(core: Any, name: str, details: str) -> str:
    """The head's "not found", and where an actor of that name does live: names are per
    namespace, and a driver without ``init(namespace=...)`` has an anonymous one of its own,
    so a name given in one driver is not found from the next unless both say where."""
    elsewhere = core.actor_lifecycle.namespaces_naming(name)
    if not elsewhere:
        return f"{details}: no actor of that name is alive in any namespace"
    listed = ", ".join(repr(ns) for ns in elsewhere)
    which = f"namespace {listed}" if len(elsewhere) == 1 else f"namespaces {listed}"
    return (
        f"{details}, but an actor named {name!r} lives in {which}: look it up there, "
        f"ember.get_actor({name!r}, namespace={elsewhere[0]!r}) (a driver's namespace is "
        f"ember.init(namespace=...); without it, each driver has an anonymous one of its own)"
    )


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kill an actor at once (calls in flight fail with ``ActorDiedError``).

    With ``no_restart=False`` it is restarted if its ``max_restarts`` allows.
    """
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ember.kill() expects an actor handle, got {type(actor).__name__}")
    _core().kill_actor(actor._ember_actor_id, no_restart)

