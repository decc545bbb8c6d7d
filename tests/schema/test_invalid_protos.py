"""Decoding a proto that breaks the contract raises a domain error naming the field."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from payments.config.v1 import config_pb2
from payments.events.v1 import events_pb2
from payments.plan.v1 import plan_pb2

from engine.errors import (
    DomainError,
    InvalidAmountError,
    InvalidFieldError,
    InvalidIdentifierError,
    InvalidTimestampError,
    PlanInvariantError,
    ResultInvariantError,
    UnknownCurrencyError,
    UnknownErrorCodeError,
    UnknownPaymentMethodError,
)
from engine.events import StepSucceeded
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.codec.config import config_from_proto
from ingest.codec.events import event_from_bytes, event_from_proto, event_to_proto
from ingest.codec.plan import plan_from_proto


def _plan(**changes: object) -> plan_pb2.PaymentPlan:
    plan = plan_pb2.PaymentPlan(
        payment_id="pay_1",
        request_id="req_1",
        merchant_id="m_acme",
        total_amount_cents=1000,
        currency="USD",
        steps=[
            plan_pb2.PaymentStep(
                index=0, method=plan_pb2.PAYMENT_METHOD_CARD, amount_cents=1000, processor_ids=["stripe_sim"]
            )
        ],
        partial_policy=plan_pb2.PARTIAL_POLICY_ALL_OR_NOTHING,
    )
    for name, value in changes.items():
        setattr(plan, name, value)
    return plan


def _event() -> events_pb2.DomainEvent:
    return event_to_proto(
        StepSucceeded(
            payment_id=PaymentId("pay_1"),
            request_id=RequestId("req_1"),
            merchant_id=MerchantId("m_acme"),
            timestamp=datetime(2026, 11, 12, 8, 30, tzinfo=UTC),
            step_index=0,
            processor_id=ProcessorId("stripe_sim"),
            latency_ms=12,
            amount=1000,
        )
    )


def test_a_valid_plan_decodes() -> None:
    assert plan_from_proto(_plan()).total_amount_cents == 1000


@pytest.mark.parametrize("code", ["", "usd", "ZZZ", " USD", "840"])
def test_unknown_currency_names_the_plan_field(code: str) -> None:
    with pytest.raises(UnknownCurrencyError) as caught:
        plan_from_proto(_plan(currency=code))
    assert caught.value.field == "plan.currency"


def test_unspecified_partial_policy_is_refused() -> None:
    with pytest.raises(InvalidFieldError, match="unspecified") as caught:
        plan_from_proto(_plan(partial_policy=plan_pb2.PARTIAL_POLICY_UNSPECIFIED))
    assert caught.value.field == "plan.partial_policy"


@pytest.mark.parametrize("number", [plan_pb2.PAYMENT_METHOD_UNSPECIFIED, 99])
def test_unspecified_or_unknown_step_method_is_refused(number: int) -> None:
    plan = _plan()
    plan.steps[0].method = number  # type: ignore[assignment]
    decoded = plan_pb2.PaymentPlan.FromString(plan.SerializeToString())
    with pytest.raises(UnknownPaymentMethodError) as caught:
        plan_from_proto(decoded)
    assert caught.value.field == "step.method"


def test_negative_amount_is_refused() -> None:
    with pytest.raises(InvalidAmountError):
        plan_from_proto(_plan(total_amount_cents=-5))


def test_steps_beyond_the_total_break_the_plan() -> None:
    with pytest.raises(PlanInvariantError):
        plan_from_proto(_plan(total_amount_cents=999))


def test_empty_identifier_is_refused() -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        plan_from_proto(_plan(payment_id=""))
    assert caught.value.field == "plan.payment_id"


def test_a_valid_event_decodes() -> None:
    assert isinstance(event_from_proto(_event()), StepSucceeded)


def test_envelope_without_an_event_is_refused() -> None:
    envelope = _event()
    envelope.ClearField("step_succeeded")
    with pytest.raises(InvalidFieldError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.event"


def test_envelope_without_a_timestamp_is_refused() -> None:
    envelope = _event()
    envelope.ClearField("timestamp")
    with pytest.raises(InvalidTimestampError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.timestamp"


@pytest.mark.parametrize(
    "timestamp",
    [Timestamp(seconds=2**40), Timestamp(seconds=-(2**40)), Timestamp(seconds=0, nanos=-1)],
    ids=["after-9999", "before-0001", "negative-nanos"],
)
def test_timestamp_outside_the_protobuf_range_is_refused(timestamp: Timestamp) -> None:
    envelope = _event()
    envelope.timestamp.CopyFrom(timestamp)
    with pytest.raises(InvalidTimestampError):
        event_from_proto(envelope)


def test_unspecified_error_code_is_refused() -> None:
    envelope = events_pb2.DomainEvent()
    envelope.CopyFrom(_event())
    envelope.payment_failed.total_amount = 10
    with pytest.raises(UnknownErrorCodeError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.final_error"


def test_unspecified_payment_status_is_refused() -> None:
    envelope = _event()
    envelope.payment_completed.total_amount = 10
    with pytest.raises(InvalidFieldError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.status"


def test_retry_flag_that_contradicts_the_error_code_is_refused() -> None:
    envelope = _event()
    envelope.step_failed.CopyFrom(
        events_pb2.StepFailed(
            processor_id="stripe_sim",
            error_code=events_pb2.ERROR_CODE_DECLINED,
            attempt=1,
            retryable=True,
        )
    )
    with pytest.raises(ResultInvariantError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.retryable"


@pytest.mark.parametrize(
    ("error_code", "decline_code", "error"),
    [
        (events_pb2.ERROR_CODE_DECLINED, "Insufficient funds!", InvalidFieldError),
        (events_pb2.ERROR_CODE_DECLINED, "", InvalidFieldError),
        (events_pb2.ERROR_CODE_TIMEOUT, "insufficient_funds", ResultInvariantError),
    ],
)
def test_a_decline_code_outside_the_list_or_on_another_error_is_refused(
    error_code: int, decline_code: str, error: type[DomainError]
) -> None:
    envelope = _event()
    envelope.step_failed.CopyFrom(
        events_pb2.StepFailed(
            processor_id="stripe_sim",
            error_code=error_code,  # type: ignore[arg-type]
            attempt=1,
            retryable=error_code == events_pb2.ERROR_CODE_TIMEOUT,
            decline_code=decline_code,
        )
    )
    with pytest.raises(error) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.decline_code"


def test_optional_currency_set_to_garbage_is_refused() -> None:
    envelope = _event()
    envelope.payment_received.currency = "dollars"
    with pytest.raises(UnknownCurrencyError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "event.currency"


def test_unspecified_issue_severity_is_refused() -> None:
    envelope = _event()
    envelope.payment_received.validation_issues.add(field="amount", code="bad", message="bad")
    with pytest.raises(InvalidFieldError) as caught:
        event_from_proto(envelope)
    assert caught.value.field == "issue.severity"


def test_bytes_that_are_no_envelope_are_refused() -> None:
    with pytest.raises(InvalidFieldError) as caught:
        event_from_bytes(b"\xff\xff\xff")
    assert caught.value.field == "event"


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_to_an_event_or_a_domain_error(data: bytes) -> None:
    with contextlib.suppress(DomainError):
        event_from_bytes(data)


def _config(kind: int = config_pb2.PROCESSOR_KIND_SIMULATED) -> config_pb2.PlatformConfig:
    return config_pb2.PlatformConfig(
        processors=[config_pb2.ProcessorConfig(id="sim", kind=kind)],  # type: ignore[arg-type]
        merchants=[
            config_pb2.MerchantConfig(
                merchant_id="m_acme",
                api_keys=["sk_1"],
                default_currency="EUR",
                routing=[config_pb2.RoutingRule(method=plan_pb2.PAYMENT_METHOD_CARD, processors=["sim"])],
                partial_policy=plan_pb2.PARTIAL_POLICY_ALLOW_PARTIAL,
                max_amount_cents=5000,
                timeout_ms=2000,
            )
        ],
    )


def test_a_valid_config_decodes() -> None:
    assert config_from_proto(_config()).merchants[0].default_currency.code == "EUR"


def test_unspecified_processor_kind_is_refused() -> None:
    with pytest.raises(InvalidFieldError) as caught:
        config_from_proto(_config(kind=config_pb2.PROCESSOR_KIND_UNSPECIFIED))
    assert caught.value.field == "processors['sim'].kind"


def test_unknown_default_currency_names_the_merchant() -> None:
    message = _config()
    message.merchants[0].default_currency = "EURO"
    with pytest.raises(UnknownCurrencyError) as caught:
        config_from_proto(message)
    assert caught.value.field == "merchants['m_acme'].default_currency"


def test_unspecified_routing_method_names_the_rule() -> None:
    message = _config()
    message.merchants[0].routing.add(processors=["sim"])
    with pytest.raises(UnknownPaymentMethodError) as caught:
        config_from_proto(message)
    assert caught.value.field == "merchants['m_acme'].routing[1].method"


def test_zero_timeout_is_refused() -> None:
    message = _config()
    message.merchants[0].timeout_ms = 0
    with pytest.raises(DomainError):
        config_from_proto(message)


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"step_index": 2**32}, InvalidFieldError, "event.step_index"),
        ({"latency_ms": 2**32}, InvalidFieldError, "event.latency_ms"),
        (
            {"timestamp": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
            InvalidTimestampError,
            "event.timestamp",
        ),
        ({"processor_id": "stripe\ud800"}, InvalidFieldError, "event.processor_id"),
    ],
)
def test_values_no_wire_format_can_carry_are_refused_by_the_domain(
    overrides: dict[str, object], error: type[Exception], field: str
) -> None:
    values: dict[str, object] = {
        "payment_id": PaymentId("pay_1"),
        "request_id": RequestId("req_1"),
        "merchant_id": MerchantId("m_acme"),
        "timestamp": datetime(2026, 11, 12, tzinfo=UTC),
        "step_index": 0,
        "processor_id": ProcessorId("stripe_sim"),
        "latency_ms": 12,
        "amount": 1000,
    }
    values.update(overrides)
    with pytest.raises(error, match=f"^{field}="):
        StepSucceeded(**values)  # type: ignore[arg-type]
