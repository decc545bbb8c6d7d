"""MemoryRecords' index of requests: what it answers, and that it stays out of the collector's way."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime

from engine.contracts import ContractViolation, Severity
from engine.events import PaymentReceived
from engine.types import ContractId, MerchantId, PaymentId, RequestId
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
