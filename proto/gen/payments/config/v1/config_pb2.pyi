from payments.plan.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESSOR_KIND_UNSPECIFIED: _ClassVar[ProcessorKind]
    PROCESSOR_KIND_SIMULATED: _ClassVar[ProcessorKind]
    PROCESSOR_KIND_STRIPE: _ClassVar[ProcessorKind]
PROCESSOR_KIND_UNSPECIFIED: ProcessorKind
PROCESSOR_KIND_SIMULATED: ProcessorKind
PROCESSOR_KIND_STRIPE: ProcessorKind

class PlatformConfig(_message.Message):
    __slots__ = ("merchants", "processors", "admin_api_keys", "complaint_taxonomy", "escalations", "reports", "store")
    class ComplaintTaxonomyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MERCHANTS_FIELD_NUMBER: _ClassVar[int]
    PROCESSORS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_API_KEYS_FIELD_NUMBER: _ClassVar[int]
    COMPLAINT_TAXONOMY_FIELD_NUMBER: _ClassVar[int]
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    merchants: _containers.RepeatedCompositeFieldContainer[MerchantConfig]
    processors: _containers.RepeatedCompositeFieldContainer[ProcessorConfig]
    admin_api_keys: _containers.RepeatedScalarFieldContainer[str]
    complaint_taxonomy: _containers.ScalarMap[str, str]
    escalations: EscalationConfig
    reports: ReportConfig
    store: StoreConfig
    def __init__(self, merchants: _Optional[_Iterable[_Union[MerchantConfig, _Mapping]]] = ..., processors: _Optional[_Iterable[_Union[ProcessorConfig, _Mapping]]] = ..., admin_api_keys: _Optional[_Iterable[str]] = ..., complaint_taxonomy: _Optional[_Mapping[str, str]] = ..., escalations: _Optional[_Union[EscalationConfig, _Mapping]] = ..., reports: _Optional[_Union[ReportConfig, _Mapping]] = ..., store: _Optional[_Union[StoreConfig, _Mapping]] = ...) -> None: ...

class MerchantConfig(_message.Message):
    __slots__ = ("merchant_id", "api_keys", "default_currency", "routing", "partial_policy", "max_amount_cents", "timeout_ms", "retry", "latency_slo_ms", "max_in_flight", "complaint_limits")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SLO_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    COMPLAINT_LIMITS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    api_keys: _containers.RepeatedScalarFieldContainer[str]
    default_currency: str
    routing: _containers.RepeatedCompositeFieldContainer[RoutingRule]
    partial_policy: _plan_pb2.PartialPolicy
    max_amount_cents: int
    timeout_ms: int
    retry: RetryPolicy
    latency_slo_ms: int
    max_in_flight: int
    complaint_limits: ComplaintLimits
    def __init__(self, merchant_id: _Optional[str] = ..., api_keys: _Optional[_Iterable[str]] = ..., default_currency: _Optional[str] = ..., routing: _Optional[_Iterable[_Union[RoutingRule, _Mapping]]] = ..., partial_policy: _Optional[_Union[_plan_pb2.PartialPolicy, str]] = ..., max_amount_cents: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., latency_slo_ms: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., complaint_limits: _Optional[_Union[ComplaintLimits, _Mapping]] = ...) -> None: ...

class ComplaintLimits(_message.Message):
    __slots__ = ("per_minute", "per_day")
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    PER_DAY_FIELD_NUMBER: _ClassVar[int]
    per_minute: int
    per_day: int
    def __init__(self, per_minute: _Optional[int] = ..., per_day: _Optional[int] = ...) -> None: ...

class RoutingRule(_message.Message):
    __slots__ = ("method", "processors", "max_amount_cents")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PROCESSORS_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    method: _plan_pb2.PaymentMethod
    processors: _containers.RepeatedScalarFieldContainer[str]
    max_amount_cents: int
    def __init__(self, method: _Optional[_Union[_plan_pb2.PaymentMethod, str]] = ..., processors: _Optional[_Iterable[str]] = ..., max_amount_cents: _Optional[int] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "base_delay_ms", "max_delay_ms")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BASE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    base_delay_ms: int
    max_delay_ms: int
    def __init__(self, max_attempts: _Optional[int] = ..., base_delay_ms: _Optional[int] = ..., max_delay_ms: _Optional[int] = ...) -> None: ...

class ProcessorConfig(_message.Message):
    __slots__ = ("id", "kind", "seed", "latency_ms", "fault_rates", "api_key_env", "api_base", "currencies", "methods", "breaker")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    FAULT_RATES_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    API_BASE_FIELD_NUMBER: _ClassVar[int]
    CURRENCIES_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: ProcessorKind
    seed: int
    latency_ms: LatencyProfile
    fault_rates: FaultRates
    api_key_env: str
    api_base: str
    currencies: _containers.RepeatedScalarFieldContainer[str]
    methods: _containers.RepeatedScalarFieldContainer[_plan_pb2.PaymentMethod]
    breaker: BreakerPolicy
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[ProcessorKind, str]] = ..., seed: _Optional[int] = ..., latency_ms: _Optional[_Union[LatencyProfile, _Mapping]] = ..., fault_rates: _Optional[_Union[FaultRates, _Mapping]] = ..., api_key_env: _Optional[str] = ..., api_base: _Optional[str] = ..., currencies: _Optional[_Iterable[str]] = ..., methods: _Optional[_Iterable[_Union[_plan_pb2.PaymentMethod, str]]] = ..., breaker: _Optional[_Union[BreakerPolicy, _Mapping]] = ...) -> None: ...

class BreakerPolicy(_message.Message):
    __slots__ = ("failure_threshold", "cool_down_s", "min_timeout_ms")
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COOL_DOWN_S_FIELD_NUMBER: _ClassVar[int]
    MIN_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    failure_threshold: int
    cool_down_s: float
    min_timeout_ms: int
    def __init__(self, failure_threshold: _Optional[int] = ..., cool_down_s: _Optional[float] = ..., min_timeout_ms: _Optional[int] = ...) -> None: ...

class LatencyProfile(_message.Message):
    __slots__ = ("p50", "p99")
    P50_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    p50: float
    p99: float
    def __init__(self, p50: _Optional[float] = ..., p99: _Optional[float] = ...) -> None: ...

class FaultRates(_message.Message):
    __slots__ = ("declined", "timeout", "network_failure", "panic", "malformed")
    DECLINED_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FAILURE_FIELD_NUMBER: _ClassVar[int]
    PANIC_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    declined: float
    timeout: float
    network_failure: float
    panic: float
    malformed: float
    def __init__(self, declined: _Optional[float] = ..., timeout: _Optional[float] = ..., network_failure: _Optional[float] = ..., panic: _Optional[float] = ..., malformed: _Optional[float] = ...) -> None: ...

class EscalationConfig(_message.Message):
    __slots__ = ("webhook_url", "max_attempts")
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    webhook_url: str
    max_attempts: int
    def __init__(self, webhook_url: _Optional[str] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class MismatchRule(_message.Message):
    __slots__ = ("min_ratio", "min_reports")
    MIN_RATIO_FIELD_NUMBER: _ClassVar[int]
    MIN_REPORTS_FIELD_NUMBER: _ClassVar[int]
    min_ratio: float
    min_reports: int
    def __init__(self, min_ratio: _Optional[float] = ..., min_reports: _Optional[int] = ...) -> None: ...

class ReportConfig(_message.Message):
    __slots__ = ("every_days", "mismatch")
    EVERY_DAYS_FIELD_NUMBER: _ClassVar[int]
    MISMATCH_FIELD_NUMBER: _ClassVar[int]
    every_days: int
    mismatch: MismatchRule
    def __init__(self, every_days: _Optional[int] = ..., mismatch: _Optional[_Union[MismatchRule, _Mapping]] = ...) -> None: ...

class StoreConfig(_message.Message):
    __slots__ = ("max_rows", "max_wait_ms", "admit_limit", "memory_limit_mb", "idempotency_hot_s", "admin_reads", "admin_read_idle_s", "admin_read_max_s", "fair_share_percent", "memory_limit")
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    ADMIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_MB_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_HOT_S_FIELD_NUMBER: _ClassVar[int]
    ADMIN_READS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_READ_IDLE_S_FIELD_NUMBER: _ClassVar[int]
    ADMIN_READ_MAX_S_FIELD_NUMBER: _ClassVar[int]
    FAIR_SHARE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    max_rows: int
    max_wait_ms: int
    admit_limit: int
    memory_limit_mb: int
    idempotency_hot_s: int
    admin_reads: int
    admin_read_idle_s: int
    admin_read_max_s: int
    fair_share_percent: int
    memory_limit: str
    def __init__(self, max_rows: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., admit_limit: _Optional[int] = ..., memory_limit_mb: _Optional[int] = ..., idempotency_hot_s: _Optional[int] = ..., admin_reads: _Optional[int] = ..., admin_read_idle_s: _Optional[int] = ..., admin_read_max_s: _Optional[int] = ..., fair_share_percent: _Optional[int] = ..., memory_limit: _Optional[str] = ...) -> None: ...
