"""The errors ember raises, with Ray's names as aliases so ``except ray.exceptions.X`` works."""

from ember.runtime.objects.exceptions import (
    ActorDiedError,
    ActorError,
    EmberError,
    GetTimeoutError,
    ObjectLostError,
    ObjectStoreFullError,
    OwnerDiedError,
    PlacementGroupError,
    RuntimeConnectionError,
    RuntimeEnvSetupError,
    TaskCancelledError,
    TaskError,
    TaskUnschedulableError,
    VersionMismatchError,
    WorkerCrashedError,
    WorkerStartError,
)

RayError = EmberError
RayTaskError = TaskError
RayActorError = ActorError

__all__ = [
    "ActorDiedError",
    "ActorError",
    "EmberError",
    "GetTimeoutError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "OwnerDiedError",
    "PlacementGroupError",
    "RayActorError",
    "RayError",
    "RayTaskError",
    "RuntimeConnectionError",
    "RuntimeEnvSetupError",
    "TaskCancelledError",
    "TaskError",
    "TaskUnschedulableError",
    "VersionMismatchError",
    "WorkerCrashedError",
    "WorkerStartError",
]
