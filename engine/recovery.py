"""Finishing the payments a crash cut short.

A payment whose events stop before ``PaymentCompleted`` or ``PaymentFailed`` was interrupted.
Its ``StepAttempted`` events name every charge that may have been sent (each was durable before
its processor was called), so recovery can settle each one:

1. Every (step, processor) that was attempted and holds no recorded success is asked what it
   holds for the step's key (``status``). A charge found there is recorded as the
   ``StepSucceeded`` the crash kept from being written; the other answers mean nothing is held.
   A processor that cannot answer leaves the payment for the next start (:class:`Unsettled`).
2. A step charged at two processors (a timeout that had charged after all, then a fallback) keeps
   its first charge; the others are voided or refunded.
3. The payment is finished by :meth:`CompositePaymentService.finish`: completed when every step
   holds its charge, else partially succeeded (``allow_partial``) or compensated and failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.config import MerchantConfig
from engine.context import CoreRequestContext
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
    StepSucceeded,
)
from engine.guard import guarded_status
from engine.orchestrator import CompositePaymentService
from engine.plan import PaymentPlan, PaymentStep
from engine.ports import Clock, EventSink
from engine.processor import Processor, Settlement
from engine.results import CompositeResult
from engine.types import ProcessorId

TERMINAL = (PaymentCompleted, PaymentFailed)


class Unsettled(Exception):  # noqa: N818 - a state, reported, not a fault
    """A processor could not say what it holds; the payment waits for the next start."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """A finished payment and how many of its attempts had to be asked about."""

    result: CompositeResult
    settled_attempts: int
    idempotency_key: str | None


def interrupted(events: Sequence[DomainEvent]) -> bool:
    """Whether these events (one payment's, in order) stop before the payment ended."""
    accepted = any(type(event) is PaymentReceived and event.accepted for event in events)
    return accepted and not any(isinstance(event, TERMINAL) for event in events)


async def recover_payment(
    events: Sequence[DomainEvent],
    *,
    service: CompositePaymentService,
    processors: Mapping[ProcessorId, Processor],
    merchant: MerchantConfig,
    sink: EventSink,
    clock: Clock,
) -> Recovered:
    """Settle and finish one interrupted payment (see the module text)."""
    received = next(event for event in events if type(event) is PaymentReceived)
    if received.amount_cents is None or received.currency is None:
        raise Unsettled(f"payment {received.payment_id}: its request has no amount or currency")
    ctx = CoreRequestContext(
        merchant_id=received.merchant_id,
        request_id=received.request_id,
        payment_id=received.payment_id,
        amount_cents=received.amount_cents,
        currency=received.currency,
        payment_method=received.method,
        idempotency_key=received.idempotency_key,
        validation_errors=received.validation_issues,
    )
    planned = next((event for event in events if type(event) is PlanBuilt), None)
    steps = () if planned is None else planned.steps
    plan = PaymentPlan(
        payment_id=ctx.payment_id,
        request_id=ctx.request_id,
        merchant_id=ctx.merchant_id,
        total_amount_cents=ctx.amount_cents,
        currency=ctx.currency,
        steps=tuple(PaymentStep(s.index, s.method, s.amount_cents, s.processor_ids) for s in steps),
        partial_policy=merchant.partial_policy,
    )
    timeout_s = merchant.timeout_ms / 1000
    held: dict[tuple[int, ProcessorId], int] = {}
    attempted: dict[tuple[int, ProcessorId], StepAttempted] = {}
    for event in events:
        if type(event) is StepAttempted:
            attempted.setdefault((event.step_index, event.processor_id), event)
        elif type(event) is StepSucceeded:
            held[event.step_index, event.processor_id] = event.amount
        elif type(event) is CompensationIssued and event.succeeded:
            held.pop((event.step_index, event.processor_id), None)
    settled = 0
    for (step_index, processor_id), attempt in attempted.items():
        if (step_index, processor_id) in held:
            continue
        processor = processors.get(processor_id)
        if processor is None:
            raise Unsettled(f"payment {ctx.payment_id}: processor {processor_id} is not configured")
        answer, _ = await guarded_status(processor, attempt.idempotency_key, timeout_s, clock)
        if answer.settlement is Settlement.UNKNOWN:
            raise Unsettled(f"payment {ctx.payment_id}: {processor_id} cannot say what it holds")
        settled += 1
        if answer.settlement is Settlement.CHARGED:
            amount = answer.amount_cents or attempt.amount_cents
            held[step_index, processor_id] = amount
            await sink.emit(
                StepSucceeded(
                    payment_id=ctx.payment_id,
                    request_id=ctx.request_id,
                    merchant_id=ctx.merchant_id,
                    timestamp=clock.now(),
                    step_index=step_index,
                    processor_id=processor_id,
                    latency_ms=answer.latency_ms,
                    amount=amount,
                    attempt=attempt.attempt,
                )
            )
    charged: dict[int, tuple[ProcessorId, int]] = {}
    for (step_index, processor_id), amount in held.items():
        if step_index in charged:
            await service.undo_charge(ctx, step_index, processor_id, amount)
            continue
        charged[step_index] = (processor_id, amount)
    result = await service.finish(ctx, plan, charged)
    return Recovered(result, settled, ctx.idempotency_key)
