"""The errors ember raises, with Ray's names as aliases so ``except ray.exceptions.X`` works."""

from ember.runtime.exceptions import (
    EmberError,
    GetTimeoutError,
    ObjectLostError,
    OwnerDiedError,
    RuntimeConnectionError,
    TaskCancelledError,
    TaskError,
    TaskUnschedulableError,
    WorkerCrashedError,
    WorkerStartError,
)

RayError = EmberError
RayTaskError = TaskError

__all__ = [
    "EmberError",
    "GetTimeoutError",
    "ObjectLostError",
    "OwnerDiedError",
    "RayError",
    "RayTaskError",
    "RuntimeConnectionError",
    "TaskCancelledError",
    "TaskError",
    "TaskUnschedulableError",
    "WorkerCrashedError",
    "WorkerStartError",
]
