"""Cost of the domain's validation: building a two-step CompositeResult and its events.

Baseline: the same fields put into plain dicts, which is what a payment would cost with no
invariants checked at all. The ratio shows what the checks cost per payment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.harness import Comparison, rate
from engine.events import PaymentCompleted, StepSucceeded
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.results import CompositeResult, PaymentStatus, Result
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId

USD = Currency("USD")
NOW = datetime(2026, 11, 26, tzinfo=UTC)
IDS: dict[str, Any] = {
    "payment_id": PaymentId("pay_1"),
    "request_id": RequestId("req_1"),
    "merchant_id": MerchantId("m_acme"),
}


def domain_payment() -> CompositeResult:
    steps = (
        Result(0, PaymentMethod.APPLE_PAY, ProcessorId("applepay_sim"), True, 6000, 12, 1),
        Result(1, PaymentMethod.CARD, ProcessorId("stripe_sim"), True, 4000, 15, 1),
    )
    for step in steps:
        StepSucceeded(
            **IDS,
            timestamp=NOW,
            step_index=step.step_index,
            processor_id=step.processor_id,
            latency_ms=step.latency_ms,
            amount=step.amount_processed,
        )
    PaymentCompleted(**IDS, timestamp=NOW, total_amount=10_000, total_processed=10_000)
    return CompositeResult(
        IDS["payment_id"], IDS["request_id"], IDS["merchant_id"], PaymentStatus.SUCCEEDED, USD, 10_000, steps
    )


def plain_payment() -> dict[str, object]:
    steps = [
        {
            "step_index": 0,
            "method": "apple_pay",
            "processor_id": "applepay_sim",
            "amount": 6000,
            "latency_ms": 12,
        },
        {"step_index": 1, "method": "card", "processor_id": "stripe_sim", "amount": 4000, "latency_ms": 15},
    ]
    events = [{**IDS, "timestamp": NOW, **step} for step in steps]
    events.append({**IDS, "timestamp": NOW, "total_amount": 10_000})
    return {
        **IDS,
        "status": "succeeded",
        "currency": "USD",
        "total_amount": 10_000,
        "steps": steps,
        "events": events,
    }


def run() -> list[Comparison]:
    measured = rate(domain_payment, count=20_000)
    baseline = rate(plain_payment, count=20_000)
    return [
        Comparison(
            name="domain objects of a two-step payment",
            unit="payments/s",
            measured=measured,
            baseline=baseline,
            baseline_name="plain dicts",
        )
    ]
