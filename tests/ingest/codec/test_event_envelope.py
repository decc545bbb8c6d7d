"""The envelope as the store encodes it: a body whose every field holds its default still names
its event, and only the schema's own event kinds are encoded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError
from engine.events import PaymentReceived, StepFailed, event_ids
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.codec.events import event_from_bytes, event_to_bytes, event_to_proto

_IDS = event_ids(PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), datetime(1970, 1, 1, tzinfo=UTC))


def test_a_refused_request_that_gave_nothing_is_still_a_payment_received() -> None:
    # Every field of its body is the wire's default (false, absent): only the oneof says what it is.
    refused = PaymentReceived(**_IDS, accepted=False)

    envelope = event_to_proto(refused)

    assert envelope.WhichOneof("event") == "payment_received"
    assert event_from_bytes(event_to_bytes(refused)) == refused


def test_a_step_that_sent_nothing_keeps_its_zeros() -> None:
    skipped = StepFailed(
        **_IDS,
        step_index=0,
        processor_id=ProcessorId("sim_a"),
        error_code=ErrorCode.PROCESSOR_UNAVAILABLE,
        retryable=ErrorCode.PROCESSOR_UNAVAILABLE.retryable,
        latency_ms=0,
        attempt=0,
    )

    assert event_to_proto(skipped).WhichOneof("event") == "step_failed"
    assert event_from_bytes(event_to_bytes(skipped)) == skipped


@dataclass(frozen=True, slots=True, kw_only=True)
class _Renamed(PaymentReceived):
    """Not an event of payments.events.v1, though it holds one's fields."""


def test_an_event_of_another_kind_is_refused_by_name() -> None:
    with pytest.raises(InvalidFieldError, match="_Renamed.*is not an event of payments.events.v1"):
        event_to_proto(_Renamed(**_IDS, accepted=True))
