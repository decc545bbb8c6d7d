"""``PlatformConfig`` <-> ``payments.config.v1.PlatformConfig``.

Field names on the wire follow the YAML file (``latency_ms: {p50, p99}``); an absent
sub-message decodes to the domain default, and the encoder always writes every sub-message.
"""

from __future__ import annotations

from payments.config.v1 import config_pb2

from engine.circuit_breaker import BreakerPolicy
from engine.config import (
    DEFAULT_MAX_IN_FLIGHT,
    ComplaintLimits,
    EscalationConfig,
    FaultRates,
    LatencyProfile,
    MerchantConfig,
    MismatchRule,
    PlatformConfig,
    ProcessorConfig,
    ReportConfig,
    RetryPolicy,
    RoutingRule,
    StoreConfig,
)
from engine.types import ContractId, MerchantId, ProcessorId
from ingest.codec.enums import PARTIAL_POLICIES, PAYMENT_METHODS, PROCESSOR_KINDS
from ingest.codec.wire import currency_from_proto, encoding


def config_to_proto(config: PlatformConfig) -> config_pb2.PlatformConfig:
    with encoding("config"):
        return config_pb2.PlatformConfig(
            merchants=[_merchant_to_proto(merchant) for merchant in config.merchants],
            processors=[_processor_to_proto(processor) for processor in config.processors],
            admin_api_keys=config.admin_api_keys,
            complaint_taxonomy=dict(config.complaint_taxonomy),
            escalations=config_pb2.EscalationConfig(
                webhook_url=config.escalations.webhook_url,
                max_attempts=config.escalations.max_attempts,
            ),
            reports=config_pb2.ReportConfig(
                every_days=config.reports.every_days,
                mismatch=config_pb2.MismatchRule(
                    min_ratio=config.reports.mismatch.min_ratio,
                    min_reports=config.reports.mismatch.min_reports,
                ),
            ),
            store=config_pb2.StoreConfig(
                max_rows=config.store.max_rows,
                max_wait_ms=config.store.max_wait_ms,
                admit_limit=config.store.admit_limit,
                memory_limit_mb=config.store.memory_limit_mb,
                idempotency_hot_s=config.store.idempotency_hot_s,
                admin_reads=config.store.admin_reads,
                admin_read_idle_s=config.store.admin_read_idle_s,
                admin_read_max_s=config.store.admin_read_max_s,
                fair_share_percent=config.store.fair_share_percent,
                memory_limit=config.store.memory_limit,
            ),
        )


def _merchant_to_proto(merchant: MerchantConfig) -> config_pb2.MerchantConfig:
    return config_pb2.MerchantConfig(
        merchant_id=merchant.merchant_id,
        api_keys=merchant.api_keys,
        default_currency=merchant.default_currency.code,
        routing=[
            config_pb2.RoutingRule(
                method=PAYMENT_METHODS.to_wire(rule.method),
                processors=rule.processors,
                max_amount_cents=rule.max_amount_cents,
            )
            for rule in merchant.routing
        ],
        partial_policy=PARTIAL_POLICIES.to_wire(merchant.partial_policy),
        max_amount_cents=merchant.max_amount_cents,
        timeout_ms=merchant.timeout_ms,
        retry=config_pb2.RetryPolicy(
            max_attempts=merchant.retry.max_attempts,
            base_delay_ms=merchant.retry.base_delay_ms,
            max_delay_ms=merchant.retry.max_delay_ms,
        ),
        latency_slo_ms=merchant.latency_slo_ms,
        max_in_flight=merchant.max_in_flight,
        complaint_limits=config_pb2.ComplaintLimits(
            per_minute=merchant.complaint_limits.per_minute,
            per_day=merchant.complaint_limits.per_day,
        ),
    )


def _processor_to_proto(processor: ProcessorConfig) -> config_pb2.ProcessorConfig:
    faults = processor.fault_rates
    return config_pb2.ProcessorConfig(
        id=processor.id,
        kind=PROCESSOR_KINDS.to_wire(processor.kind),
        seed=processor.seed,
        latency_ms=config_pb2.LatencyProfile(p50=processor.latency.p50_ms, p99=processor.latency.p99_ms),
        fault_rates=config_pb2.FaultRates(
            declined=faults.declined,
            timeout=faults.timeout,
            network_failure=faults.network_failure,
            panic=faults.panic,
            malformed=faults.malformed,
        ),
        api_key_env=processor.api_key_env,
        api_base=processor.api_base,
        currencies=[currency.code for currency in processor.currencies],
        methods=[PAYMENT_METHODS.to_wire(method) for method in processor.methods],
        breaker=config_pb2.BreakerPolicy(
            failure_threshold=processor.breaker.failure_threshold,
            cool_down_s=processor.breaker.cool_down_s,
            min_timeout_ms=processor.breaker.min_timeout_ms,
        ),
    )


def config_from_proto(message: config_pb2.PlatformConfig) -> PlatformConfig:
    """The domain configuration; every invariant of :class:`PlatformConfig` is checked again."""
    return PlatformConfig(
        merchants=tuple(_merchant_from_proto(merchant) for merchant in message.merchants),
        processors=tuple(_processor_from_proto(processor) for processor in message.processors),
        admin_api_keys=tuple(message.admin_api_keys),
        complaint_taxonomy={
            category: ContractId(contract) for category, contract in message.complaint_taxonomy.items()
        },
        escalations=_escalations_from_proto(message),
        reports=_reports_from_proto(message),
        store=_store_from_proto(message),
    )


def _escalations_from_proto(message: config_pb2.PlatformConfig) -> EscalationConfig:
    if not message.HasField("escalations"):
        return EscalationConfig()
    escalations = message.escalations
    return EscalationConfig(
        webhook_url=escalations.webhook_url if escalations.HasField("webhook_url") else None,
        max_attempts=escalations.max_attempts,
    )


def _reports_from_proto(message: config_pb2.PlatformConfig) -> ReportConfig:
    if not message.HasField("reports"):
        return ReportConfig()
    reports = message.reports
    mismatch = MismatchRule()
    if reports.HasField("mismatch"):
        rule = reports.mismatch
        mismatch = MismatchRule(min_ratio=rule.min_ratio, min_reports=rule.min_reports)
    return ReportConfig(every_days=reports.every_days, mismatch=mismatch)


def _merchant_from_proto(message: config_pb2.MerchantConfig) -> MerchantConfig:
    where = f"merchants[{message.merchant_id!r}]"
    retry = RetryPolicy()
    if message.HasField("retry"):
        retry = RetryPolicy(
            max_attempts=message.retry.max_attempts,
            base_delay_ms=message.retry.base_delay_ms,
            max_delay_ms=message.retry.max_delay_ms,
        )
    return MerchantConfig(
        merchant_id=MerchantId(message.merchant_id),
        api_keys=tuple(message.api_keys),
        default_currency=currency_from_proto(f"{where}.default_currency", message.default_currency),
        routing=tuple(_rule_from_proto(f"{where}.routing[{n}]", r) for n, r in enumerate(message.routing)),
        partial_policy=PARTIAL_POLICIES.from_wire(f"{where}.partial_policy", message.partial_policy),
        max_amount_cents=message.max_amount_cents,
        timeout_ms=message.timeout_ms,
        retry=retry,
        latency_slo_ms=message.latency_slo_ms if message.HasField("latency_slo_ms") else None,
        # A config written before the limit existed has none: the default, never 0.
        max_in_flight=message.max_in_flight if message.HasField("max_in_flight") else DEFAULT_MAX_IN_FLIGHT,
        complaint_limits=_complaint_limits_from_proto(message),
    )


def _complaint_limits_from_proto(message: config_pb2.MerchantConfig) -> ComplaintLimits:
    """The merchant's complaint limits; an absent message or field (a config written before
    complaints were limited) is the default, never 0."""
    defaults = ComplaintLimits()
    if not message.HasField("complaint_limits"):
        return defaults
    limits = message.complaint_limits
    return ComplaintLimits(
        per_minute=limits.per_minute if limits.HasField("per_minute") else defaults.per_minute,
        per_day=limits.per_day if limits.HasField("per_day") else defaults.per_day,
    )


def _rule_from_proto(where: str, message: config_pb2.RoutingRule) -> RoutingRule:
    return RoutingRule(
        method=PAYMENT_METHODS.from_wire(f"{where}.method", message.method),
        processors=tuple(ProcessorId(processor) for processor in message.processors),
        max_amount_cents=message.max_amount_cents if message.HasField("max_amount_cents") else None,
    )


def _processor_from_proto(message: config_pb2.ProcessorConfig) -> ProcessorConfig:
    where = f"processors[{message.id!r}]"
    latency = LatencyProfile()
    if message.HasField("latency_ms"):
        latency = LatencyProfile(p50_ms=message.latency_ms.p50, p99_ms=message.latency_ms.p99)
    faults = FaultRates()
    if message.HasField("fault_rates"):
        wire = message.fault_rates
        faults = FaultRates(
            declined=wire.declined,
            timeout=wire.timeout,
            network_failure=wire.network_failure,
            panic=wire.panic,
            malformed=wire.malformed,
        )
    return ProcessorConfig(
        id=ProcessorId(message.id),
        kind=PROCESSOR_KINDS.from_wire(f"{where}.kind", message.kind),
        seed=message.seed,
        latency=latency,
        fault_rates=faults,
        api_key_env=message.api_key_env if message.HasField("api_key_env") else None,
        api_base=message.api_base if message.HasField("api_base") else None,
        currencies=tuple(
            currency_from_proto(f"{where}.currencies[{n}]", code) for n, code in enumerate(message.currencies)
        ),
        methods=tuple(
            PAYMENT_METHODS.from_wire(f"{where}.methods[{n}]", method)
            for n, method in enumerate(message.methods)
        ),
        breaker=_breaker_from_proto(message),
    )


def _breaker_from_proto(message: config_pb2.ProcessorConfig) -> BreakerPolicy:
    """The processor's breaker policy; an absent message or field (a config written before the
    breaker was configurable) is the default, never 0."""
    defaults = BreakerPolicy()
    if not message.HasField("breaker"):
        return defaults
    breaker = message.breaker
    return BreakerPolicy(
        failure_threshold=(
            breaker.failure_threshold if breaker.HasField("failure_threshold") else defaults.failure_threshold
        ),
        cool_down_s=breaker.cool_down_s if breaker.HasField("cool_down_s") else defaults.cool_down_s,
        min_timeout_ms=breaker.min_timeout_ms if breaker.HasField("min_timeout_ms") else None,
    )


def _store_from_proto(message: config_pb2.PlatformConfig) -> StoreConfig:
    if not message.HasField("store"):
        return StoreConfig()
    store = message.store
    defaults = StoreConfig()
    return StoreConfig(
        max_rows=store.max_rows,
        max_wait_ms=store.max_wait_ms,
        admit_limit=store.admit_limit,
        memory_limit_mb=store.memory_limit_mb,
        # Absent (a config written before the field): the default, not 0 (never held whole).
        idempotency_hot_s=(
            store.idempotency_hot_s if store.HasField("idempotency_hot_s") else defaults.idempotency_hot_s
        ),
        admin_reads=store.admin_reads if store.HasField("admin_reads") else None,
        admin_read_idle_s=(
            store.admin_read_idle_s if store.HasField("admin_read_idle_s") else defaults.admin_read_idle_s
        ),
        admin_read_max_s=(
            store.admin_read_max_s if store.HasField("admin_read_max_s") else defaults.admin_read_max_s
        ),
        # Absent (a config written before the field): the default, not 0 (out of bounds).
        fair_share_percent=(
            store.fair_share_percent
            if store.HasField("fair_share_percent")
            else StoreConfig().fair_share_percent
        ),
        memory_limit=store.memory_limit if store.HasField("memory_limit") else None,
    )
