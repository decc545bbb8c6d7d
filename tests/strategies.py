"""Hypothesis strategies for every domain value that has a wire form.

Each strategy draws only valid domain objects: every invariant checked in ``engine/`` holds,
optional fields are drawn both set and ``None``, amounts and counts stay within the wire types.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import TypedDict, TypeVar

from hypothesis import strategies as st

from engine.circuit_breaker import MAX_COOL_DOWN_S, MAX_FAILURE_THRESHOLD, BreakerPolicy
from engine.complaints import category_key
from engine.config import (
    MAX_COMPLAINTS_PER_DAY,
    MAX_COMPLAINTS_PER_MINUTE,
    MAX_IN_FLIGHT,
    ComplaintLimits,
    EscalationConfig,
    FaultRates,
    LatencyProfile,
    MerchantConfig,
    MismatchRule,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    ReportConfig,
    RetryPolicy,
    RoutingRule,
    StoreConfig,
)
from engine.contracts import ContractViolation, Severity
from engine.decline_codes import WITH_DECLINE_CODE, DeclineCode
from engine.error_codes import ErrorCode
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from engine.failure_details import FailureDetails
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import MAX_MINOR_UNITS, Currency
from engine.plan import PaymentPlan, PaymentStep
from engine.results import CompositeResult, PaymentStatus, Result
from engine.types import ContractId, MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import IssueSeverity, ValidationIssue

T = TypeVar("T")

UINT32_MAX = 2**32 - 1

identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,24}", fullmatch=True)
payment_ids = identifiers.map(PaymentId)
request_ids = identifiers.map(RequestId)
merchant_ids = identifiers.map(MerchantId)
processor_ids = identifiers.map(ProcessorId)
currencies = st.sampled_from(Currency.all_codes()).map(Currency)
methods = st.sampled_from(PaymentMethod)
error_codes = st.sampled_from(ErrorCode)
decline_codes = st.sampled_from(DeclineCode)
amounts = st.integers(min_value=0, max_value=MAX_MINOR_UNITS)
positive_amounts = st.integers(min_value=1, max_value=MAX_MINOR_UNITS)
counts = st.integers(min_value=0, max_value=UINT32_MAX)
attempts = st.integers(min_value=1, max_value=UINT32_MAX)
latencies = st.integers(min_value=0, max_value=UINT32_MAX)


def texts(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    """Unicode text that UTF-8 can carry (no lone surrogates), as protobuf strings require."""
    alphabet = st.characters(codec="utf-8")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


#: UTC, common offsets, and any fixed offset strictly within a day, down to the second.
offsets = st.one_of(
    st.just(UTC),
    st.integers(min_value=-(24 * 3600 - 1), max_value=24 * 3600 - 1).map(
        lambda seconds: timezone(timedelta(seconds=seconds))
    ),
    st.sampled_from([timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)
timestamps = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31), timezones=offsets)


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


#: What a processor said of a refusal: bounded text in each field, at least one field set.
failure_details = (
    st.tuples(
        optional(texts(max_size=100)),
        optional(texts(max_size=100)),
        optional(texts(max_size=100)),
        optional(texts(max_size=200)),
        optional(texts(max_size=500)),
    )
    .filter(any)
    .map(lambda fields: FailureDetails(*fields))
)


def urls() -> st.SearchStrategy[str]:
    """http(s) URLs with a host, maybe a port, and a path of any printable characters."""
    hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6})?", fullmatch=True)
    ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}"))
    paths = st.text(st.characters(codec="utf-8", exclude_categories=("C", "Z")), max_size=20)
    return st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}/{path}",
        st.sampled_from(["http://", "https://"]),
        hosts,
        ports,
        paths,
    )


# --- validation issues -------------------------------------------------------------------------

issue_codes = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@st.composite
def validation_issues(draw: st.DrawFn) -> ValidationIssue:
    return ValidationIssue(
        field=draw(texts(1, 30)),
        code=draw(issue_codes),
        message=draw(texts(1, 60)),
        severity=draw(st.sampled_from(IssueSeverity)),
        raw=draw(optional(texts(0, 40))),
    )


# --- events ------------------------------------------------------------------------------------


class Common(TypedDict):
    payment_id: PaymentId
    request_id: RequestId
    merchant_id: MerchantId
    timestamp: datetime


commons = st.builds(
    Common, payment_id=payment_ids, request_id=request_ids, merchant_id=merchant_ids, timestamp=timestamps
)


@st.composite
def payment_received(draw: st.DrawFn) -> PaymentReceived:
    issues = tuple(draw(st.lists(validation_issues(), max_size=4)))
    blocked = any(issue.blocks for issue in issues)
    return PaymentReceived(
        **draw(commons),
        accepted=False if blocked else draw(st.booleans()),
        amount_cents=draw(optional(amounts)),
        currency=draw(optional(currencies)),
        method=draw(optional(methods)),
        idempotency_key=draw(optional(texts(1, 255))),
        validation_issues=issues,
    )


def planned_step(index: int, amount: int) -> st.SearchStrategy[PlannedStep]:
    return st.builds(
        PlannedStep,
        index=st.just(index),
        method=methods,
        amount_cents=st.just(amount),
        processor_ids=st.lists(processor_ids, min_size=1, max_size=4, unique=True).map(tuple),
    )


@st.composite
def plan_built(draw: st.DrawFn) -> PlanBuilt:
    step_amounts = draw(st.lists(st.integers(min_value=1, max_value=MAX_MINOR_UNITS // 8), max_size=4))
    shortfall = draw(st.integers(min_value=0, max_value=MAX_MINOR_UNITS // 2))
    steps = tuple(draw(planned_step(index, amount)) for index, amount in enumerate(step_amounts))
    return PlanBuilt(
        **draw(commons),
        total_amount_cents=sum(step_amounts) + shortfall,
        currency=draw(currencies),
        steps=steps,
        coverage_shortfall_cents=shortfall,
        partial_policy=draw(st.none() | st.sampled_from(PartialPolicy)),
    )


@st.composite
def step_attempted(draw: st.DrawFn) -> StepAttempted:
    return StepAttempted(
        **draw(commons),
        step_index=draw(counts),
        processor_id=draw(processor_ids),
        attempt=draw(attempts),
        method=draw(methods),
        amount_cents=draw(amounts),
        idempotency_key=draw(texts(1, 255)),
    )


@st.composite
def step_succeeded(draw: st.DrawFn) -> StepSucceeded:
    return StepSucceeded(
        **draw(commons),
        step_index=draw(counts),
        processor_id=draw(processor_ids),
        latency_ms=draw(latencies),
        amount=draw(amounts),
        attempt=draw(attempts),
    )


@st.composite
def step_failed(draw: st.DrawFn) -> StepFailed:
    error_code = draw(error_codes)
    # Attempt 0: a step that sent nothing (every circuit open), which took no time.
    attempt = draw(st.just(0) | attempts)
    return StepFailed(
        **draw(commons),
        step_index=draw(counts),
        processor_id=draw(processor_ids),
        error_code=error_code,
        retryable=error_code.retryable,  # any other value is refused (tests/schema/test_invalid_protos.py)
        latency_ms=0 if attempt == 0 else draw(latencies),
        attempt=attempt,
        # Only a refusal of the card says why (engine.decline_codes).
        decline_code=draw(optional(decline_codes)) if error_code in WITH_DECLINE_CODE else None,
        failure_details=draw(optional(failure_details)),
    )


@st.composite
def compensation_issued(draw: st.DrawFn) -> CompensationIssued:
    succeeded = draw(st.booleans())
    return CompensationIssued(
        **draw(commons),
        step_index=draw(counts),
        processor_id=draw(processor_ids),
        amount=draw(amounts),
        succeeded=succeeded,
        error_code=None if succeeded else draw(error_codes),
    )


@st.composite
def _total_and_processed(draw: st.DrawFn) -> tuple[int, int]:
    total = draw(amounts)
    return total, draw(st.integers(min_value=0, max_value=total))


@st.composite
def payment_completed(draw: st.DrawFn) -> PaymentCompleted:
    if draw(st.booleans()):
        total = draw(positive_amounts)
        processed, status = total, PaymentStatus.SUCCEEDED
    else:
        total = draw(st.integers(min_value=2, max_value=MAX_MINOR_UNITS))
        processed = draw(st.integers(min_value=1, max_value=total - 1))
        status = PaymentStatus.PARTIALLY_SUCCEEDED
    return PaymentCompleted(**draw(commons), total_amount=total, total_processed=processed, status=status)


@st.composite
def payment_failed(draw: st.DrawFn) -> PaymentFailed:
    total, processed = draw(_total_and_processed())
    return PaymentFailed(
        **draw(commons),
        total_amount=total,
        final_error=draw(error_codes),
        total_processed=processed,
    )


#: One strategy per event type, by type.
EVENT_STRATEGIES: dict[type[DomainEvent], st.SearchStrategy[DomainEvent]] = {
    PaymentReceived: payment_received(),
    PlanBuilt: plan_built(),
    StepAttempted: step_attempted(),
    StepSucceeded: step_succeeded(),
    StepFailed: step_failed(),
    CompensationIssued: compensation_issued(),
    PaymentCompleted: payment_completed(),
    PaymentFailed: payment_failed(),
}
events = st.one_of(*EVENT_STRATEGIES.values())


# --- plans -------------------------------------------------------------------------------------

#: Small enough that six steps never add up past the largest amount.
_STEP_AMOUNT_MAX = MAX_MINOR_UNITS // 8


@st.composite
def payment_steps(draw: st.DrawFn, index: int) -> PaymentStep:
    amount = draw(st.integers(min_value=1, max_value=_STEP_AMOUNT_MAX))
    return PaymentStep(
        index=index,
        method=draw(methods),
        amount_cents=amount,
        processor_ids=tuple(draw(st.lists(processor_ids, min_size=1, max_size=4, unique=True))),
        max_amount_cents=draw(optional(st.integers(min_value=amount, max_value=MAX_MINOR_UNITS))),
    )


@st.composite
def payment_plans(draw: st.DrawFn) -> PaymentPlan:
    size = draw(st.integers(min_value=0, max_value=6))
    steps = tuple(draw(payment_steps(index)) for index in range(size))
    planned = sum(step.amount_cents for step in steps)
    total = draw(st.integers(min_value=max(planned, 1), max_value=MAX_MINOR_UNITS))
    total = draw(st.sampled_from([total, max(planned, 1)]))
    return PaymentPlan(
        payment_id=draw(payment_ids),
        request_id=draw(request_ids),
        merchant_id=draw(merchant_ids),
        total_amount_cents=total,
        currency=draw(currencies),
        steps=steps,
        partial_policy=draw(st.sampled_from(PartialPolicy)),
    )


# --- configuration -----------------------------------------------------------------------------

retry_policies = st.integers(min_value=0, max_value=60_000).flatmap(
    lambda base: st.builds(
        RetryPolicy,
        max_attempts=st.integers(min_value=1, max_value=20),
        base_delay_ms=st.just(base),
        max_delay_ms=st.integers(min_value=base, max_value=600_000),
    )
)
_millis = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
latency_profiles = st.tuples(_millis, _millis).map(
    lambda pair: LatencyProfile(p50_ms=min(pair), p99_ms=max(pair))
)
_rate = st.floats(min_value=0.0, max_value=0.2, allow_nan=False)
fault_rates = st.builds(
    FaultRates, declined=_rate, timeout=_rate, network_failure=_rate, panic=_rate, malformed=_rate
)


breaker_policies = st.builds(
    BreakerPolicy,
    failure_threshold=st.integers(min_value=1, max_value=MAX_FAILURE_THRESHOLD),
    cool_down_s=st.floats(min_value=0, max_value=MAX_COOL_DOWN_S, exclude_min=True)
    | st.integers(min_value=1, max_value=MAX_COOL_DOWN_S),
)


@st.composite
def processor_configs(draw: st.DrawFn, processor_id: ProcessorId) -> ProcessorConfig:
    kind = draw(st.sampled_from(ProcessorKind))
    key_env = draw(identifiers) if kind is ProcessorKind.STRIPE else draw(optional(identifiers))
    return ProcessorConfig(
        id=processor_id,
        kind=kind,
        seed=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        latency=draw(latency_profiles),
        fault_rates=draw(fault_rates),
        api_key_env=key_env,
        api_base=draw(optional(urls())),
        currencies=tuple(draw(st.lists(currencies, max_size=3, unique=True))),
        methods=tuple(draw(st.lists(methods, max_size=3, unique=True))),
        breaker=draw(breaker_policies),
    )


@st.composite
def routing_rules(draw: st.DrawFn, known: list[ProcessorId]) -> RoutingRule:
    return RoutingRule(
        method=draw(methods),
        processors=tuple(draw(st.lists(st.sampled_from(known), min_size=1, max_size=3, unique=True))),
        max_amount_cents=draw(optional(positive_amounts)),
    )


@st.composite
def merchant_configs(
    draw: st.DrawFn, merchant_id: MerchantId, api_keys: list[str], known: list[ProcessorId]
) -> MerchantConfig:
    return MerchantConfig(
        merchant_id=merchant_id,
        api_keys=tuple(api_keys),
        default_currency=draw(currencies),
        routing=tuple(draw(st.lists(routing_rules(known), min_size=1, max_size=3))),
        partial_policy=draw(st.sampled_from(PartialPolicy)),
        max_amount_cents=draw(positive_amounts),
        timeout_ms=draw(st.integers(min_value=1, max_value=600_000)),
        retry=draw(retry_policies),
        latency_slo_ms=draw(optional(st.integers(min_value=1, max_value=UINT32_MAX))),
        max_in_flight=draw(st.integers(min_value=1, max_value=MAX_IN_FLIGHT)),
        complaint_limits=ComplaintLimits(
            per_minute=draw(st.integers(min_value=1, max_value=MAX_COMPLAINTS_PER_MINUTE)),
            per_day=draw(st.integers(min_value=1, max_value=MAX_COMPLAINTS_PER_DAY)),
        ),
    )


def _taking_routed(processor: ProcessorConfig, merchants: list[MerchantConfig]) -> ProcessorConfig:
    """``processor``, its ``methods`` (when it lists any) extended by those of the rules that route
    to it: a routing rule names only processors that take its method."""
    routed = {rule.method for m in merchants for rule in m.routing if processor.id in rule.processors}
    missing = tuple(method for method in PaymentMethod if method in routed - set(processor.methods))
    if not processor.methods or not missing:
        return processor
    return replace(processor, methods=(*processor.methods, *missing))


@st.composite
def platform_configs(draw: st.DrawFn) -> PlatformConfig:
    known = draw(st.lists(processor_ids, min_size=1, max_size=4, unique=True))
    merchant_count = draw(st.integers(min_value=0, max_value=3))
    merchant_names = draw(
        st.lists(merchant_ids, min_size=merchant_count, max_size=merchant_count, unique=True)
    )
    key_counts = [draw(st.integers(min_value=1, max_value=2)) for _ in merchant_names]
    admin_count = draw(st.integers(min_value=0, max_value=2))
    needed = admin_count + sum(key_counts)
    keys = draw(st.lists(identifiers, min_size=needed, max_size=needed, unique=True))
    admin_keys, keys = keys[:admin_count], keys[admin_count:]
    merchants = []
    for name, count in zip(merchant_names, key_counts, strict=True):
        merchants.append(draw(merchant_configs(name, keys[:count], known)))
        keys = keys[count:]
    return PlatformConfig(
        merchants=tuple(merchants),
        processors=tuple(_taking_routed(draw(processor_configs(p)), merchants) for p in known),
        admin_api_keys=tuple(admin_keys),
        complaint_taxonomy=draw(
            st.lists(
                st.tuples(
                    identifiers,
                    st.from_regex(r"[a-z][a-z0-9-]{0,10}/[a-z][a-z0-9-]{0,10}", fullmatch=True).map(
                        ContractId
                    ),
                ),
                max_size=4,
                unique_by=lambda entry: category_key(entry[0]),  # one category, however it is written
            ).map(dict)
        ),
        escalations=draw(
            st.builds(
                EscalationConfig,
                webhook_url=optional(urls()),
                max_attempts=st.integers(min_value=1, max_value=100),
            )
        ),
        reports=draw(
            st.builds(
                ReportConfig,
                every_days=st.integers(min_value=1, max_value=366),
                mismatch=st.builds(
                    MismatchRule,
                    min_ratio=st.floats(min_value=0, max_value=1e9, allow_nan=False),
                    min_reports=st.integers(min_value=1, max_value=UINT32_MAX),
                ),
            )
        ),
        store=draw(
            st.builds(
                StoreConfig,
                max_rows=st.integers(min_value=1, max_value=1_000_000),
                max_wait_ms=st.integers(min_value=0, max_value=10_000),
                admit_limit=st.integers(min_value=1, max_value=10_000_000),
                memory_limit_mb=st.one_of(st.just(0), st.integers(min_value=16, max_value=1_048_576)),
                idempotency_hot_s=st.integers(min_value=0, max_value=86_400),
                admin_reads=st.none() | st.integers(min_value=1, max_value=1024),
                admin_read_idle_s=st.integers(min_value=1, max_value=3600),
                admin_read_max_s=st.integers(min_value=1, max_value=86_400),
                fair_share_percent=st.integers(min_value=1, max_value=100),
            ).flatmap(
                # memory_limit only where memory_limit_mb is not given: not both
                lambda store: (
                    st.just(store)
                    if store.memory_limit_mb
                    else st.builds(
                        replace,
                        st.just(store),
                        memory_limit=st.none() | st.sampled_from(["16MiB", "512MiB", "2GB", "1TiB"]),
                    )
                )
            )
        ),
    )


# --- results and violations --------------------------------------------------------------------

_RESULT_AMOUNT_MAX = MAX_MINOR_UNITS // 16


@st.composite
def step_results(draw: st.DrawFn, step_index: int) -> Result:
    success = draw(st.booleans())
    error_code = None if success else draw(error_codes)
    return Result(
        step_index=step_index,
        method=draw(methods),
        processor_id=draw(processor_ids),
        success=success,
        amount_processed=draw(st.integers(min_value=1, max_value=_RESULT_AMOUNT_MAX)) if success else 0,
        latency_ms=draw(st.integers(min_value=0, max_value=10**7)),
        attempts=draw(st.integers(min_value=1 if success else 0, max_value=20)),
        error_code=error_code,
        compensated=draw(st.booleans()) if success else False,
        decline_code=draw(optional(decline_codes)) if error_code in WITH_DECLINE_CODE else None,
        failure_details=None if success else draw(optional(failure_details)),
    )


@st.composite
def composite_results(draw: st.DrawFn) -> CompositeResult:
    indices = sorted(draw(st.lists(st.integers(min_value=0, max_value=6), max_size=6, unique=True)))
    steps = tuple(draw(step_results(index)) for index in indices)
    processed = sum(step.charged_cents for step in steps)
    feasible = [PaymentStatus.FAILED]
    if processed > 0:
        feasible += [PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_SUCCEEDED]
    status = draw(st.sampled_from(feasible))
    if status is PaymentStatus.SUCCEEDED:
        total, final_error = processed, None
    elif status is PaymentStatus.PARTIALLY_SUCCEEDED:
        total = processed + draw(st.integers(min_value=1, max_value=_RESULT_AMOUNT_MAX))
        final_error = draw(optional(error_codes))
    else:
        total = processed + draw(st.integers(min_value=0 if processed else 1, max_value=_RESULT_AMOUNT_MAX))
        final_error = draw(error_codes)
    return CompositeResult(
        payment_id=draw(payment_ids),
        request_id=draw(request_ids),
        merchant_id=draw(merchant_ids),
        status=status,
        currency=draw(currencies),
        total_amount=total,
        step_results=steps,
        final_error=final_error,
        validation_errors=tuple(draw(st.lists(validation_issues(), max_size=3))),
    )


contract_ids = st.from_regex(r"[a-z][a-z0-9-]{0,12}/[a-z][a-z0-9-]{0,12}", fullmatch=True).map(ContractId)
owners = st.from_regex(r"[a-z][a-z0-9-]{0,16}", fullmatch=True)

violations = st.builds(
    ContractViolation,
    contract_id=contract_ids,
    request_id=request_ids,
    severity=st.sampled_from(Severity),
    message=texts(1, 200),
    owner=owners,
    timestamp=timestamps,
    payment_id=optional(payment_ids),
    merchant_id=optional(merchant_ids),
)
