"""MemoryRecords' index of requests and its payments' events: what they answer, and that they stay
out of the collector's way."""

from __future__ import annotations

import asyncio
import gc
import json
from datetime import UTC, datetime

from engine.contracts import ContractViolation, Severity
from engine.events import (
    DomainEvent,
    PaymentCompleted,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepSucceeded,
    event_ids,
)
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import ContractId, MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from ingest.codec.event_json import event_json
from ingest.records import MemoryRecords

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ACME = MerchantId("m_acme")


def received(payment_id: str, request_id: str) -> PaymentReceived:
    return PaymentReceived(
        payment_id=PaymentId(payment_id),
        request_id=RequestId(request_id),
        merchant_id=ACME,
        timestamp=AT,
        accepted=True,
    )


def violation(request_id: str, payment_id: str | None) -> ContractViolation:
    return ContractViolation(
        ContractId("router/timeout"),
        RequestId(request_id),
        Severity.MAJOR,
        "late",
        "payments-team",
        AT,
        None if payment_id is None else PaymentId(payment_id),
        ACME,
    )


def test_a_request_names_each_payment_recorded_under_it_once_and_only_to_its_merchant() -> None:
    async def scenario() -> MemoryRecords:
        records = MemoryRecords()
        await records.emit(received("pay_1", "req_1"))
        await records.emit(received("pay_2", "req_1"))
        await records.record_violation(violation("req_1", "pay_1"))
        await records.record_violation(violation("req_1", None))
        await records.emit(received("pay_3", "req_2"))
        assert await records.request_payments("m_acme", "req_1") == frozenset({"pay_1", "pay_2"})
        assert await records.request_payments("m_acme", "req_2") == frozenset({"pay_3"})
        assert await records.request_payments("m_globex", "req_1") is None
        assert await records.request_payments("m_acme", "req_3") is None
        return records

    asyncio.run(scenario())


def test_what_a_payment_leaves_in_the_request_index_is_dropped_from_the_collectors_view() -> None:
    # A long-running service keeps an entry per request: each one the collector tracks is walked
    # again by every full collection, which then takes longer with every payment kept.
    async def record(records: MemoryRecords) -> None:
        for number in range(50):
            await records.emit(received(f"pay_{number}", f"req_{number // 2}"))
            await records.record_violation(violation(f"req_{number // 2}", f"pay_{number}"))

    records = MemoryRecords()
    asyncio.run(record(records))
    gc.collect()
    gc.collect()  # a tuple that holds a tuple is dropped from view once the inner one is
    kept = [records._requests[f"req_{number}"] for number in range(25)]
    assert not any(gc.is_tracked(entry) for entry in kept)


def _payment_events(payment_id: str) -> list[DomainEvent]:
    """A two-step payment's events, as the engine emits them (warnings, a plan, two charges)."""
    ids = event_ids(PaymentId(payment_id), RequestId(f"req_{payment_id}"), ACME, AT)
    steps = (
        PlannedStep(0, PaymentMethod.APPLE_PAY, 600, (ProcessorId("applepay_sim"),)),
        PlannedStep(1, PaymentMethod.CARD, 400, (ProcessorId("stripe_sim"),)),
    )
    issue = ValidationIssue("method", "missing", "no payment method given", IssueSeverity.WARNING)
    events: list[DomainEvent] = [
        PaymentReceived(
            **ids, accepted=True, amount_cents=1000, currency=Currency("USD"), validation_issues=(issue,)
        ),
        PlanBuilt(**ids, total_amount_cents=1000, currency=Currency("USD"), steps=steps),
    ]
    for step in steps:
        processor = step.processor_ids[0]
        events.append(
            StepAttempted(
                **ids,
                step_index=step.index,
                processor_id=processor,
                attempt=1,
                method=step.method,
                amount_cents=step.amount_cents,
                idempotency_key=f"{payment_id}:step:{step.index}",
            )
        )
        events.append(
            StepSucceeded(
                **ids, step_index=step.index, processor_id=processor, latency_ms=0, amount=step.amount_cents
            )
        )
    events.append(PaymentCompleted(**ids, total_amount=1000, total_processed=1000))
    return events


def test_a_payments_events_read_back_while_it_runs_and_once_it_ended_in_order() -> None:
    events = _payment_events("pay_1")

    async def scenario() -> None:
        records = MemoryRecords()
        for event in events[:3]:
            await records.emit(event)
        running = await records.payment("pay_1")  # no last event yet: what it did so far
        assert running is not None
        assert running.document["status"] == "processing"
        assert running.document["total_amount"] == 1000
        assert records._events_of("pay_1") == [json.loads(event_json(event)) for event in events[:3]]
        for event in events[3:]:
            await records.emit(event)
        # The first three were kept when read; the rest follow them.
        assert records._events_of("pay_1") == [json.loads(event_json(event)) for event in events]

    asyncio.run(scenario())


def test_what_a_payment_leaves_of_its_events_is_out_of_the_collectors_view_at_once() -> None:
    # A long-running service keeps every payment's events: each object the collector tracks is
    # walked again by every full collection, and tuples holding tuples outlived young
    # collections (a level each), which then took 7-10 ms at 30,000 payments instead of 2-4.
    async def record(records: MemoryRecords) -> None:
        for number in range(20):
            for event in _payment_events(f"pay_{number}"):
                await records.emit(event)

    records = MemoryRecords()
    asyncio.run(record(records))
    kept = [records._events[f"pay_{number}"] for number in range(20)]  # no collection ran for them
    assert all(len(records._events_of(f"pay_{number}")) == 7 for number in range(20))
    assert not any(gc.is_tracked(rows) for rows in kept)
    assert not records._pending
