"""``get_runtime_context()``: which job, task, actor and node the calling code runs in."""

from __future__ import annotations

import json
from typing import Any

from ember import job_environment
from ember.runtime.core import context, visible_gpus


class RuntimeContext:
    """Ray's ``RuntimeContext``, for the code that asks: ids are hex strings, or None."""

    def get_job_id(self) -> str:
        return self._core().job_id.hex()

    def get_task_id(self) -> str | None:
        current = context.task_context.get()
        return current.task_id.hex() if current is not None else None

    def get_task_name(self) -> str | None:
        current = context.task_context.get()
        return current.name if current is not None else None

    def get_actor_id(self) -> str | None:
        return context.actor_id.hex() if context.actor_id else None

    def get_node_id(self) -> str:
        return context.node_id

    def get_worker_id(self) -> str:
        return context.worker_id

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The accelerators the running task or actor may use, by resource name, as Ray's:
        ``{"GPU": ["0"]}`` (ids are strings here, whatever ``get_gpu_ids`` returns)."""
        return {"GPU": list(visible_gpus.ids)}

    @property
    def namespace(self) -> str:
        return self._core().job_config.namespace

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    @property
    def runtime_env(self) -> dict[str, Any]:
        """The runtime_env the calling code runs in: in a task or actor, its own (merged over
        its parent's); in a driver, the job's ({} without one). Local code is named by the
        package URI the cluster holds it under."""
        core = context.current_core()
        if core is None:
            return job_environment.runtime_env()
        return json.loads(core.runtime_env) if core.runtime_env else {}

    def get_runtime_env_string(self) -> str:
        return json.dumps(self.runtime_env)

    def get_submission_id(self) -> str | None:
        """The submission id of the job this driver is the entrypoint of (None otherwise)."""
        return job_environment.submission_id()

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return context.actor_restarted

    def get(self) -> dict[str, Any]:
        return {
            "job_id": self.get_job_id(),
            "task_id": self.get_task_id(),
            "actor_id": self.get_actor_id(),
            "node_id": self.get_node_id(),
            "namespace": self.namespace,
        }

    def _core(self) -> Any:
        return context.require_core()


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext()


def get_gpu_ids() -> list[int] | list[str]:
    """The GPUs the running task or actor may use, as in its ``CUDA_VISIBLE_DEVICES``: ints
    (0 .. N-1 of its node), or the node's device names when the node was started with
    ``CUDA_VISIBLE_DEVICES`` set, as Ray returns them. In a driver: []."""
    return visible_gpus.gpu_ids()
