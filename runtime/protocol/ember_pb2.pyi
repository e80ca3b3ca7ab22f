from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper

DESCRIPTOR: _descriptor.FileDescriptor

class ValueKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE: _ClassVar[ValueKind]
    ERROR: _ClassVar[ValueKind]
VALUE: ValueKind
ERROR: ValueKind

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
        def __init__(self, key: str | None = ..., value: float | None = ...) -> None: ...
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    quantities: _containers.ScalarMap[str, float]
    def __init__(self, quantities: _Mapping[str, float] | None = ...) -> None: ...

class ObjectRefMsg(_message.Message):
    __slots__ = ("id", "owner")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    owner: str
    def __init__(self, id: bytes | None = ..., owner: str | None = ...) -> None: ...

class ObjectValue(_message.Message):
    __slots__ = ("id", "data", "kind", "contained")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    data: bytes
    kind: ValueKind
    contained: _containers.RepeatedCompositeFieldContainer[ObjectRefMsg]
    def __init__(self, id: bytes | None = ..., data: bytes | None = ..., kind: ValueKind | str | None = ..., contained: _Iterable[ObjectRefMsg | _Mapping] | None = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "function_id", "function", "name", "args", "arg_values", "num_returns", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ARG_VALUES_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    function_id: bytes
    function: bytes
    name: str
    args: bytes
    arg_values: _containers.RepeatedCompositeFieldContainer[ObjectValue]
    num_returns: int
    attempt: int
    def __init__(self, task_id: bytes | None = ..., function_id: bytes | None = ..., function: bytes | None = ..., name: str | None = ..., args: bytes | None = ..., arg_values: _Iterable[ObjectValue | _Mapping] | None = ..., num_returns: int | None = ..., attempt: int | None = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "returns", "run_seconds", "application_error", "error_types")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    RUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPES_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    returns: _containers.RepeatedCompositeFieldContainer[ObjectValue]
    run_seconds: float
    application_error: bool
    error_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_id: bytes | None = ..., returns: _Iterable[ObjectValue | _Mapping] | None = ..., run_seconds: float | None = ..., application_error: bool | None = ..., error_types: _Iterable[str] | None = ...) -> None: ...

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
    def __init__(self, job_id: bytes | None = ..., driver_address: str | None = ..., code_paths: _Iterable[str] | None = ..., working_dir: str | None = ..., namespace: str | None = ...) -> None: ...

class ChannelHello(_message.Message):
    __slots__ = ("token", "job", "owner_address")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    job: JobConfig
    owner_address: str
    def __init__(self, token: bytes | None = ..., job: JobConfig | _Mapping | None = ..., owner_address: str | None = ...) -> None: ...

class ChannelWelcome(_message.Message):
    __slots__ = ("worker_id", "error")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    error: str
    def __init__(self, worker_id: bytes | None = ..., error: str | None = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, tasks: _Iterable[TaskSpec | _Mapping] | None = ...) -> None: ...

class ExecuteReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Iterable[TaskResult | _Mapping] | None = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("task_ids", "force")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[bytes]
    force: bool
    def __init__(self, task_ids: _Iterable[bytes] | None = ..., force: bool | None = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    def __init__(self, id: bytes | None = ...) -> None: ...

class GetObjectReply(_message.Message):
    __slots__ = ("value", "lost_reason")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOST_REASON_FIELD_NUMBER: _ClassVar[int]
    value: ObjectValue
    lost_reason: str
    def __init__(self, value: ObjectValue | _Mapping | None = ..., lost_reason: str | None = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("task_name", "text", "is_stderr")
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_STDERR_FIELD_NUMBER: _ClassVar[int]
    task_name: str
    text: str
    is_stderr: bool
    def __init__(self, task_name: str | None = ..., text: str | None = ..., is_stderr: bool | None = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("pid", "node_host", "records")
    PID_FIELD_NUMBER: _ClassVar[int]
    NODE_HOST_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    node_host: str
    records: _containers.RepeatedCompositeFieldContainer[LogRecord]
    def __init__(self, pid: int | None = ..., node_host: str | None = ..., records: _Iterable[LogRecord | _Mapping] | None = ...) -> None: ...

class LeaseOwner(_message.Message):
    __slots__ = ("job_id", "owner_address", "pid")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    owner_address: str
    pid: int
    def __init__(self, job_id: bytes | None = ..., owner_address: str | None = ..., pid: int | None = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("request_id", "shape", "task_name", "spilled")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    shape: ResourceSet
    task_name: str
    spilled: bool
    def __init__(self, request_id: int | None = ..., shape: ResourceSet | _Mapping | None = ..., task_name: str | None = ..., spilled: bool | None = ...) -> None: ...

class LeaseReturn(_message.Message):
    __slots__ = ("lease_id", "discard_worker")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DISCARD_WORKER_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    discard_worker: bool
    def __init__(self, lease_id: int | None = ..., discard_worker: bool | None = ...) -> None: ...

class LeaseCancel(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    def __init__(self, request_id: int | None = ...) -> None: ...

class LeaseClientMessage(_message.Message):
    __slots__ = ("owner", "request", "release", "cancel")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    owner: LeaseOwner
    request: LeaseRequest
    release: LeaseReturn
    cancel: LeaseCancel
    def __init__(self, owner: LeaseOwner | _Mapping | None = ..., request: LeaseRequest | _Mapping | None = ..., release: LeaseReturn | _Mapping | None = ..., cancel: LeaseCancel | _Mapping | None = ...) -> None: ...

class LeaseGrant(_message.Message):
    __slots__ = ("request_id", "lease_id", "worker_id", "worker_address", "node_id", "worker_pid", "worker_channel")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    WORKER_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    lease_id: int
    worker_id: bytes
    worker_address: str
    node_id: bytes
    worker_pid: int
    worker_channel: str
    def __init__(self, request_id: int | None = ..., lease_id: int | None = ..., worker_id: bytes | None = ..., worker_address: str | None = ..., node_id: bytes | None = ..., worker_pid: int | None = ..., worker_channel: str | None = ...) -> None: ...

class LeaseSpillback(_message.Message):
    __slots__ = ("request_id", "node_address", "node_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    node_address: str
    node_id: bytes
    def __init__(self, request_id: int | None = ..., node_address: str | None = ..., node_id: bytes | None = ...) -> None: ...

class LeaseRejected(_message.Message):
    __slots__ = ("request_id", "reason", "infeasible")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    reason: str
    infeasible: bool
    def __init__(self, request_id: int | None = ..., reason: str | None = ..., infeasible: bool | None = ...) -> None: ...

class LeaseLost(_message.Message):
    __slots__ = ("lease_id", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    reason: str
    def __init__(self, lease_id: int | None = ..., reason: str | None = ...) -> None: ...

class LeaseServerMessage(_message.Message):
    __slots__ = ("grant", "spillback", "rejected", "lost", "reclaim_idle")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    SPILLBACK_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_IDLE_FIELD_NUMBER: _ClassVar[int]
    grant: LeaseGrant
    spillback: LeaseSpillback
    rejected: LeaseRejected
    lost: LeaseLost
    reclaim_idle: Empty
    def __init__(self, grant: LeaseGrant | _Mapping | None = ..., spillback: LeaseSpillback | _Mapping | None = ..., rejected: LeaseRejected | _Mapping | None = ..., lost: LeaseLost | _Mapping | None = ..., reclaim_idle: Empty | _Mapping | None = ...) -> None: ...

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
    def __init__(self, worker_id: bytes | None = ..., address: str | None = ..., pid: int | None = ..., channel_address: str | None = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "blocked", "busy")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    blocked: bool
    busy: Empty
    def __init__(self, hello: WorkerHello | _Mapping | None = ..., blocked: bool | None = ..., busy: Empty | _Mapping | None = ...) -> None: ...

class AgentToWorker(_message.Message):
    __slots__ = ("exit_if_idle",)
    EXIT_IF_IDLE_FIELD_NUMBER: _ClassVar[int]
    exit_if_idle: Empty
    def __init__(self, exit_if_idle: Empty | _Mapping | None = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "address", "host", "total", "labels", "pid", "is_head_node")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: str | None = ..., value: str | None = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IS_HEAD_NODE_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    address: str
    host: str
    total: ResourceSet
    labels: _containers.ScalarMap[str, str]
    pid: int
    is_head_node: bool
    def __init__(self, node_id: bytes | None = ..., address: str | None = ..., host: str | None = ..., total: ResourceSet | _Mapping | None = ..., labels: _Mapping[str, str] | None = ..., pid: int | None = ..., is_head_node: bool | None = ...) -> None: ...

class NodeReport(_message.Message):
    __slots__ = ("available", "num_workers", "num_leases")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_LEASES_FIELD_NUMBER: _ClassVar[int]
    available: ResourceSet
    num_workers: int
    num_leases: int
    def __init__(self, available: ResourceSet | _Mapping | None = ..., num_workers: int | None = ..., num_leases: int | None = ...) -> None: ...

class NodeMessage(_message.Message):
    __slots__ = ("register", "report")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    register: NodeInfo
    report: NodeReport
    def __init__(self, register: NodeInfo | _Mapping | None = ..., report: NodeReport | _Mapping | None = ...) -> None: ...

class HeadToNode(_message.Message):
    __slots__ = ("registered", "job_finished")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    JOB_FINISHED_FIELD_NUMBER: _ClassVar[int]
    registered: Empty
    job_finished: bytes
    def __init__(self, registered: Empty | _Mapping | None = ..., job_finished: bytes | None = ...) -> None: ...

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
    def __init__(self, address: str | None = ..., namespace: str | None = ..., pid: int | None = ..., host: str | None = ...) -> None: ...

class HeadToDriver(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: bytes | None = ...) -> None: ...

class NodeView(_message.Message):
    __slots__ = ("info", "available", "alive", "num_workers")
    INFO_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    info: NodeInfo
    available: ResourceSet
    alive: bool
    num_workers: int
    def __init__(self, info: NodeInfo | _Mapping | None = ..., available: ResourceSet | _Mapping | None = ..., alive: bool | None = ..., num_workers: int | None = ...) -> None: ...

class ClusterView(_message.Message):
    __slots__ = ("nodes", "session_dir", "version")
    NODES_FIELD_NUMBER: _ClassVar[int]
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeView]
    session_dir: str
    version: str
    def __init__(self, nodes: _Iterable[NodeView | _Mapping] | None = ..., session_dir: str | None = ..., version: str | None = ...) -> None: ...

class FindNodeRequest(_message.Message):
    __slots__ = ("shape", "exclude_node_id")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    shape: ResourceSet
    exclude_node_id: bytes
    def __init__(self, shape: ResourceSet | _Mapping | None = ..., exclude_node_id: bytes | None = ...) -> None: ...

class FindNodeReply(_message.Message):
    __slots__ = ("node", "feasible", "largest")
    NODE_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    LARGEST_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    feasible: bool
    largest: str
    def __init__(self, node: NodeInfo | _Mapping | None = ..., feasible: bool | None = ..., largest: str | None = ...) -> None: ...
