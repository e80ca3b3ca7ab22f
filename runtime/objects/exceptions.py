"""The errors ember raises to users.

Every failure crosses process boundaries as one of these, pickled, and re-raised where the
program calls ``get``. A task's own exception arrives as :class:`TaskError`, which is also an
instance of the original exception's type (``except ValueError`` keeps working) and carries the
remote traceback in its message.
"""

from __future__ import annotations

import types
from typing import Any


class EmberError(Exception):
    """Base of every error ember raises."""


class TaskError(EmberError):
    """A task's function raised; ``cause`` is the original exception.

    ``get`` raises ``error.as_instanceof_cause()``: an instance of a class deriving from both
    ``TaskError`` and the cause's type, so that handlers for the original type still catch it.
    """

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None,
        pid: int | None = None,
        host: str | None = None,
    ) -> None:
        self._describe(function_name, traceback_str, cause, pid, host)
        Exception.__init__(self, self._message())

    def _describe(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None,
        pid: int | None,
        host: str | None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.host = host

    def _message(self) -> str:
        where = f" (pid={self.pid}, host={self.host})" if self.pid else ""
        return f"task {self.function_name}{where} failed:\n{self.traceback_str.rstrip()}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        # Always travel as the plain class: the dual classes below exist only in one process.
        return (
            TaskError,
            (self.function_name, self.traceback_str, self.cause, self.pid, self.host),
        )

    def root_cause(self) -> BaseException | None:
        cause = self.cause
        while isinstance(cause, TaskError):
            cause = cause.cause
        return cause

    def as_instanceof_cause(self) -> TaskError:
        cause = self.root_cause()
        if cause is None:
            return self
        cause_cls = type(cause)
        if issubclass(TaskError, cause_cls):
            return self
        try:
            cls: Any = _dual_class(cause_cls)
        except TypeError:  # the two classes cannot be combined (instance layout conflict)
            return self
        try:
            # The cause's own __new__ restores C-level state (OSError's errno, filename, ...).
            error = cls.__new__(cls, *cause.args)
        except Exception:
            try:
                error = cls.__new__(cls)
            except Exception:
                return self
        try:
            cause_cls.__init__(error, *cause.args)
        except Exception:
            pass
        _copy_builtin_fields(cause, error)
        error.__dict__.update(getattr(cause, "__dict__", {}))
        error._describe(self.function_name, self.traceback_str, self.cause, self.pid, self.host)
        return error


_DUAL_CLASSES: dict[type, type] = {}
_OWN_FIELDS = {"args"}


def _copy_builtin_fields(source: BaseException, target: BaseException) -> None:
    """Copy fields that built-in exceptions keep in C slots (OSError.filename, ...)."""
    for cls in type(source).__mro__:
        if cls.__module__ != "builtins":
            continue
        for name, attribute in vars(cls).items():
            if name.startswith("__") or name in _OWN_FIELDS or not isinstance(
                attribute, types.MemberDescriptorType | types.GetSetDescriptorType
            ):
                continue
            try:
                setattr(target, name, getattr(source, name))
            except (AttributeError, TypeError):
                pass


def _dual_class(cause_cls: type) -> type:
    cls = _DUAL_CLASSES.get(cause_cls)
    if cls is None:
        name = f"TaskError({cause_cls.__name__})"

        def __getattr__(self: TaskError, attribute: str) -> Any:
            # Attributes of the original exception (errno, filename, ...) stay reachable.
            cause = self.__dict__.get("cause")
            root = cause.root_cause() if isinstance(cause, TaskError) else cause
            if root is None:
                raise AttributeError(attribute)
            return getattr(root, attribute)

        cls = type(
            name,
            (TaskError, cause_cls),
            {"__getattr__": __getattr__, "__module__": __name__, "__qualname__": name},
        )
        _DUAL_CLASSES[cause_cls] = cls
    return cls


class ActorError(EmberError):
    """An actor cannot run a call (Ray's RayActorError)."""


class ActorDiedError(ActorError):
    """The actor is dead (killed, crashed beyond max_restarts, its constructor raised, its node
    or owner is gone), or died while running the call; the message says which."""

    def __init__(self, message: str, actor_id: bytes = b"") -> None:
        super().__init__(message)
        self.actor_id = actor_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorDiedError, (str(self), self.actor_id))


class WorkerCrashedError(EmberError):
    """The worker process running a task died before the task finished, on every attempt."""


class TaskCancelledError(EmberError):
    """The task was cancelled with ``cancel`` before it finished."""


class GetTimeoutError(EmberError, TimeoutError):
    """``get`` gave up waiting after its timeout."""


class ObjectLostError(EmberError):
    """Every copy of the object is gone and it cannot be rebuilt."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object (and held its value) exited."""


class ObjectStoreFullError(EmberError, MemoryError):
    """The node's object store has no room for the object, and nothing it holds can be spilled."""


class TaskUnschedulableError(EmberError):
    """The task asks for more resources than any node of the cluster has."""


class PlacementGroupError(EmberError):
    """A placement group can never be ready: it was removed, or no node can ever hold it (the
    message names the group and the bundle)."""


class WorkerStartError(EmberError):
    """A node cannot start the worker processes a task needs."""


class RuntimeEnvSetupError(EmberError):
    """A task's or actor's runtime_env could not be set up on the node chosen for it (a package
    that does not install, a working_dir that cannot be fetched, a setup past its timeout); the
    message names the environment and ends with the tail of the installer's output. Not
    retried: the same environment would fail the same way."""


class ActorRuntimeEnvSetupError(ActorDiedError, RuntimeEnvSetupError):
    """An actor died because its runtime_env could not be set up: both an ``ActorDiedError``
    (what calls to a dead actor raise) and a ``RuntimeEnvSetupError`` (why)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorRuntimeEnvSetupError, (str(self), self.actor_id))


class RuntimeConnectionError(EmberError, ConnectionError):
    """A cluster process (head, node agent, owner) cannot be reached."""


class VersionMismatchError(EmberError):
    """The driver runs another Python (major.minor) or ember version than the cluster: code
    and values travel pickled between them, so both must match."""


def describe_exit(returncode: int | None) -> str:
    """``exit code 1`` or ``killed by SIGKILL``: how a worker's end is told to users."""
    import signal

    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
