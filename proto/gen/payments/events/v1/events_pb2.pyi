import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from payments.plan.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_DECLINED: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_CARD: _ClassVar[ErrorCode]
    ERROR_CODE_NETWORK_FAILURE: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN: _ClassVar[ErrorCode]
    ERROR_CODE_PROCESSING_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_PROCESSOR_UNAVAILABLE: _ClassVar[ErrorCode]
    ERROR_CODE_RATE_LIMITED: _ClassVar[ErrorCode]
    ERROR_CODE_MALFORMED_RESPONSE: _ClassVar[ErrorCode]
    ERROR_CODE_POLICY_REJECTED: _ClassVar[ErrorCode]
    ERROR_CODE_COVERAGE_SHORTFALL: _ClassVar[ErrorCode]
    ERROR_CODE_PROCESSOR_ERROR: _ClassVar[ErrorCode]

class IssueSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ISSUE_SEVERITY_UNSPECIFIED: _ClassVar[IssueSeverity]
    ISSUE_SEVERITY_WARNING: _ClassVar[IssueSeverity]
    ISSUE_SEVERITY_ERROR: _ClassVar[IssueSeverity]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_SUCCEEDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PARTIALLY_SUCCEEDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_FAILED: _ClassVar[PaymentStatus]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_TIMEOUT: ErrorCode
ERROR_CODE_DECLINED: ErrorCode
ERROR_CODE_INVALID_CARD: ErrorCode
ERROR_CODE_NETWORK_FAILURE: ErrorCode
ERROR_CODE_UNKNOWN: ErrorCode
ERROR_CODE_PROCESSING_ERROR: ErrorCode
ERROR_CODE_PROCESSOR_UNAVAILABLE: ErrorCode
ERROR_CODE_RATE_LIMITED: ErrorCode
ERROR_CODE_MALFORMED_RESPONSE: ErrorCode
ERROR_CODE_POLICY_REJECTED: ErrorCode
ERROR_CODE_COVERAGE_SHORTFALL: ErrorCode
ERROR_CODE_PROCESSOR_ERROR: ErrorCode
ISSUE_SEVERITY_UNSPECIFIED: IssueSeverity
ISSUE_SEVERITY_WARNING: IssueSeverity
ISSUE_SEVERITY_ERROR: IssueSeverity
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_SUCCEEDED: PaymentStatus
PAYMENT_STATUS_PARTIALLY_SUCCEEDED: PaymentStatus
PAYMENT_STATUS_FAILED: PaymentStatus

class ValidationIssue(_message.Message):
    __slots__ = ("field", "code", "message", "severity", "raw")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    field: str
    code: str
    message: str
    severity: IssueSeverity
    raw: str
    def __init__(self, field: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., severity: _Optional[_Union[IssueSeverity, str]] = ..., raw: _Optional[str] = ...) -> None: ...

class PaymentReceived(_message.Message):
    __slots__ = ("accepted", "amount_cents", "currency", "method", "idempotency_key", "validation_issues")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ISSUES_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    amount_cents: int
    currency: str
    method: _plan_pb2.PaymentMethod
    idempotency_key: str
    validation_issues: _containers.RepeatedCompositeFieldContainer[ValidationIssue]
    def __init__(self, accepted: _Optional[bool] = ..., amount_cents: _Optional[int] = ..., currency: _Optional[str] = ..., method: _Optional[_Union[_plan_pb2.PaymentMethod, str]] = ..., idempotency_key: _Optional[str] = ..., validation_issues: _Optional[_Iterable[_Union[ValidationIssue, _Mapping]]] = ...) -> None: ...

class PlannedStep(_message.Message):
    __slots__ = ("index", "method", "amount_cents", "processor_ids")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_IDS_FIELD_NUMBER: _ClassVar[int]
    index: int
    method: _plan_pb2.PaymentMethod
    amount_cents: int
    processor_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., method: _Optional[_Union[_plan_pb2.PaymentMethod, str]] = ..., amount_cents: _Optional[int] = ..., processor_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PlanBuilt(_message.Message):
    __slots__ = ("total_amount_cents", "currency", "steps", "coverage_shortfall_cents", "partial_policy")
    TOTAL_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_SHORTFALL_CENTS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    total_amount_cents: int
    currency: str
    steps: _containers.RepeatedCompositeFieldContainer[PlannedStep]
    coverage_shortfall_cents: int
    partial_policy: _plan_pb2.PartialPolicy
    def __init__(self, total_amount_cents: _Optional[int] = ..., currency: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[PlannedStep, _Mapping]]] = ..., coverage_shortfall_cents: _Optional[int] = ..., partial_policy: _Optional[_Union[_plan_pb2.PartialPolicy, str]] = ...) -> None: ...

class StepAttempted(_message.Message):
    __slots__ = ("step_index", "processor_id", "attempt", "method", "amount_cents", "idempotency_key")
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    step_index: int
    processor_id: str
    attempt: int
    method: _plan_pb2.PaymentMethod
    amount_cents: int
    idempotency_key: str
    def __init__(self, step_index: _Optional[int] = ..., processor_id: _Optional[str] = ..., attempt: _Optional[int] = ..., method: _Optional[_Union[_plan_pb2.PaymentMethod, str]] = ..., amount_cents: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class StepSucceeded(_message.Message):
    __slots__ = ("step_index", "processor_id", "latency_ms", "amount", "attempt")
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    step_index: int
    processor_id: str
    latency_ms: int
    amount: int
    attempt: int
    def __init__(self, step_index: _Optional[int] = ..., processor_id: _Optional[str] = ..., latency_ms: _Optional[int] = ..., amount: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class StepFailed(_message.Message):
    __slots__ = ("step_index", "processor_id", "error_code", "latency_ms", "attempt", "retryable", "decline_code", "failure_details")
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    step_index: int
    processor_id: str
    error_code: ErrorCode
    latency_ms: int
    attempt: int
    retryable: bool
    decline_code: str
    failure_details: FailureDetails
    def __init__(self, step_index: _Optional[int] = ..., processor_id: _Optional[str] = ..., error_code: _Optional[_Union[ErrorCode, str]] = ..., latency_ms: _Optional[int] = ..., attempt: _Optional[int] = ..., retryable: _Optional[bool] = ..., decline_code: _Optional[str] = ..., failure_details: _Optional[_Union[FailureDetails, _Mapping]] = ...) -> None: ...

class FailureDetails(_message.Message):
    __slots__ = ("type", "code", "decline_code", "param", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    code: str
    decline_code: str
    param: str
    message: str
    def __init__(self, type: _Optional[str] = ..., code: _Optional[str] = ..., decline_code: _Optional[str] = ..., param: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CompensationIssued(_message.Message):
    __slots__ = ("step_index", "processor_id", "amount", "succeeded", "error_code")
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    step_index: int
    processor_id: str
    amount: int
    succeeded: bool
    error_code: ErrorCode
    def __init__(self, step_index: _Optional[int] = ..., processor_id: _Optional[str] = ..., amount: _Optional[int] = ..., succeeded: _Optional[bool] = ..., error_code: _Optional[_Union[ErrorCode, str]] = ...) -> None: ...

class PaymentCompleted(_message.Message):
    __slots__ = ("total_amount", "total_processed", "status")
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    total_amount: int
    total_processed: int
    status: PaymentStatus
    def __init__(self, total_amount: _Optional[int] = ..., total_processed: _Optional[int] = ..., status: _Optional[_Union[PaymentStatus, str]] = ...) -> None: ...

class PaymentFailed(_message.Message):
    __slots__ = ("total_amount", "final_error", "total_processed")
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FINAL_ERROR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    total_amount: int
    final_error: ErrorCode
    total_processed: int
    def __init__(self, total_amount: _Optional[int] = ..., final_error: _Optional[_Union[ErrorCode, str]] = ..., total_processed: _Optional[int] = ...) -> None: ...

class DomainEvent(_message.Message):
    __slots__ = ("payment_id", "request_id", "merchant_id", "timestamp", "payment_received", "plan_built", "step_attempted", "step_succeeded", "step_failed", "compensation_issued", "payment_completed", "payment_failed")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PLAN_BUILT_FIELD_NUMBER: _ClassVar[int]
    STEP_ATTEMPTED_FIELD_NUMBER: _ClassVar[int]
    STEP_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    STEP_FAILED_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_ISSUED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FAILED_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    request_id: str
    merchant_id: str
    timestamp: _timestamp_pb2.Timestamp
    payment_received: PaymentReceived
    plan_built: PlanBuilt
    step_attempted: StepAttempted
    step_succeeded: StepSucceeded
    step_failed: StepFailed
    compensation_issued: CompensationIssued
    payment_completed: PaymentCompleted
    payment_failed: PaymentFailed
    def __init__(self, payment_id: _Optional[str] = ..., request_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payment_received: _Optional[_Union[PaymentReceived, _Mapping]] = ..., plan_built: _Optional[_Union[PlanBuilt, _Mapping]] = ..., step_attempted: _Optional[_Union[StepAttempted, _Mapping]] = ..., step_succeeded: _Optional[_Union[StepSucceeded, _Mapping]] = ..., step_failed: _Optional[_Union[StepFailed, _Mapping]] = ..., compensation_issued: _Optional[_Union[CompensationIssued, _Mapping]] = ..., payment_completed: _Optional[_Union[PaymentCompleted, _Mapping]] = ..., payment_failed: _Optional[_Union[PaymentFailed, _Mapping]] = ...) -> None: ...
