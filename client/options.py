"""Validating ``@remote(...)`` and ``.options(...)`` keywords, with Ray's names and rules.

Options are checked where they are written, so a typo fails at decoration time with the name
of the bad keyword, not later on a worker.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from ember import placement_options, runtime_env_upload
from ember.runtime.core.task_record import TaskOptions
from ember.runtime.wire import label_selector, resources
from ember.runtime.wire import runtime_env as env_spec

# Where work runs: a strategy, the placement group options Ray had before strategies, labels.
PLACEMENT_OPTIONS = {
    "scheduling_strategy",
    "placement_group",
    "placement_group_bundle_index",
    "placement_group_capture_child_tasks",
    "label_selector",
}

TASK_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "resources",
    "memory",
    "num_returns",
    "max_retries",
    "retry_exceptions",
    "name",
    "accelerator_type",
    "max_calls",
    "runtime_env",
} | PLACEMENT_OPTIONS

ACTOR_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "resources",
    "memory",
    "name",
    "namespace",
    "lifetime",
    "get_if_exists",
    "max_restarts",
    "max_task_retries",
    "max_concurrency",
    "accelerator_type",
    "runtime_env",
} | PLACEMENT_OPTIONS

METHOD_OPTIONS = {"num_returns", "name"}


def validate(options: Mapping[str, Any], allowed: set[str], what: str) -> dict[str, Any]:
    result = {}
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(
                f"{what}: invalid option {key!r}; valid options are {', '.join(sorted(allowed))}"
            )
        if key == "runtime_env":
            try:
                value = runtime_env_upload.checked(value)
            except env_spec.RuntimeEnvError as error:
                raise ValueError(f"{what}: {error}") from None
        else:
            _check(key, value, what)
        result[key] = value
    return result


def _number(key: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(f"{what}: {key} must be a number >= 0, got {value!r}")


def _check(key: str, value: Any, what: str) -> None:
    if key in ("num_cpus", "num_gpus", "memory"):
        if value is not None:
            _number(key, value, what)
        if key == "num_gpus" and value is not None and value > 1 and value != int(value):
            raise ValueError(
                f"{what}: num_gpus must be a whole number when more than 1 (a fraction up to 1 "
                f"shares one GPU), got {value!r}"
            )
    elif key == "accelerator_type":
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(
                f"{what}: accelerator_type must be the name of a GPU model, e.g. 'A100', "
                f"got {value!r}"
            )
    elif key == "max_calls":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{what}: max_calls must be an int >= 0 (0: no limit), got {value!r}")
    elif key == "resources":
        if value is None:
            return
        if not isinstance(value, Mapping):
            raise ValueError(f"{what}: resources must be a dict, got {type(value).__name__}")
        for name, amount in value.items():
            if name in ("CPU", "GPU"):
                raise ValueError(
                    f"{what}: use num_cpus/num_gpus instead of resources={{'{name}': ...}}"
                )
            if not isinstance(name, str):
                raise ValueError(f"{what}: resource names must be strings, got {name!r}")
            _number(f"resources[{name!r}]", amount, what)
    elif key == "num_returns":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{what}: num_returns must be an int >= 0, got {value!r}")
    elif key in ("max_retries", "max_restarts", "max_task_retries"):
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ValueError(f"{what}: {key} must be an int >= -1, got {value!r}")
    elif key == "max_concurrency":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{what}: max_concurrency must be an int >= 1, got {value!r}")
    elif key == "lifetime":
        if value not in (None, "detached", "non_detached"):
            raise ValueError(
                f"{what}: lifetime must be 'detached' or 'non_detached', got {value!r}"
            )
    elif key == "namespace":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{what}: namespace must be a string")
    elif key == "get_if_exists":
        if not isinstance(value, bool):
            raise ValueError(f"{what}: get_if_exists must be True or False")
    elif key == "retry_exceptions":
        if isinstance(value, bool):
            return
        if not isinstance(value, list | tuple) or not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in value
        ):
            raise ValueError(
                f"{what}: retry_exceptions must be a bool or a list of exception classes"
            )
    elif key == "name":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{what}: name must be a string")
    elif key == "scheduling_strategy":
        placement_options.check_strategy(value, what)
    elif key == "placement_group":
        if value not in (None, placement_options.DEFAULT_GROUP) and not placement_options.is_group(value):
            raise ValueError(f"{what}: placement_group must be a PlacementGroup, got {value!r}")
    elif key == "placement_group_bundle_index":
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ValueError(f"{what}: placement_group_bundle_index must be an int >= -1, got {value!r}")
    elif key == "placement_group_capture_child_tasks":
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{what}: placement_group_capture_child_tasks must be True or False")
    elif key == "label_selector":
        if value is not None:
            label_selector.check(value, f"{what}: label_selector")


def shape_of(options: Mapping[str, Any], default_cpus: float) -> dict[str, int]:
    num_cpus = options.get("num_cpus")
    quantities: dict[str, float] = {"CPU": default_cpus if num_cpus is None else num_cpus}
    if options.get("num_gpus"):
        quantities["GPU"] = options["num_gpus"]
    if options.get("memory"):
        quantities["memory"] = options["memory"]
    for name, amount in (options.get("resources") or {}).items():
        quantities[name] = amount
    if options.get("accelerator_type"):
        # As Ray: a sliver of the resource a node with GPUs of that model advertises.
        accelerator = resources.ACCELERATOR_TYPE + options["accelerator_type"]
        quantities[accelerator] = quantities.get(accelerator, 0) + resources.ACCELERATOR_REQUEST
    return resources.to_fixed(quantities)


def task_options(options: Mapping[str, Any], default_name: str) -> TaskOptions:
    name = options.get("name") or default_name
    placement = placement_options.resolve(options, shape_of(options, default_cpus=1), None, name)
    retry = options.get("retry_exceptions", False)
    if isinstance(retry, list | tuple):
        retry = tuple(f"{c.__module__}.{c.__qualname__}" for c in retry)
    max_retries = options.get("max_retries")
    max_calls = options.get("max_calls")
    if max_calls is None:
        # As Ray: a GPU task's worker is not reused, lest memory a library kept on the GPU
        # (or the devices CUDA settled on) leak into the next task. max_calls=0 allows it.
        max_calls = 1 if options.get("num_gpus") else 0
    return TaskOptions(
        name=name,
        shape=placement.shape,
        key=resources.key_of(placement.shape),
        num_returns=options.get("num_returns", 1),
        max_retries=3 if max_retries is None else max_retries,
        retry_exceptions=retry,
        strategy=placement.strategy,
        placement_group=placement.placement_group,
        capture_child_tasks=placement.capture_child_tasks,
        may_capture=placement.may_capture,
        constraints=placement.constraints,
        constraints_key=placement.constraints_key,
        max_calls=max_calls,
        runtime_env=env_spec.to_json(options.get("runtime_env") or {}),
    )
