"""Every domain event survives domain -> proto -> bytes -> proto -> domain unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from payments.events.v1 import events_pb2
from payments.plan.v1 import plan_pb2

from engine.errors import DomainError
from engine.events import EVENT_TYPES, DomainEvent, PlanBuilt, StepFailed, event_ids
from engine.methods import PartialPolicy
from engine.money import Currency
from engine.types import MerchantId, PaymentId, RequestId
from ingest.codec.events import event_from_bytes, event_from_proto, event_to_bytes, event_to_proto
from tests.strategies import EVENT_STRATEGIES


def test_every_event_type_has_a_strategy() -> None:
    assert set(EVENT_STRATEGIES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda event_type: event_type.event_type)
@given(data=st.data())
def test_event_round_trips_through_bytes(event_type: type[DomainEvent], data: st.DataObject) -> None:
    event = data.draw(EVENT_STRATEGIES[event_type])
    wire = event_to_proto(event).SerializeToString()
    decoded = event_from_proto(events_pb2.DomainEvent.FromString(wire))
    assert decoded == event
    assert type(decoded) is event_type
    assert event_from_bytes(event_to_bytes(event)) == event


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda event_type: event_type.event_type)
@given(data=st.data())
def test_decoded_timestamp_is_the_same_instant_in_utc(
    event_type: type[DomainEvent], data: st.DataObject
) -> None:
    event = data.draw(EVENT_STRATEGIES[event_type])
    decoded = event_from_bytes(event_to_bytes(event))
    assert decoded.timestamp == event.timestamp
    assert decoded.timestamp.utcoffset() == UTC.utcoffset(None)
    assert decoded.timestamp.microsecond == event.timestamp.astimezone(UTC).microsecond


@given(EVENT_STRATEGIES[StepFailed])
def test_step_failed_carries_its_retry_flag(event: DomainEvent) -> None:
    assert isinstance(event, StepFailed)
    assert event.retryable is event.error_code.retryable
    assert event_to_proto(event).step_failed.retryable is event.retryable
    decoded = event_from_bytes(event_to_bytes(event))
    assert isinstance(decoded, StepFailed)
    assert decoded.retryable is event.retryable


@given(st.sampled_from(EVENT_TYPES).flatmap(lambda event_type: EVENT_STRATEGIES[event_type]))
def test_envelope_names_the_event_in_its_oneof(event: DomainEvent) -> None:
    envelope = event_to_proto(event)
    oneof = envelope.WhichOneof("event")
    assert oneof is not None
    assert "".join(part.title() for part in oneof.split("_")) == event.event_type
    assert envelope.payment_id == event.payment_id
    assert envelope.request_id == event.request_id
    assert envelope.merchant_id == event.merchant_id


@given(EVENT_STRATEGIES[PlanBuilt])
def test_plan_built_carries_its_partial_policy_and_is_absent_when_not_recorded(event: DomainEvent) -> None:
    assert isinstance(event, PlanBuilt)
    body = event_to_proto(event).plan_built
    assert body.HasField("partial_policy") is (event.partial_policy is not None)
    decoded = event_from_bytes(event_to_bytes(event))
    assert isinstance(decoded, PlanBuilt)
    assert decoded.partial_policy is event.partial_policy


def test_a_plan_built_written_before_the_policy_was_recorded_decodes_without_one() -> None:
    recorded = PlanBuilt(
        **event_ids(
            PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), datetime(2026, 11, 26, tzinfo=UTC)
        ),
        total_amount_cents=1000,
        currency=Currency("USD"),
        steps=(),
        coverage_shortfall_cents=1000,
        partial_policy=PartialPolicy.ALLOW_PARTIAL,
    )
    older = event_to_proto(recorded)
    older.plan_built.ClearField("partial_policy")  # as an event written before the field existed

    decoded = event_from_proto(older)

    assert isinstance(decoded, PlanBuilt)
    assert decoded.partial_policy is None
    older.plan_built.partial_policy = plan_pb2.PARTIAL_POLICY_UNSPECIFIED  # set, but to nothing
    with pytest.raises(DomainError, match=r"event\.partial_policy"):
        event_from_proto(older)
