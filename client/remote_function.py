"""``@ember.remote`` on a function: ``f.remote(...)`` submits it as a task."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ember import options as opts
from ember import placement_options, runtime_env_upload
from ember.runtime.core import context
from ember.runtime.core.task_record import FunctionDescriptor, TaskOptions
from ember.runtime.objects import serialization
from ember.runtime.objects.object_ref import ObjectRef


class RemoteFunction:
    """A function that runs as a task. Pickles to its function and options only."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        self._function = function
        self._name = f"{function.__module__}.{function.__qualname__}"
        self._options = opts.validate(options, opts.TASK_OPTIONS, f"@remote {self._short_name}")
        self._descriptor: FunctionDescriptor | None = None
        self._task_options: TaskOptions | None = None
        functools.update_wrapper(self, function)

    @property
    def _short_name(self) -> str:
        return getattr(self._function, "__qualname__", repr(self._function))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self._short_name}()', try '{self._short_name}.remote()'."
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"function": self._function, "options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["function"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"RemoteFunction({self._name})"

    def descriptor(self) -> FunctionDescriptor:
        descriptor = self._descriptor
        if descriptor is None:
            data, function_id = serialization.dumps_function(self._function, self._short_name)
            descriptor = self._descriptor = FunctionDescriptor(self._short_name, function_id, data)
        return descriptor

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        task_options = self._task_options
        if task_options is None:
            task_options = self._task_options = opts.task_options(self._options, self._short_name)
        return self._submit(args, kwargs, task_options)

    def _submit(self, args: Any, kwargs: dict[str, Any], task_options: TaskOptions) -> Any:
        core = context.current_core()
        if core is None:
            from ember.connection import auto_init

            core = auto_init()
        if task_options.may_capture and context.capturing:
            task_options = placement_options.captured(task_options)
        if task_options.runtime_env:
            task_options = runtime_env_upload.with_resolved_env(core, task_options)
        refs = core.submit_task(self.descriptor(), args, kwargs, task_options)
        return _returns(refs, task_options.num_returns)

    def options(self, **overrides: Any) -> _FunctionWithOptions:
        merged = dict(self._options)
        merged.update(opts.validate(overrides, opts.TASK_OPTIONS, f"{self._short_name}.options"))
        return _FunctionWithOptions(self, opts.task_options(merged, self._short_name))


class _FunctionWithOptions:
    def __init__(self, function: RemoteFunction, task_options: TaskOptions) -> None:
        self._function = function
        self._task_options = task_options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._function._submit(args, kwargs, self._task_options)


def _returns(refs: list[ObjectRef], num_returns: int) -> Any:
    if num_returns == 1:
        return refs[0]
    if num_returns == 0:
        return None
    return refs
