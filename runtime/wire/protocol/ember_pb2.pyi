from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValueKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE: _ClassVar[ValueKind]
    ERROR: _ClassVar[ValueKind]

class NodeDrainState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOT_DRAINING: _ClassVar[NodeDrainState]
    DRAINING: _ClassVar[NodeDrainState]
    DRAINED: _ClassVar[NodeDrainState]

class ActorState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PENDING: _ClassVar[ActorState]
    ALIVE: _ClassVar[ActorState]
    RESTARTING: _ClassVar[ActorState]
    DEAD: _ClassVar[ActorState]

class PlacementGroupState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PG_PENDING: _ClassVar[PlacementGroupState]
    PG_CREATED: _ClassVar[PlacementGroupState]
    PG_REMOVED: _ClassVar[PlacementGroupState]
    PG_RESCHEDULING: _ClassVar[PlacementGroupState]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_PENDING: _ClassVar[JobStatus]
    JOB_RUNNING: _ClassVar[JobStatus]
    JOB_STOPPED: _ClassVar[JobStatus]
    JOB_SUCCEEDED: _ClassVar[JobStatus]
    JOB_FAILED: _ClassVar[JobStatus]
VALUE: ValueKind
ERROR: ValueKind
NOT_DRAINING: NodeDrainState
DRAINING: NodeDrainState
DRAINED: NodeDrainState
PENDING: ActorState
ALIVE: ActorState
RESTARTING: ActorState
DEAD: ActorState
PG_PENDING: PlacementGroupState
PG_CREATED: PlacementGroupState
PG_REMOVED: PlacementGroupState
PG_RESCHEDULING: PlacementGroupState
JOB_PENDING: JobStatus
JOB_RUNNING: JobStatus
JOB_STOPPED: JobStatus
JOB_SUCCEEDED: JobStatus
JOB_FAILED: JobStatus

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResourceSet(_message.Message):
    __slots__ = ("quantities",)
    class QuantitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    quantities: _containers.ScalarMap[str, float]
    def __init__(self, quantities: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ObjectRefMsg(_message.Message):
    __slots__ = ("id", "owner")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    owner: str
    def __init__(self, id: _Optional[bytes] = ..., owner: _Optional[str] = ...) -> None: ...

class ObjectLocation(_message.Message):
    __slots__ = ("node_id", "node_address", "size", "offset", "owner_address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    node_address: str
    size: int
    offset: int
    owner_address: str
    def __init__(self, node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., size: _Optional[int] = ..., offset: _Optional[int] = ..., owner_address: _Optional[str] = ...) -> None: ...

class ObjectValue(_message.Message):
    __slots__ = ("id", "data", "kind", "contained", "location")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    data: bytes
    kind: ValueKind
    contained: _containers.RepeatedCompositeFieldContainer[ObjectRefMsg]
    location: ObjectLocation
    def __init__(self, id: _Optional[bytes] = ..., data: _Optional[bytes] = ..., kind: _Optional[_Union[ValueKind, str]] = ..., contained: _Optional[_Iterable[_Union[ObjectRefMsg, _Mapping]]] = ..., location: _Optional[_Union[ObjectLocation, _Mapping]] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "function_id", "function", "name", "args", "arg_values", "num_returns", "attempt", "actor_id", "method", "actor_creation", "max_concurrency", "is_async", "gpu_ids", "cpu_threads", "placement_group_id", "capture_child_tasks")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ARG_VALUES_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ACTOR_CREATION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    CPU_THREADS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_CHILD_TASKS_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    function_id: bytes
    function: bytes
    name: str
    args: bytes
    arg_values: _containers.RepeatedCompositeFieldContainer[ObjectValue]
    num_returns: int
    attempt: int
    actor_id: bytes
    method: str
    actor_creation: bool
    max_concurrency: int
    is_async: bool
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    cpu_threads: int
    placement_group_id: bytes
    capture_child_tasks: bool
    def __init__(self, task_id: _Optional[bytes] = ..., function_id: _Optional[bytes] = ..., function: _Optional[bytes] = ..., name: _Optional[str] = ..., args: _Optional[bytes] = ..., arg_values: _Optional[_Iterable[_Union[ObjectValue, _Mapping]]] = ..., num_returns: _Optional[int] = ..., attempt: _Optional[int] = ..., actor_id: _Optional[bytes] = ..., method: _Optional[str] = ..., actor_creation: _Optional[bool] = ..., max_concurrency: _Optional[int] = ..., is_async: _Optional[bool] = ..., gpu_ids: _Optional[_Iterable[str]] = ..., cpu_threads: _Optional[int] = ..., placement_group_id: _Optional[bytes] = ..., capture_child_tasks: _Optional[bool] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "returns", "run_seconds", "application_error", "error_types", "end_time")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    RUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPES_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    returns: _containers.RepeatedCompositeFieldContainer[ObjectValue]
    run_seconds: float
    application_error: bool
    error_types: _containers.RepeatedScalarFieldContainer[str]
    end_time: float
    def __init__(self, task_id: _Optional[bytes] = ..., returns: _Optional[_Iterable[_Union[ObjectValue, _Mapping]]] = ..., run_seconds: _Optional[float] = ..., application_error: _Optional[bool] = ..., error_types: _Optional[_Iterable[str]] = ..., end_time: _Optional[float] = ...) -> None: ...

class JobConfig(_message.Message):
    __slots__ = ("job_id", "driver_address", "code_paths", "working_dir", "namespace")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CODE_PATHS_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    driver_address: str
    code_paths: _containers.RepeatedScalarFieldContainer[str]
    working_dir: str
    namespace: str
    def __init__(self, job_id: _Optional[bytes] = ..., driver_address: _Optional[str] = ..., code_paths: _Optional[_Iterable[str]] = ..., working_dir: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class ChannelHello(_message.Message):
    __slots__ = ("token", "job", "owner_address")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    job: JobConfig
    owner_address: str
    def __init__(self, token: _Optional[bytes] = ..., job: _Optional[_Union[JobConfig, _Mapping]] = ..., owner_address: _Optional[str] = ...) -> None: ...

class ChannelWelcome(_message.Message):
    __slots__ = ("worker_id", "error")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    error: str
    def __init__(self, worker_id: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ...) -> None: ...

class ExecuteReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("task_ids", "force")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[bytes]
    force: bool
    def __init__(self, task_ids: _Optional[_Iterable[bytes]] = ..., force: _Optional[bool] = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    def __init__(self, id: _Optional[bytes] = ...) -> None: ...

class GetObjectReply(_message.Message):
    __slots__ = ("value", "lost_reason", "id")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOST_REASON_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    value: ObjectValue
    lost_reason: str
    id: bytes
    def __init__(self, value: _Optional[_Union[ObjectValue, _Mapping]] = ..., lost_reason: _Optional[str] = ..., id: _Optional[bytes] = ...) -> None: ...

class BorrowUpdate(_message.Message):
    __slots__ = ("borrower", "added", "removed")
    BORROWER_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    borrower: str
    added: _containers.RepeatedScalarFieldContainer[bytes]
    removed: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, borrower: _Optional[str] = ..., added: _Optional[_Iterable[bytes]] = ..., removed: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("task_name", "text", "is_stderr")
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_STDERR_FIELD_NUMBER: _ClassVar[int]
    task_name: str
    text: str
    is_stderr: bool
    def __init__(self, task_name: _Optional[str] = ..., text: _Optional[str] = ..., is_stderr: _Optional[bool] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("pid", "node_host", "records")
    PID_FIELD_NUMBER: _ClassVar[int]
    NODE_HOST_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    node_host: str
    records: _containers.RepeatedCompositeFieldContainer[LogRecord]
    def __init__(self, pid: _Optional[int] = ..., node_host: _Optional[str] = ..., records: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ...) -> None: ...

class MovedObject(_message.Message):
    __slots__ = ("id", "location")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    location: ObjectLocation
    def __init__(self, id: _Optional[bytes] = ..., location: _Optional[_Union[ObjectLocation, _Mapping]] = ...) -> None: ...

class ObjectsMovedRequest(_message.Message):
    __slots__ = ("objects", "from_owner")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    FROM_OWNER_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[MovedObject]
    from_owner: bool
    def __init__(self, objects: _Optional[_Iterable[_Union[MovedObject, _Mapping]]] = ..., from_owner: _Optional[bool] = ...) -> None: ...

class LeaseOwner(_message.Message):
    __slots__ = ("job_id", "owner_address", "pid", "head")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    owner_address: str
    pid: int
    head: bool
    def __init__(self, job_id: _Optional[bytes] = ..., owner_address: _Optional[str] = ..., pid: _Optional[int] = ..., head: _Optional[bool] = ...) -> None: ...

class AdoptRequest(_message.Message):
    __slots__ = ("request_id", "actor_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    actor_id: bytes
    def __init__(self, request_id: _Optional[int] = ..., actor_id: _Optional[bytes] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("request_id", "shape", "task_name", "spilled", "hold", "hold_set", "job_id", "actor_id", "detached", "constraints", "runtime_env")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    HOLD_SET_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    shape: ResourceSet
    task_name: str
    spilled: bool
    hold: ResourceSet
    hold_set: bool
    job_id: bytes
    actor_id: bytes
    detached: bool
    constraints: SchedulingConstraints
    runtime_env: str
    def __init__(self, request_id: _Optional[int] = ..., shape: _Optional[_Union[ResourceSet, _Mapping]] = ..., task_name: _Optional[str] = ..., spilled: _Optional[bool] = ..., hold: _Optional[_Union[ResourceSet, _Mapping]] = ..., hold_set: _Optional[bool] = ..., job_id: _Optional[bytes] = ..., actor_id: _Optional[bytes] = ..., detached: _Optional[bool] = ..., constraints: _Optional[_Union[SchedulingConstraints, _Mapping]] = ..., runtime_env: _Optional[str] = ...) -> None: ...

class SchedulingConstraints(_message.Message):
    __slots__ = ("node_affinity", "soft", "label_selector")
    class LabelSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_AFFINITY_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    node_affinity: bytes
    soft: bool
    label_selector: _containers.ScalarMap[str, str]
    def __init__(self, node_affinity: _Optional[bytes] = ..., soft: _Optional[bool] = ..., label_selector: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LeaseReturn(_message.Message):
    __slots__ = ("lease_id", "discard_worker")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DISCARD_WORKER_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    discard_worker: bool
    def __init__(self, lease_id: _Optional[int] = ..., discard_worker: _Optional[bool] = ...) -> None: ...

class LeaseCancel(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    def __init__(self, request_id: _Optional[int] = ...) -> None: ...

class LeaseClientMessage(_message.Message):
    __slots__ = ("owner", "request", "release", "cancel", "adopt")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ADOPT_FIELD_NUMBER: _ClassVar[int]
    owner: LeaseOwner
    request: LeaseRequest
    release: LeaseReturn
    cancel: LeaseCancel
    adopt: AdoptRequest
    def __init__(self, owner: _Optional[_Union[LeaseOwner, _Mapping]] = ..., request: _Optional[_Union[LeaseRequest, _Mapping]] = ..., release: _Optional[_Union[LeaseReturn, _Mapping]] = ..., cancel: _Optional[_Union[LeaseCancel, _Mapping]] = ..., adopt: _Optional[_Union[AdoptRequest, _Mapping]] = ...) -> None: ...

class LeaseGrant(_message.Message):
    __slots__ = ("request_id", "lease_id", "worker_id", "worker_address", "node_id", "worker_pid", "worker_channel", "gpu_ids")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    WORKER_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    lease_id: int
    worker_id: bytes
    worker_address: str
    node_id: bytes
    worker_pid: int
    worker_channel: str
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[int] = ..., lease_id: _Optional[int] = ..., worker_id: _Optional[bytes] = ..., worker_address: _Optional[str] = ..., node_id: _Optional[bytes] = ..., worker_pid: _Optional[int] = ..., worker_channel: _Optional[str] = ..., gpu_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LeaseSpillback(_message.Message):
    __slots__ = ("request_id", "node_address", "node_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    node_address: str
    node_id: bytes
    def __init__(self, request_id: _Optional[int] = ..., node_address: _Optional[str] = ..., node_id: _Optional[bytes] = ...) -> None: ...

class LeaseRejected(_message.Message):
    __slots__ = ("request_id", "reason", "infeasible", "worker_start_failed", "runtime_env_failed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    WORKER_START_FAILED_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FAILED_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    reason: str
    infeasible: bool
    worker_start_failed: bool
    runtime_env_failed: bool
    def __init__(self, request_id: _Optional[int] = ..., reason: _Optional[str] = ..., infeasible: _Optional[bool] = ..., worker_start_failed: _Optional[bool] = ..., runtime_env_failed: _Optional[bool] = ...) -> None: ...

class LeaseLost(_message.Message):
    __slots__ = ("lease_id", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    reason: str
    def __init__(self, lease_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class LeaseDrain(_message.Message):
    __slots__ = ("lease_id", "deadline_passed", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_PASSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    deadline_passed: bool
    reason: str
    def __init__(self, lease_id: _Optional[int] = ..., deadline_passed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class LeaseServerMessage(_message.Message):
    __slots__ = ("grant", "spillback", "rejected", "lost", "reclaim_idle", "drain")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    SPILLBACK_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_IDLE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    grant: LeaseGrant
    spillback: LeaseSpillback
    rejected: LeaseRejected
    lost: LeaseLost
    reclaim_idle: Empty
    drain: LeaseDrain
    def __init__(self, grant: _Optional[_Union[LeaseGrant, _Mapping]] = ..., spillback: _Optional[_Union[LeaseSpillback, _Mapping]] = ..., rejected: _Optional[_Union[LeaseRejected, _Mapping]] = ..., lost: _Optional[_Union[LeaseLost, _Mapping]] = ..., reclaim_idle: _Optional[_Union[Empty, _Mapping]] = ..., drain: _Optional[_Union[LeaseDrain, _Mapping]] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("worker_id", "address", "pid", "channel_address")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    address: str
    pid: int
    channel_address: str
    def __init__(self, worker_id: _Optional[bytes] = ..., address: _Optional[str] = ..., pid: _Optional[int] = ..., channel_address: _Optional[str] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "blocked", "busy")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    blocked: bool
    busy: Empty
    def __init__(self, hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., blocked: _Optional[bool] = ..., busy: _Optional[_Union[Empty, _Mapping]] = ...) -> None: ...

class AgentToWorker(_message.Message):
    __slots__ = ("exit_if_idle",)
    EXIT_IF_IDLE_FIELD_NUMBER: _ClassVar[int]
    exit_if_idle: Empty
    def __init__(self, exit_if_idle: _Optional[_Union[Empty, _Mapping]] = ...) -> None: ...

class CreateObjectRequest(_message.Message):
    __slots__ = ("object_id", "size", "owner_address", "creator")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    owner_address: str
    creator: str
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., owner_address: _Optional[str] = ..., creator: _Optional[str] = ...) -> None: ...

class CreateObjectReply(_message.Message):
    __slots__ = ("offset", "error", "store_full", "exists")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STORE_FULL_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    offset: int
    error: str
    store_full: bool
    exists: bool
    def __init__(self, offset: _Optional[int] = ..., error: _Optional[str] = ..., store_full: _Optional[bool] = ..., exists: _Optional[bool] = ...) -> None: ...

class ObjectIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, ids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RestoreObjectReply(_message.Message):
    __slots__ = ("offset", "lost_reason")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LOST_REASON_FIELD_NUMBER: _ClassVar[int]
    offset: int
    lost_reason: str
    def __init__(self, offset: _Optional[int] = ..., lost_reason: _Optional[str] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("object_id", "location", "owner_address")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    location: ObjectLocation
    owner_address: str
    def __init__(self, object_id: _Optional[bytes] = ..., location: _Optional[_Union[ObjectLocation, _Mapping]] = ..., owner_address: _Optional[str] = ...) -> None: ...

class FetchReply(_message.Message):
    __slots__ = ("location", "lost_reason")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    LOST_REASON_FIELD_NUMBER: _ClassVar[int]
    location: ObjectLocation
    lost_reason: str
    def __init__(self, location: _Optional[_Union[ObjectLocation, _Mapping]] = ..., lost_reason: _Optional[str] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("object_id", "requester")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    requester: str
    def __init__(self, object_id: _Optional[bytes] = ..., requester: _Optional[str] = ...) -> None: ...

class ObjectChunk(_message.Message):
    __slots__ = ("size", "data", "object_id", "owner_address", "copies")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    size: int
    data: bytes
    object_id: bytes
    owner_address: str
    copies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, size: _Optional[int] = ..., data: _Optional[bytes] = ..., object_id: _Optional[bytes] = ..., owner_address: _Optional[str] = ..., copies: _Optional[_Iterable[str]] = ...) -> None: ...

class PushReply(_message.Message):
    __slots__ = ("location", "error", "store_full")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STORE_FULL_FIELD_NUMBER: _ClassVar[int]
    location: ObjectLocation
    error: str
    store_full: bool
    def __init__(self, location: _Optional[_Union[ObjectLocation, _Mapping]] = ..., error: _Optional[str] = ..., store_full: _Optional[bool] = ...) -> None: ...

class StoreInfo(_message.Message):
    __slots__ = ("arena", "capacity", "used", "spilled", "restored", "objects", "created", "recycled", "transfer_port", "broken", "node_id")
    ARENA_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RECYCLED_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_PORT_FIELD_NUMBER: _ClassVar[int]
    BROKEN_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    arena: str
    capacity: int
    used: int
    spilled: int
    restored: int
    objects: int
    created: int
    recycled: int
    transfer_port: int
    broken: str
    node_id: bytes
    def __init__(self, arena: _Optional[str] = ..., capacity: _Optional[int] = ..., used: _Optional[int] = ..., spilled: _Optional[int] = ..., restored: _Optional[int] = ..., objects: _Optional[int] = ..., created: _Optional[int] = ..., recycled: _Optional[int] = ..., transfer_port: _Optional[int] = ..., broken: _Optional[str] = ..., node_id: _Optional[bytes] = ...) -> None: ...

class BulkRequest(_message.Message):
    __slots__ = ("token", "object_id", "requester")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    object_id: bytes
    requester: str
    def __init__(self, token: _Optional[bytes] = ..., object_id: _Optional[bytes] = ..., requester: _Optional[str] = ...) -> None: ...

class BulkHeader(_message.Message):
    __slots__ = ("size", "error")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    size: int
    error: str
    def __init__(self, size: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class HistogramData(_message.Message):
    __slots__ = ("bounds", "counts", "sum")
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    bounds: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    sum: float
    def __init__(self, bounds: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., sum: _Optional[float] = ...) -> None: ...

class MetricSample(_message.Message):
    __slots__ = ("name", "kind", "description", "tags", "value", "histogram")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    description: str
    tags: _containers.ScalarMap[str, str]
    value: float
    histogram: HistogramData
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., histogram: _Optional[_Union[HistogramData, _Mapping]] = ...) -> None: ...

class MetricsReport(_message.Message):
    __slots__ = ("pid", "component", "tasks", "tasks_finished", "tasks_failed", "scheduling_latency", "run_time", "user", "ended", "running", "pending", "live_counts", "ended_counts", "ended_dropped", "times")
    class TasksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PID_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FINISHED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_LATENCY_FIELD_NUMBER: _ClassVar[int]
    RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LIVE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_DROPPED_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    pid: int
    component: str
    tasks: _containers.ScalarMap[str, int]
    tasks_finished: int
    tasks_failed: int
    scheduling_latency: HistogramData
    run_time: HistogramData
    user: _containers.RepeatedCompositeFieldContainer[MetricSample]
    ended: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    running: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    pending: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    live_counts: _containers.RepeatedCompositeFieldContainer[TaskCount]
    ended_counts: _containers.RepeatedCompositeFieldContainer[TaskCount]
    ended_dropped: int
    times: TaskTimes
    def __init__(self, pid: _Optional[int] = ..., component: _Optional[str] = ..., tasks: _Optional[_Mapping[str, int]] = ..., tasks_finished: _Optional[int] = ..., tasks_failed: _Optional[int] = ..., scheduling_latency: _Optional[_Union[HistogramData, _Mapping]] = ..., run_time: _Optional[_Union[HistogramData, _Mapping]] = ..., user: _Optional[_Iterable[_Union[MetricSample, _Mapping]]] = ..., ended: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., running: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., pending: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., live_counts: _Optional[_Iterable[_Union[TaskCount, _Mapping]]] = ..., ended_counts: _Optional[_Iterable[_Union[TaskCount, _Mapping]]] = ..., ended_dropped: _Optional[int] = ..., times: _Optional[_Union[TaskTimes, _Mapping]] = ...) -> None: ...

class TaskTimes(_message.Message):
    __slots__ = ("job_id", "owner_pid", "names", "node_ids", "task_id", "name", "node", "worker_pid", "submitted", "scheduled", "started", "ended", "failed", "attempt", "dropped")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_PID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    owner_pid: int
    names: _containers.RepeatedScalarFieldContainer[str]
    node_ids: _containers.RepeatedScalarFieldContainer[bytes]
    task_id: _containers.RepeatedScalarFieldContainer[bytes]
    name: _containers.RepeatedScalarFieldContainer[int]
    node: _containers.RepeatedScalarFieldContainer[int]
    worker_pid: _containers.RepeatedScalarFieldContainer[int]
    submitted: _containers.RepeatedScalarFieldContainer[float]
    scheduled: _containers.RepeatedScalarFieldContainer[float]
    started: _containers.RepeatedScalarFieldContainer[float]
    ended: _containers.RepeatedScalarFieldContainer[float]
    failed: _containers.RepeatedScalarFieldContainer[bool]
    attempt: _containers.RepeatedScalarFieldContainer[int]
    dropped: int
    def __init__(self, job_id: _Optional[bytes] = ..., owner_pid: _Optional[int] = ..., names: _Optional[_Iterable[str]] = ..., node_ids: _Optional[_Iterable[bytes]] = ..., task_id: _Optional[_Iterable[bytes]] = ..., name: _Optional[_Iterable[int]] = ..., node: _Optional[_Iterable[int]] = ..., worker_pid: _Optional[_Iterable[int]] = ..., submitted: _Optional[_Iterable[float]] = ..., scheduled: _Optional[_Iterable[float]] = ..., started: _Optional[_Iterable[float]] = ..., ended: _Optional[_Iterable[float]] = ..., failed: _Optional[_Iterable[bool]] = ..., attempt: _Optional[_Iterable[int]] = ..., dropped: _Optional[int] = ...) -> None: ...

class TaskTimesRequest(_message.Message):
    __slots__ = ("job_id", "since")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    since: float
    def __init__(self, job_id: _Optional[bytes] = ..., since: _Optional[float] = ...) -> None: ...

class NodeTaskTimes(_message.Message):
    __slots__ = ("node_id", "node_address", "times", "dropped", "error")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    node_address: str
    times: _containers.RepeatedCompositeFieldContainer[TaskTimes]
    dropped: int
    error: str
    def __init__(self, node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., times: _Optional[_Iterable[_Union[TaskTimes, _Mapping]]] = ..., dropped: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ClusterTaskTimes(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeTaskTimes]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeTaskTimes, _Mapping]]] = ...) -> None: ...

class ThreadStack(_message.Message):
    __slots__ = ("name", "ident", "daemon", "stack")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDENT_FIELD_NUMBER: _ClassVar[int]
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    name: str
    ident: int
    daemon: bool
    stack: str
    def __init__(self, name: _Optional[str] = ..., ident: _Optional[int] = ..., daemon: _Optional[bool] = ..., stack: _Optional[str] = ...) -> None: ...

class ProcessStacks(_message.Message):
    __slots__ = ("pid", "kind", "node_id", "node_address", "worker_id", "task_name", "task_id", "task_started", "actor", "threads", "py_spy", "error")
    PID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_STARTED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    PY_SPY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    pid: int
    kind: str
    node_id: bytes
    node_address: str
    worker_id: bytes
    task_name: str
    task_id: bytes
    task_started: float
    actor: str
    threads: _containers.RepeatedCompositeFieldContainer[ThreadStack]
    py_spy: str
    error: str
    def __init__(self, pid: _Optional[int] = ..., kind: _Optional[str] = ..., node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., worker_id: _Optional[bytes] = ..., task_name: _Optional[str] = ..., task_id: _Optional[bytes] = ..., task_started: _Optional[float] = ..., actor: _Optional[str] = ..., threads: _Optional[_Iterable[_Union[ThreadStack, _Mapping]]] = ..., py_spy: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class StackRequest(_message.Message):
    __slots__ = ("node", "pid", "py_spy")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PY_SPY_FIELD_NUMBER: _ClassVar[int]
    node: str
    pid: int
    py_spy: bool
    def __init__(self, node: _Optional[str] = ..., pid: _Optional[int] = ..., py_spy: _Optional[bool] = ...) -> None: ...

class ClusterStacks(_message.Message):
    __slots__ = ("processes", "errors")
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessStacks]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessStacks, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class ProfileRequest(_message.Message):
    __slots__ = ("node", "pid", "duration", "rate", "sampler", "idle")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    node: str
    pid: int
    duration: float
    rate: int
    sampler: str
    idle: bool
    def __init__(self, node: _Optional[str] = ..., pid: _Optional[int] = ..., duration: _Optional[float] = ..., rate: _Optional[int] = ..., sampler: _Optional[str] = ..., idle: _Optional[bool] = ...) -> None: ...

class StackCount(_message.Message):
    __slots__ = ("stack", "count")
    STACK_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    stack: str
    count: int
    def __init__(self, stack: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ProcessProfile(_message.Message):
    __slots__ = ("pid", "kind", "node_id", "node_address", "sampler", "started", "duration", "rate", "stacks", "samples", "dropped", "note", "error")
    PID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    STACKS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    pid: int
    kind: str
    node_id: bytes
    node_address: str
    sampler: str
    started: float
    duration: float
    rate: int
    stacks: _containers.RepeatedCompositeFieldContainer[StackCount]
    samples: int
    dropped: int
    note: str
    error: str
    def __init__(self, pid: _Optional[int] = ..., kind: _Optional[str] = ..., node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., sampler: _Optional[str] = ..., started: _Optional[float] = ..., duration: _Optional[float] = ..., rate: _Optional[int] = ..., stacks: _Optional[_Iterable[_Union[StackCount, _Mapping]]] = ..., samples: _Optional[int] = ..., dropped: _Optional[int] = ..., note: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ClusterProfiles(_message.Message):
    __slots__ = ("processes", "errors")
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessProfile]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessProfile, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskLogRequest(_message.Message):
    __slots__ = ("node", "pid", "task_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    pid: int
    task_id: bytes
    def __init__(self, node: _Optional[str] = ..., pid: _Optional[int] = ..., task_id: _Optional[bytes] = ...) -> None: ...

class TaskLookup(_message.Message):
    __slots__ = ("task_id", "actor_id", "limit")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    actor_id: bytes
    limit: int
    def __init__(self, task_id: _Optional[bytes] = ..., actor_id: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class TaskLog(_message.Message):
    __slots__ = ("found", "out", "err", "truncated", "error")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    OUT_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    found: bool
    out: str
    err: str
    truncated: bool
    error: str
    def __init__(self, found: _Optional[bool] = ..., out: _Optional[str] = ..., err: _Optional[str] = ..., truncated: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class TaskCount(_message.Message):
    __slots__ = ("name", "type", "state", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    state: str
    count: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., state: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "name", "state", "time", "run_seconds", "error", "attempt", "worker_pid", "node_address", "owner_pid", "job_id", "type", "actor_id", "func_name", "worker_id", "node_id", "required", "created", "error_type", "owner_address", "traceback", "args_size", "ref_arg_sizes", "scheduled", "started")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OWNER_PID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    FUNC_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    ARGS_SIZE_FIELD_NUMBER: _ClassVar[int]
    REF_ARG_SIZES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    name: str
    state: str
    time: float
    run_seconds: float
    error: str
    attempt: int
    worker_pid: int
    node_address: str
    owner_pid: int
    job_id: bytes
    type: str
    actor_id: bytes
    func_name: str
    worker_id: bytes
    node_id: bytes
    required: ResourceSet
    created: float
    error_type: str
    owner_address: str
    traceback: str
    args_size: int
    ref_arg_sizes: _containers.RepeatedScalarFieldContainer[int]
    scheduled: float
    started: float
    def __init__(self, task_id: _Optional[bytes] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., time: _Optional[float] = ..., run_seconds: _Optional[float] = ..., error: _Optional[str] = ..., attempt: _Optional[int] = ..., worker_pid: _Optional[int] = ..., node_address: _Optional[str] = ..., owner_pid: _Optional[int] = ..., job_id: _Optional[bytes] = ..., type: _Optional[str] = ..., actor_id: _Optional[bytes] = ..., func_name: _Optional[str] = ..., worker_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., required: _Optional[_Union[ResourceSet, _Mapping]] = ..., created: _Optional[float] = ..., error_type: _Optional[str] = ..., owner_address: _Optional[str] = ..., traceback: _Optional[str] = ..., args_size: _Optional[int] = ..., ref_arg_sizes: _Optional[_Iterable[int]] = ..., scheduled: _Optional[float] = ..., started: _Optional[float] = ...) -> None: ...

class TaskList(_message.Message):
    __slots__ = ("ended", "running", "counts", "pending", "live_counts", "ended_counts", "ended_dropped")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENDED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LIVE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_DROPPED_FIELD_NUMBER: _ClassVar[int]
    ended: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    running: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    counts: _containers.ScalarMap[str, int]
    pending: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    live_counts: _containers.RepeatedCompositeFieldContainer[TaskCount]
    ended_counts: _containers.RepeatedCompositeFieldContainer[TaskCount]
    ended_dropped: int
    def __init__(self, ended: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., running: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., counts: _Optional[_Mapping[str, int]] = ..., pending: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., live_counts: _Optional[_Iterable[_Union[TaskCount, _Mapping]]] = ..., ended_counts: _Optional[_Iterable[_Union[TaskCount, _Mapping]]] = ..., ended_dropped: _Optional[int] = ...) -> None: ...

class NodeTasks(_message.Message):
    __slots__ = ("node_id", "node_address", "tasks", "error")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    node_address: str
    tasks: TaskList
    error: str
    def __init__(self, node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., tasks: _Optional[_Union[TaskList, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class ClusterTasks(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeTasks]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeTasks, _Mapping]]] = ...) -> None: ...

class ObjectView(_message.Message):
    __slots__ = ("object_id", "size", "reference_type", "task_status", "attempt", "owner_address", "reasons", "borrowers", "pending_tasks", "captured_in", "call_site", "in_memory_store")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    BORROWERS_FIELD_NUMBER: _ClassVar[int]
    PENDING_TASKS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_IN_FIELD_NUMBER: _ClassVar[int]
    CALL_SITE_FIELD_NUMBER: _ClassVar[int]
    IN_MEMORY_STORE_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    reference_type: str
    task_status: str
    attempt: int
    owner_address: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    borrowers: _containers.RepeatedScalarFieldContainer[str]
    pending_tasks: _containers.RepeatedScalarFieldContainer[str]
    captured_in: _containers.RepeatedScalarFieldContainer[bytes]
    call_site: str
    in_memory_store: bool
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., reference_type: _Optional[str] = ..., task_status: _Optional[str] = ..., attempt: _Optional[int] = ..., owner_address: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., borrowers: _Optional[_Iterable[str]] = ..., pending_tasks: _Optional[_Iterable[str]] = ..., captured_in: _Optional[_Iterable[bytes]] = ..., call_site: _Optional[str] = ..., in_memory_store: _Optional[bool] = ...) -> None: ...

class ProcessObjects(_message.Message):
    __slots__ = ("pid", "kind", "address", "host", "node_id", "objects", "omitted", "error", "job_id")
    PID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    OMITTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    kind: str
    address: str
    host: str
    node_id: bytes
    objects: _containers.RepeatedCompositeFieldContainer[ObjectView]
    omitted: int
    error: str
    job_id: bytes
    def __init__(self, pid: _Optional[int] = ..., kind: _Optional[str] = ..., address: _Optional[str] = ..., host: _Optional[str] = ..., node_id: _Optional[bytes] = ..., objects: _Optional[_Iterable[_Union[ObjectView, _Mapping]]] = ..., omitted: _Optional[int] = ..., error: _Optional[str] = ..., job_id: _Optional[bytes] = ...) -> None: ...

class StoredObject(_message.Message):
    __slots__ = ("object_id", "size", "owner_address", "spilled", "primary")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    owner_address: str
    spilled: bool
    primary: bool
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., owner_address: _Optional[str] = ..., spilled: _Optional[bool] = ..., primary: _Optional[bool] = ...) -> None: ...

class NodeStore(_message.Message):
    __slots__ = ("node_id", "node_address", "objects", "omitted", "capacity", "used", "spilled")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    OMITTED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    node_address: str
    objects: _containers.RepeatedCompositeFieldContainer[StoredObject]
    omitted: int
    capacity: int
    used: int
    spilled: int
    def __init__(self, node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[StoredObject, _Mapping]]] = ..., omitted: _Optional[int] = ..., capacity: _Optional[int] = ..., used: _Optional[int] = ..., spilled: _Optional[int] = ...) -> None: ...

class ClusterObjects(_message.Message):
    __slots__ = ("processes", "errors", "stores")
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    STORES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessObjects]
    errors: _containers.RepeatedScalarFieldContainer[str]
    stores: _containers.RepeatedCompositeFieldContainer[NodeStore]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessObjects, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ..., stores: _Optional[_Iterable[_Union[NodeStore, _Mapping]]] = ...) -> None: ...

class WorkerView(_message.Message):
    __slots__ = ("worker_id", "pid", "state", "job_id", "actor_id", "owner", "age_seconds", "detached", "address", "channel_address")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    pid: int
    state: str
    job_id: bytes
    actor_id: bytes
    owner: str
    age_seconds: float
    detached: bool
    address: str
    channel_address: str
    def __init__(self, worker_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., state: _Optional[str] = ..., job_id: _Optional[bytes] = ..., actor_id: _Optional[bytes] = ..., owner: _Optional[str] = ..., age_seconds: _Optional[float] = ..., detached: _Optional[bool] = ..., address: _Optional[str] = ..., channel_address: _Optional[str] = ...) -> None: ...

class WorkerList(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerView]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerView, _Mapping]]] = ...) -> None: ...

class LogFile(_message.Message):
    __slots__ = ("name", "size", "modified")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    modified: float
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., modified: _Optional[float] = ...) -> None: ...

class LogList(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[LogFile]
    def __init__(self, files: _Optional[_Iterable[_Union[LogFile, _Mapping]]] = ...) -> None: ...

class TailRequest(_message.Message):
    __slots__ = ("name", "lines", "offset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    name: str
    lines: int
    offset: int
    def __init__(self, name: _Optional[str] = ..., lines: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class TailReply(_message.Message):
    __slots__ = ("text", "end")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    text: str
    end: int
    def __init__(self, text: _Optional[str] = ..., end: _Optional[int] = ...) -> None: ...

class NodeLogs(_message.Message):
    __slots__ = ("node_id", "node_address", "files", "error")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    node_address: str
    files: _containers.RepeatedCompositeFieldContainer[LogFile]
    error: str
    def __init__(self, node_id: _Optional[bytes] = ..., node_address: _Optional[str] = ..., files: _Optional[_Iterable[_Union[LogFile, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class ClusterLogs(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeLogs]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeLogs, _Mapping]]] = ...) -> None: ...

class NodeTypes(_message.Message):
    __slots__ = ("shapes", "labels")
    SHAPES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    shapes: _containers.RepeatedCompositeFieldContainer[ResourceSet]
    labels: _containers.RepeatedCompositeFieldContainer[NodeLabels]
    def __init__(self, shapes: _Optional[_Iterable[_Union[ResourceSet, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[NodeLabels, _Mapping]]] = ...) -> None: ...

class NodeLabels(_message.Message):
    __slots__ = ("labels",)
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ResourceRequest(_message.Message):
    __slots__ = ("bundles",)
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[ResourceSet]
    def __init__(self, bundles: _Optional[_Iterable[_Union[ResourceSet, _Mapping]]] = ...) -> None: ...

class NodeLoad(_message.Message):
    __slots__ = ("node_id", "address", "total", "available", "idle_seconds", "draining", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    address: str
    total: ResourceSet
    available: ResourceSet
    idle_seconds: float
    draining: bool
    labels: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[bytes] = ..., address: _Optional[str] = ..., total: _Optional[_Union[ResourceSet, _Mapping]] = ..., available: _Optional[_Union[ResourceSet, _Mapping]] = ..., idle_seconds: _Optional[float] = ..., draining: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Demand(_message.Message):
    __slots__ = ("tasks", "actors", "requested", "nodes", "placement_groups")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ResourceDemand]
    actors: _containers.RepeatedCompositeFieldContainer[ResourceDemand]
    requested: _containers.RepeatedCompositeFieldContainer[ResourceSet]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeLoad]
    placement_groups: _containers.RepeatedCompositeFieldContainer[PlacementGroupDemand]
    def __init__(self, tasks: _Optional[_Iterable[_Union[ResourceDemand, _Mapping]]] = ..., actors: _Optional[_Iterable[_Union[ResourceDemand, _Mapping]]] = ..., requested: _Optional[_Iterable[_Union[ResourceSet, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[NodeLoad, _Mapping]]] = ..., placement_groups: _Optional[_Iterable[_Union[PlacementGroupDemand, _Mapping]]] = ...) -> None: ...

class PlacementGroupDemand(_message.Message):
    __slots__ = ("placement_group_id", "strategy", "bundles", "bundle_label_selector")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    strategy: str
    bundles: _containers.RepeatedCompositeFieldContainer[ResourceSet]
    bundle_label_selector: _containers.RepeatedCompositeFieldContainer[LabelSelector]
    def __init__(self, placement_group_id: _Optional[bytes] = ..., strategy: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[ResourceSet, _Mapping]]] = ..., bundle_label_selector: _Optional[_Iterable[_Union[LabelSelector, _Mapping]]] = ...) -> None: ...

class NodeTailRequest(_message.Message):
    __slots__ = ("node", "tail")
    NODE_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    node: str
    tail: TailRequest
    def __init__(self, node: _Optional[str] = ..., tail: _Optional[_Union[TailRequest, _Mapping]] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "address", "host", "total", "labels", "pid", "is_head_node", "store_dir", "metrics_port", "hostname", "draining", "bundles")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IS_HEAD_NODE_FIELD_NUMBER: _ClassVar[int]
    STORE_DIR_FIELD_NUMBER: _ClassVar[int]
    METRICS_PORT_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    address: str
    host: str
    total: ResourceSet
    labels: _containers.ScalarMap[str, str]
    pid: int
    is_head_node: bool
    store_dir: str
    metrics_port: int
    hostname: str
    draining: bool
    bundles: _containers.RepeatedCompositeFieldContainer[HeldBundle]
    def __init__(self, node_id: _Optional[bytes] = ..., address: _Optional[str] = ..., host: _Optional[str] = ..., total: _Optional[_Union[ResourceSet, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., pid: _Optional[int] = ..., is_head_node: _Optional[bool] = ..., store_dir: _Optional[str] = ..., metrics_port: _Optional[int] = ..., hostname: _Optional[str] = ..., draining: _Optional[bool] = ..., bundles: _Optional[_Iterable[_Union[HeldBundle, _Mapping]]] = ...) -> None: ...

class NodeReport(_message.Message):
    __slots__ = ("available", "num_workers", "num_leases", "dead_workers", "pending", "failures", "metrics_port", "drain", "idle_seconds", "store_broken", "bundles", "bundles_listed", "usage")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_LEASES_FIELD_NUMBER: _ClassVar[int]
    DEAD_WORKERS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    METRICS_PORT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORE_BROKEN_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_LISTED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    available: ResourceSet
    num_workers: int
    num_leases: int
    dead_workers: _containers.RepeatedScalarFieldContainer[str]
    pending: _containers.RepeatedCompositeFieldContainer[ResourceDemand]
    failures: _containers.RepeatedScalarFieldContainer[str]
    metrics_port: int
    drain: DrainProgress
    idle_seconds: float
    store_broken: str
    bundles: _containers.RepeatedCompositeFieldContainer[HeldBundle]
    bundles_listed: bool
    usage: NodeUsage
    def __init__(self, available: _Optional[_Union[ResourceSet, _Mapping]] = ..., num_workers: _Optional[int] = ..., num_leases: _Optional[int] = ..., dead_workers: _Optional[_Iterable[str]] = ..., pending: _Optional[_Iterable[_Union[ResourceDemand, _Mapping]]] = ..., failures: _Optional[_Iterable[str]] = ..., metrics_port: _Optional[int] = ..., drain: _Optional[_Union[DrainProgress, _Mapping]] = ..., idle_seconds: _Optional[float] = ..., store_broken: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[HeldBundle, _Mapping]]] = ..., bundles_listed: _Optional[bool] = ..., usage: _Optional[_Union[NodeUsage, _Mapping]] = ...) -> None: ...

class NodeUsage(_message.Message):
    __slots__ = ("store_used", "store_spilled", "store_capacity", "tasks_running", "tasks_finished", "tasks_failed")
    STORE_USED_FIELD_NUMBER: _ClassVar[int]
    STORE_SPILLED_FIELD_NUMBER: _ClassVar[int]
    STORE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TASKS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    TASKS_FINISHED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    store_used: int
    store_spilled: int
    store_capacity: int
    tasks_running: int
    tasks_finished: int
    tasks_failed: int
    def __init__(self, store_used: _Optional[int] = ..., store_spilled: _Optional[int] = ..., store_capacity: _Optional[int] = ..., tasks_running: _Optional[int] = ..., tasks_finished: _Optional[int] = ..., tasks_failed: _Optional[int] = ...) -> None: ...

class DrainProgress(_message.Message):
    __slots__ = ("seconds", "deadline_seconds", "leases_running", "leases_finished", "leases_stopped", "requests_redirected", "objects_copied", "bytes_copied", "objects_remaining", "objects_skipped", "actors_restarted", "actors_died", "actors_remaining", "done", "waiting_for")
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASES_RUNNING_FIELD_NUMBER: _ClassVar[int]
    LEASES_FINISHED_FIELD_NUMBER: _ClassVar[int]
    LEASES_STOPPED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_REDIRECTED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_COPIED_FIELD_NUMBER: _ClassVar[int]
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ACTORS_RESTARTED_FIELD_NUMBER: _ClassVar[int]
    ACTORS_DIED_FIELD_NUMBER: _ClassVar[int]
    ACTORS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    deadline_seconds: float
    leases_running: int
    leases_finished: int
    leases_stopped: int
    requests_redirected: int
    objects_copied: int
    bytes_copied: int
    objects_remaining: int
    objects_skipped: int
    actors_restarted: int
    actors_died: int
    actors_remaining: int
    done: bool
    waiting_for: str
    def __init__(self, seconds: _Optional[float] = ..., deadline_seconds: _Optional[float] = ..., leases_running: _Optional[int] = ..., leases_finished: _Optional[int] = ..., leases_stopped: _Optional[int] = ..., requests_redirected: _Optional[int] = ..., objects_copied: _Optional[int] = ..., bytes_copied: _Optional[int] = ..., objects_remaining: _Optional[int] = ..., objects_skipped: _Optional[int] = ..., actors_restarted: _Optional[int] = ..., actors_died: _Optional[int] = ..., actors_remaining: _Optional[int] = ..., done: _Optional[bool] = ..., waiting_for: _Optional[str] = ...) -> None: ...

class ResourceDemand(_message.Message):
    __slots__ = ("shape", "count", "label_selector")
    class LabelSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    shape: ResourceSet
    count: int
    label_selector: _containers.ScalarMap[str, str]
    def __init__(self, shape: _Optional[_Union[ResourceSet, _Mapping]] = ..., count: _Optional[int] = ..., label_selector: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeMessage(_message.Message):
    __slots__ = ("register", "report", "leaving")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    register: NodeInfo
    report: NodeReport
    leaving: str
    def __init__(self, register: _Optional[_Union[NodeInfo, _Mapping]] = ..., report: _Optional[_Union[NodeReport, _Mapping]] = ..., leaving: _Optional[str] = ...) -> None: ...

class JobEnded(_message.Message):
    __slots__ = ("job_id", "driver_address")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    driver_address: str
    def __init__(self, job_id: _Optional[bytes] = ..., driver_address: _Optional[str] = ...) -> None: ...

class HeadToNode(_message.Message):
    __slots__ = ("registered", "job_finished", "refused", "drain", "owners_gone")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    JOB_FINISHED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    OWNERS_GONE_FIELD_NUMBER: _ClassVar[int]
    registered: Empty
    job_finished: JobEnded
    refused: str
    drain: DrainOrder
    owners_gone: OwnersGone
    def __init__(self, registered: _Optional[_Union[Empty, _Mapping]] = ..., job_finished: _Optional[_Union[JobEnded, _Mapping]] = ..., refused: _Optional[str] = ..., drain: _Optional[_Union[DrainOrder, _Mapping]] = ..., owners_gone: _Optional[_Union[OwnersGone, _Mapping]] = ...) -> None: ...

class OwnersGone(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class DrainOrder(_message.Message):
    __slots__ = ("deadline_seconds", "reason")
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    deadline_seconds: float
    reason: str
    def __init__(self, deadline_seconds: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class DriverHello(_message.Message):
    __slots__ = ("address", "namespace", "pid", "host")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    address: str
    namespace: str
    pid: int
    host: str
    def __init__(self, address: _Optional[str] = ..., namespace: _Optional[str] = ..., pid: _Optional[int] = ..., host: _Optional[str] = ...) -> None: ...

class HeadToDriver(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ...) -> None: ...

class NodeView(_message.Message):
    __slots__ = ("info", "available", "alive", "num_workers", "death_cause", "pending", "seconds_since_report", "idle_seconds", "store_broken", "drain_state", "drain")
    INFO_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    DEATH_CAUSE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SECONDS_SINCE_REPORT_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORE_BROKEN_FIELD_NUMBER: _ClassVar[int]
    DRAIN_STATE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    info: NodeInfo
    available: ResourceSet
    alive: bool
    num_workers: int
    death_cause: str
    pending: _containers.RepeatedCompositeFieldContainer[ResourceDemand]
    seconds_since_report: float
    idle_seconds: float
    store_broken: str
    drain_state: NodeDrainState
    drain: DrainProgress
    def __init__(self, info: _Optional[_Union[NodeInfo, _Mapping]] = ..., available: _Optional[_Union[ResourceSet, _Mapping]] = ..., alive: _Optional[bool] = ..., num_workers: _Optional[int] = ..., death_cause: _Optional[str] = ..., pending: _Optional[_Iterable[_Union[ResourceDemand, _Mapping]]] = ..., seconds_since_report: _Optional[float] = ..., idle_seconds: _Optional[float] = ..., store_broken: _Optional[str] = ..., drain_state: _Optional[_Union[NodeDrainState, str]] = ..., drain: _Optional[_Union[DrainProgress, _Mapping]] = ...) -> None: ...

class ClusterEvent(_message.Message):
    __slots__ = ("time", "message")
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    time: float
    message: str
    def __init__(self, time: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class ClusterView(_message.Message):
    __slots__ = ("nodes", "session_dir", "version", "actor_demand", "events", "metrics_address", "dashboard_address", "python_version", "head_address", "placement_group_demand")
    NODES_FIELD_NUMBER: _ClassVar[int]
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_DEMAND_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEAD_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_DEMAND_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeView]
    session_dir: str
    version: str
    actor_demand: _containers.RepeatedCompositeFieldContainer[ResourceDemand]
    events: _containers.RepeatedCompositeFieldContainer[ClusterEvent]
    metrics_address: str
    dashboard_address: str
    python_version: str
    head_address: str
    placement_group_demand: _containers.RepeatedCompositeFieldContainer[PlacementGroupDemand]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeView, _Mapping]]] = ..., session_dir: _Optional[str] = ..., version: _Optional[str] = ..., actor_demand: _Optional[_Iterable[_Union[ResourceDemand, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[ClusterEvent, _Mapping]]] = ..., metrics_address: _Optional[str] = ..., dashboard_address: _Optional[str] = ..., python_version: _Optional[str] = ..., head_address: _Optional[str] = ..., placement_group_demand: _Optional[_Iterable[_Union[PlacementGroupDemand, _Mapping]]] = ...) -> None: ...

class FindNodeRequest(_message.Message):
    __slots__ = ("shape", "exclude_node_id", "free_only", "constraints")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    FREE_ONLY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    shape: ResourceSet
    exclude_node_id: bytes
    free_only: bool
    constraints: SchedulingConstraints
    def __init__(self, shape: _Optional[_Union[ResourceSet, _Mapping]] = ..., exclude_node_id: _Optional[bytes] = ..., free_only: _Optional[bool] = ..., constraints: _Optional[_Union[SchedulingConstraints, _Mapping]] = ...) -> None: ...

class FindNodeReply(_message.Message):
    __slots__ = ("node", "feasible", "largest", "reason")
    NODE_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    LARGEST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    feasible: bool
    largest: str
    reason: str
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., feasible: _Optional[bool] = ..., largest: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ActorSpec(_message.Message):
    __slots__ = ("actor_id", "class_name", "name", "namespace", "creation", "shape", "hold", "max_restarts", "detached", "job", "owner_address", "handle_meta", "get_if_exists", "constraints", "placement_group_id", "runtime_env")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CREATION_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_META_FIELD_NUMBER: _ClassVar[int]
    GET_IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    class_name: str
    name: str
    namespace: str
    creation: TaskSpec
    shape: ResourceSet
    hold: ResourceSet
    max_restarts: int
    detached: bool
    job: JobConfig
    owner_address: str
    handle_meta: bytes
    get_if_exists: bool
    constraints: SchedulingConstraints
    placement_group_id: bytes
    runtime_env: str
    def __init__(self, actor_id: _Optional[bytes] = ..., class_name: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., creation: _Optional[_Union[TaskSpec, _Mapping]] = ..., shape: _Optional[_Union[ResourceSet, _Mapping]] = ..., hold: _Optional[_Union[ResourceSet, _Mapping]] = ..., max_restarts: _Optional[int] = ..., detached: _Optional[bool] = ..., job: _Optional[_Union[JobConfig, _Mapping]] = ..., owner_address: _Optional[str] = ..., handle_meta: _Optional[bytes] = ..., get_if_exists: _Optional[bool] = ..., constraints: _Optional[_Union[SchedulingConstraints, _Mapping]] = ..., placement_group_id: _Optional[bytes] = ..., runtime_env: _Optional[str] = ...) -> None: ...

class CreateActorReply(_message.Message):
    __slots__ = ("actor_id", "handle_meta", "error")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLE_META_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    handle_meta: bytes
    error: str
    def __init__(self, actor_id: _Optional[bytes] = ..., handle_meta: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class ActorInfo(_message.Message):
    __slots__ = ("actor_id", "state", "version", "class_name", "name", "namespace", "address", "channel", "worker_id", "node_id", "pid", "death_cause", "num_restarts", "max_restarts", "handle_meta", "detached", "job_id", "num_restarts_due_to_drain", "placement_group_id", "required", "runtime_env_failed")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    DEATH_CAUSE_FIELD_NUMBER: _ClassVar[int]
    NUM_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_META_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_RESTARTS_DUE_TO_DRAIN_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FAILED_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    state: ActorState
    version: int
    class_name: str
    name: str
    namespace: str
    address: str
    channel: str
    worker_id: bytes
    node_id: bytes
    pid: int
    death_cause: str
    num_restarts: int
    max_restarts: int
    handle_meta: bytes
    detached: bool
    job_id: bytes
    num_restarts_due_to_drain: int
    placement_group_id: bytes
    required: ResourceSet
    runtime_env_failed: bool
    def __init__(self, actor_id: _Optional[bytes] = ..., state: _Optional[_Union[ActorState, str]] = ..., version: _Optional[int] = ..., class_name: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., address: _Optional[str] = ..., channel: _Optional[str] = ..., worker_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., death_cause: _Optional[str] = ..., num_restarts: _Optional[int] = ..., max_restarts: _Optional[int] = ..., handle_meta: _Optional[bytes] = ..., detached: _Optional[bool] = ..., job_id: _Optional[bytes] = ..., num_restarts_due_to_drain: _Optional[int] = ..., placement_group_id: _Optional[bytes] = ..., required: _Optional[_Union[ResourceSet, _Mapping]] = ..., runtime_env_failed: _Optional[bool] = ...) -> None: ...

class GetActorRequest(_message.Message):
    __slots__ = ("actor_id", "name", "namespace", "after_version", "timeout")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    name: str
    namespace: str
    after_version: int
    timeout: float
    def __init__(self, actor_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., after_version: _Optional[int] = ..., timeout: _Optional[float] = ...) -> None: ...

class KillActorRequest(_message.Message):
    __slots__ = ("actor_id", "no_restart", "reason", "graceful")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NO_RESTART_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GRACEFUL_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    no_restart: bool
    reason: str
    graceful: bool
    def __init__(self, actor_id: _Optional[bytes] = ..., no_restart: _Optional[bool] = ..., reason: _Optional[str] = ..., graceful: _Optional[bool] = ...) -> None: ...

class ActorList(_message.Message):
    __slots__ = ("actors",)
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedCompositeFieldContainer[ActorInfo]
    def __init__(self, actors: _Optional[_Iterable[_Union[ActorInfo, _Mapping]]] = ...) -> None: ...

class PersistedActor(_message.Message):
    __slots__ = ("spec", "info")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    spec: ActorSpec
    info: ActorInfo
    def __init__(self, spec: _Optional[_Union[ActorSpec, _Mapping]] = ..., info: _Optional[_Union[ActorInfo, _Mapping]] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("node_id", "address", "deadline_seconds", "reason")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    address: str
    deadline_seconds: float
    reason: str
    def __init__(self, node_id: _Optional[bytes] = ..., address: _Optional[str] = ..., deadline_seconds: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class DrainReply(_message.Message):
    __slots__ = ("accepted", "rejection_reason", "node", "already_draining")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_DRAINING_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    rejection_reason: str
    node: NodeInfo
    already_draining: bool
    def __init__(self, accepted: _Optional[bool] = ..., rejection_reason: _Optional[str] = ..., node: _Optional[_Union[NodeInfo, _Mapping]] = ..., already_draining: _Optional[bool] = ...) -> None: ...

class LabelSelector(_message.Message):
    __slots__ = ("conditions",)
    class ConditionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.ScalarMap[str, str]
    def __init__(self, conditions: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PlacementGroupSpec(_message.Message):
    __slots__ = ("placement_group_id", "name", "namespace", "strategy", "bundles", "bundle_label_selector", "detached", "job_id", "creator_address")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    namespace: str
    strategy: str
    bundles: _containers.RepeatedCompositeFieldContainer[ResourceSet]
    bundle_label_selector: _containers.RepeatedCompositeFieldContainer[LabelSelector]
    detached: bool
    job_id: bytes
    creator_address: str
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., strategy: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[ResourceSet, _Mapping]]] = ..., bundle_label_selector: _Optional[_Iterable[_Union[LabelSelector, _Mapping]]] = ..., detached: _Optional[bool] = ..., job_id: _Optional[bytes] = ..., creator_address: _Optional[str] = ...) -> None: ...

class PlacementGroupInfo(_message.Message):
    __slots__ = ("spec", "state", "bundle_nodes", "scheduling_state", "waiting_for", "infeasible", "scheduling_attempts", "created_at", "creation_seconds", "version", "removal_reason", "attempt")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_NODES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_STATE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REMOVAL_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    spec: PlacementGroupSpec
    state: PlacementGroupState
    bundle_nodes: _containers.RepeatedScalarFieldContainer[bytes]
    scheduling_state: str
    waiting_for: str
    infeasible: bool
    scheduling_attempts: int
    created_at: float
    creation_seconds: float
    version: int
    removal_reason: str
    attempt: int
    def __init__(self, spec: _Optional[_Union[PlacementGroupSpec, _Mapping]] = ..., state: _Optional[_Union[PlacementGroupState, str]] = ..., bundle_nodes: _Optional[_Iterable[bytes]] = ..., scheduling_state: _Optional[str] = ..., waiting_for: _Optional[str] = ..., infeasible: _Optional[bool] = ..., scheduling_attempts: _Optional[int] = ..., created_at: _Optional[float] = ..., creation_seconds: _Optional[float] = ..., version: _Optional[int] = ..., removal_reason: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class CreatePlacementGroupReply(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: str
    def __init__(self, error: _Optional[str] = ...) -> None: ...

class PlacementGroupRequest(_message.Message):
    __slots__ = ("placement_group_id", "name", "namespace", "wait_seconds", "until_infeasible", "reason")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    namespace: str
    wait_seconds: float
    until_infeasible: bool
    reason: str
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., wait_seconds: _Optional[float] = ..., until_infeasible: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class PlacementGroupsWait(_message.Message):
    __slots__ = ("placement_group_ids", "wait_seconds")
    PLACEMENT_GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    placement_group_ids: _containers.RepeatedScalarFieldContainer[bytes]
    wait_seconds: float
    def __init__(self, placement_group_ids: _Optional[_Iterable[bytes]] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class PlacementGroupSettled(_message.Message):
    __slots__ = ("placement_group_id", "name", "state", "infeasible", "why")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    state: PlacementGroupState
    infeasible: bool
    why: str
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., state: _Optional[_Union[PlacementGroupState, str]] = ..., infeasible: _Optional[bool] = ..., why: _Optional[str] = ...) -> None: ...

class PlacementGroupsSettled(_message.Message):
    __slots__ = ("groups", "unknown")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[PlacementGroupSettled]
    unknown: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, groups: _Optional[_Iterable[_Union[PlacementGroupSettled, _Mapping]]] = ..., unknown: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PlacementGroupList(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[PlacementGroupInfo]
    def __init__(self, groups: _Optional[_Iterable[_Union[PlacementGroupInfo, _Mapping]]] = ...) -> None: ...

class BundleReservation(_message.Message):
    __slots__ = ("placement_group_id", "group", "attempt", "indexes", "bundles", "commit")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    group: str
    attempt: int
    indexes: _containers.RepeatedScalarFieldContainer[int]
    bundles: _containers.RepeatedCompositeFieldContainer[ResourceSet]
    commit: bool
    def __init__(self, placement_group_id: _Optional[bytes] = ..., group: _Optional[str] = ..., attempt: _Optional[int] = ..., indexes: _Optional[_Iterable[int]] = ..., bundles: _Optional[_Iterable[_Union[ResourceSet, _Mapping]]] = ..., commit: _Optional[bool] = ...) -> None: ...

class BundleReservations(_message.Message):
    __slots__ = ("reservations",)
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    reservations: _containers.RepeatedCompositeFieldContainer[BundleReservation]
    def __init__(self, reservations: _Optional[_Iterable[_Union[BundleReservation, _Mapping]]] = ...) -> None: ...

class BundleReplies(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, errors: _Optional[_Iterable[str]] = ...) -> None: ...

class BundleReleases(_message.Message):
    __slots__ = ("releases",)
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[BundleRelease]
    def __init__(self, releases: _Optional[_Iterable[_Union[BundleRelease, _Mapping]]] = ...) -> None: ...

class BundleRelease(_message.Message):
    __slots__ = ("placement_group_id", "indexes", "attempt", "reason", "stop_workers")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_WORKERS_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    indexes: _containers.RepeatedScalarFieldContainer[int]
    attempt: int
    reason: str
    stop_workers: bool
    def __init__(self, placement_group_id: _Optional[bytes] = ..., indexes: _Optional[_Iterable[int]] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ..., stop_workers: _Optional[bool] = ...) -> None: ...

class HeldBundle(_message.Message):
    __slots__ = ("placement_group_id", "index", "attempt", "committed")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    index: int
    attempt: int
    committed: bool
    def __init__(self, placement_group_id: _Optional[bytes] = ..., index: _Optional[int] = ..., attempt: _Optional[int] = ..., committed: _Optional[bool] = ...) -> None: ...

class TunnelOpen(_message.Message):
    __slots__ = ("target", "accept")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    target: str
    accept: bytes
    def __init__(self, target: _Optional[str] = ..., accept: _Optional[bytes] = ...) -> None: ...

class TunnelChunk(_message.Message):
    __slots__ = ("open", "data")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    open: TunnelOpen
    data: bytes
    def __init__(self, open: _Optional[_Union[TunnelOpen, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ReverseHello(_message.Message):
    __slots__ = ("pid",)
    PID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    def __init__(self, pid: _Optional[int] = ...) -> None: ...

class ReverseEvent(_message.Message):
    __slots__ = ("listening", "incoming")
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    INCOMING_FIELD_NUMBER: _ClassVar[int]
    listening: str
    incoming: bytes
    def __init__(self, listening: _Optional[str] = ..., incoming: _Optional[bytes] = ...) -> None: ...

class JobSubmission(_message.Message):
    __slots__ = ("submission_id", "entrypoint", "runtime_env_json", "metadata", "entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EntrypointResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_NUM_CPUS_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_NUM_GPUS_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_MEMORY_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    entrypoint: str
    runtime_env_json: str
    metadata: _containers.ScalarMap[str, str]
    entrypoint_num_cpus: float
    entrypoint_num_gpus: float
    entrypoint_memory: float
    entrypoint_resources: _containers.ScalarMap[str, float]
    def __init__(self, submission_id: _Optional[str] = ..., entrypoint: _Optional[str] = ..., runtime_env_json: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., entrypoint_num_cpus: _Optional[float] = ..., entrypoint_num_gpus: _Optional[float] = ..., entrypoint_memory: _Optional[float] = ..., entrypoint_resources: _Optional[_Mapping[str, float]] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("submission_id", "status", "entrypoint", "message", "error_type", "submit_time", "start_time", "end_time", "metadata", "runtime_env_json", "exit_code", "node_address", "entrypoint_pid", "entrypoint_shape", "stop_grace_seconds", "log_bytes")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_JSON_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_PID_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    STOP_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    status: JobStatus
    entrypoint: str
    message: str
    error_type: str
    submit_time: float
    start_time: float
    end_time: float
    metadata: _containers.ScalarMap[str, str]
    runtime_env_json: str
    exit_code: int
    node_address: str
    entrypoint_pid: int
    entrypoint_shape: ResourceSet
    stop_grace_seconds: float
    log_bytes: int
    def __init__(self, submission_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., entrypoint: _Optional[str] = ..., message: _Optional[str] = ..., error_type: _Optional[str] = ..., submit_time: _Optional[float] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., metadata: _Optional[_Mapping[str, str]] = ..., runtime_env_json: _Optional[str] = ..., exit_code: _Optional[int] = ..., node_address: _Optional[str] = ..., entrypoint_pid: _Optional[int] = ..., entrypoint_shape: _Optional[_Union[ResourceSet, _Mapping]] = ..., stop_grace_seconds: _Optional[float] = ..., log_bytes: _Optional[int] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("submission_id",)
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    def __init__(self, submission_id: _Optional[str] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class StopJobRequest(_message.Message):
    __slots__ = ("submission_id", "grace_seconds")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    grace_seconds: float
    def __init__(self, submission_id: _Optional[str] = ..., grace_seconds: _Optional[float] = ...) -> None: ...

class StopJobReply(_message.Message):
    __slots__ = ("stopping", "job")
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    stopping: bool
    job: JobInfo
    def __init__(self, stopping: _Optional[bool] = ..., job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class DeleteJobReply(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class JobLogRequest(_message.Message):
    __slots__ = ("submission_id", "offset", "follow")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    offset: int
    follow: bool
    def __init__(self, submission_id: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class JobLogChunk(_message.Message):
    __slots__ = ("data", "end", "status")
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    end: int
    status: JobStatus
    def __init__(self, data: _Optional[bytes] = ..., end: _Optional[int] = ..., status: _Optional[_Union[JobStatus, str]] = ...) -> None: ...

class SupervisorHello(_message.Message):
    __slots__ = ("submission_id", "pid", "host", "entrypoint_pid", "output_bytes", "exited", "start_time")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_PID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    pid: int
    host: str
    entrypoint_pid: int
    output_bytes: int
    exited: EntrypointExited
    start_time: float
    def __init__(self, submission_id: _Optional[str] = ..., pid: _Optional[int] = ..., host: _Optional[str] = ..., entrypoint_pid: _Optional[int] = ..., output_bytes: _Optional[int] = ..., exited: _Optional[_Union[EntrypointExited, _Mapping]] = ..., start_time: _Optional[float] = ...) -> None: ...

class JobOutput(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class EntrypointExited(_message.Message):
    __slots__ = ("exit_code", "stopped", "failure", "error_type", "end_time")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    stopped: bool
    failure: str
    error_type: str
    end_time: float
    def __init__(self, exit_code: _Optional[int] = ..., stopped: _Optional[bool] = ..., failure: _Optional[str] = ..., error_type: _Optional[str] = ..., end_time: _Optional[float] = ...) -> None: ...

class SupervisorMessage(_message.Message):
    __slots__ = ("hello", "output", "started", "exited")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    hello: SupervisorHello
    output: JobOutput
    started: int
    exited: EntrypointExited
    def __init__(self, hello: _Optional[_Union[SupervisorHello, _Mapping]] = ..., output: _Optional[_Union[JobOutput, _Mapping]] = ..., started: _Optional[int] = ..., exited: _Optional[_Union[EntrypointExited, _Mapping]] = ...) -> None: ...

class SupervisorWelcome(_message.Message):
    __slots__ = ("entrypoint", "runtime_env_json", "output_offset", "head_grace_seconds", "head_address")
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    HEAD_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HEAD_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    entrypoint: str
    runtime_env_json: str
    output_offset: int
    head_grace_seconds: float
    head_address: str
    def __init__(self, entrypoint: _Optional[str] = ..., runtime_env_json: _Optional[str] = ..., output_offset: _Optional[int] = ..., head_grace_seconds: _Optional[float] = ..., head_address: _Optional[str] = ...) -> None: ...

class SupervisorOrder(_message.Message):
    __slots__ = ("welcome", "stop", "refused", "done")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    welcome: SupervisorWelcome
    stop: float
    refused: str
    done: Empty
    def __init__(self, welcome: _Optional[_Union[SupervisorWelcome, _Mapping]] = ..., stop: _Optional[float] = ..., refused: _Optional[str] = ..., done: _Optional[_Union[Empty, _Mapping]] = ...) -> None: ...

class PackageRef(_message.Message):
    __slots__ = ("uri", "job_id")
    URI_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    uri: str
    job_id: bytes
    def __init__(self, uri: _Optional[str] = ..., job_id: _Optional[bytes] = ...) -> None: ...

class PackageState(_message.Message):
    __slots__ = ("present", "size")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    present: bool
    size: int
    def __init__(self, present: _Optional[bool] = ..., size: _Optional[int] = ...) -> None: ...

class PackageChunk(_message.Message):
    __slots__ = ("uri", "size", "data")
    URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    uri: str
    size: int
    data: bytes
    def __init__(self, uri: _Optional[str] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
