"""Finishing the payments a crash cut short.

A payment whose events stop before ``PaymentCompleted`` or ``PaymentFailed`` was interrupted.
Its ``StepAttempted`` events name every charge that may have been sent (each was durable before
its processor was called), so recovery can settle each one:

1. Every (step, processor) that was attempted and holds no recorded success is asked what it
   holds for the step's key (``status``), asked up to ``retry.max_attempts`` times (a query changes
   nothing, and one lost answer, a status call that timed out, must not leave the payment and its
   idempotency key stuck until the next start). A processor that still cannot answer leaves the
   payment for the next start (:class:`Unsettled`), with nothing recorded for it. Each call is a
   ``status_query`` span (the step, the processor, the attempt it settles, which try, and what
   it found), as each charge is an ``attempt`` span.
2. Every attempt then gets its outcome in the event log, so that none is left attempted without
   one (ARCHITECTURE.md decision 3): a charge found is the ``StepSucceeded`` the crash kept from
   being written, recorded for the last attempt at that processor (the one after which it was
   found, as the router records a charge its status query finds). An attempt the crash cut off
   before its answer was recorded, at a processor that holds nothing for the key, is a
   ``StepFailed`` with ``unknown``: it did not charge, and why it failed was never learned.
   Recorded outcomes are not rewritten.
   A charge found that is not the one the step asked for (another amount or currency) does not
   count: its attempt is a ``StepFailed`` with ``malformed_response`` (unless its failure was
   recorded) and the charge is voided in full, as the router does (``processor/malformed``).
3. A step charged at two processors (a timeout that had charged after all, then a fallback) keeps
   its first charge; the others are voided or refunded.
4. Each step's result is what its events say: its attempts counted, its latency the sum of its
   attempts' outcomes, and the processor holding its charge or, when none does, the processor of
   its last attempt with that attempt's error code and decline code. A step whose charge was
   already undone before the crash (compensation under way) keeps ``success`` with
   ``compensated``.
5. The payment is finished by :meth:`CompositePaymentService.finish`: completed when every step
   holds its charge, else partially succeeded (``allow_partial``) or compensated and failed. The
   policy is the one the payment was accepted under, as its ``PlanBuilt`` records it, whatever
   the merchant's configuration says at the restart: a shopper promised all or nothing is never
   left partly charged, and a partial charge the merchant accepted is not refunded. Only a
   ``PlanBuilt`` written before the policy was recorded (``partial_policy`` ``None``) is finished
   under the merchant's current policy. A plan that does not cover the total never ran: the
   payment fails ``coverage_shortfall``, as it did before the crash, with no step failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.config import MerchantConfig
from engine.context import CoreRequestContext
from engine.error_codes import ErrorCode
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from engine.guard import StrayCharge, guarded_status, stray_charge
from engine.observer import (
    ATTEMPT,
    NULL_OBSERVER,
    OUTCOME,
    PROCESSOR,
    QUERY,
    SETTLEMENT,
    STATUS_QUERY_SPAN,
    STEP_INDEX,
    SUCCEEDED,
    Observer,
)
from engine.orchestrator import CompositePaymentService
from engine.plan import PaymentPlan, PaymentStep
from engine.ports import Clock, EventSink
from engine.processor import Processor, Settlement, StatusAnswer
from engine.results import CompositeResult, Result
from engine.types import ProcessorId

TERMINAL = (PaymentCompleted, PaymentFailed)
#: The error of an attempt the crash cut off and that charged nothing: its answer was never
#: recorded, so why it failed is not known.
CUT_OFF = ErrorCode.UNKNOWN
#: The error of the attempt after which a charge was found that is not the one it asked for.
MALFORMED_CHARGE = ErrorCode.MALFORMED_RESPONSE


class Unsettled(Exception):  # noqa: N818 - a state, reported, not a fault
    """A processor could not say what it holds; the payment waits for the next start."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """A finished payment and how many of its attempts had to be asked about."""

    result: CompositeResult
    settled_attempts: int
    idempotency_key: str | None


@dataclass(slots=True)
class _Step:
    """What one step's events say: its attempts in order, each one's last recorded outcome, the
    charges it holds (by processor, in the order they were made) and those already undone."""

    attempts: list[StepAttempted] = field(default_factory=list)
    outcomes: dict[int, StepSucceeded | StepFailed] = field(default_factory=dict)
    held: dict[ProcessorId, int] = field(default_factory=dict)
    undone: dict[ProcessorId, int] = field(default_factory=dict)

    def last_attempt_at(self, processor_id: ProcessorId) -> StepAttempted:
        return next(a for a in reversed(self.attempts) if a.processor_id == processor_id)

    def processors(self) -> list[ProcessorId]:
        """The processors attempted, in the order of their first attempt."""
        return list(dict.fromkeys(attempt.processor_id for attempt in self.attempts))

    def result(self, planned: PaymentStep) -> Result:
        """The step's result once every attempt has its outcome (see the module text, 4)."""
        count = len(self.attempts)
        latency = sum(outcome.latency_ms for outcome in self.outcomes.values())
        kept = self.held or self.undone
        if kept:
            processor_id, amount = next(iter(kept.items()))
            compensated = not self.held
            return Result(
                planned.index, planned.method, processor_id, True, amount, latency, count, None, compensated
            )
        if not count:
            skipped = self.outcomes.get(0)  # every circuit was open: the router's attempt-0 StepFailed
            if type(skipped) is StepFailed:
                return Result(
                    planned.index, planned.method, skipped.processor_id, False, 0, 0, 0, skipped.error_code
                )
            # The crash came before the step began.
            first = planned.processor_ids[0] if planned.processor_ids else ProcessorId("none")
            return Result(planned.index, planned.method, first, False, 0, 0, 0, ErrorCode.UNKNOWN)
        last = self.attempts[-1]
        outcome = self.outcomes.get(last.attempt)
        if type(outcome) is StepFailed:
            error, decline, details = outcome.error_code, outcome.decline_code, outcome.failure_details
        else:
            error, decline, details = ErrorCode.UNKNOWN, None, None
        return Result(
            planned.index,
            planned.method,
            last.processor_id,
            False,
            0,
            latency,
            count,
            error,
            decline_code=decline,
            failure_details=details,
        )


def interrupted(events: Sequence[DomainEvent]) -> bool:
    """Whether these events (one payment's, in order) stop before the payment ended."""
    accepted = any(type(event) is PaymentReceived and event.accepted for event in events)
    return accepted and not any(isinstance(event, TERMINAL) for event in events)


def _steps_of(events: Sequence[DomainEvent]) -> dict[int, _Step]:
    steps: dict[int, _Step] = {}
    for event in events:
        if type(event) is StepAttempted:
            steps.setdefault(event.step_index, _Step()).attempts.append(event)
        elif type(event) is StepSucceeded or type(event) is StepFailed:
            step = steps.setdefault(event.step_index, _Step())
            step.outcomes[event.attempt] = event
            if type(event) is StepSucceeded:
                step.held[event.processor_id] = event.amount
        elif type(event) is CompensationIssued and event.succeeded:
            step = steps.setdefault(event.step_index, _Step())
            amount = step.held.pop(event.processor_id, None)
            if amount is not None:
                step.undone[event.processor_id] = amount
    return steps


async def recover_payment(
    events: Sequence[DomainEvent],
    *,
    service: CompositePaymentService,
    processors: Mapping[ProcessorId, Processor],
    merchant: MerchantConfig,
    sink: EventSink,
    clock: Clock,
    observer: Observer = NULL_OBSERVER,
) -> Recovered:
    """Settle and finish one interrupted payment (see the module text); ``observer`` sees a span
    per status query."""
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
    recorded_policy = None if planned is None else planned.partial_policy
    plan = PaymentPlan(
        payment_id=ctx.payment_id,
        request_id=ctx.request_id,
        merchant_id=ctx.merchant_id,
        total_amount_cents=ctx.amount_cents,
        currency=ctx.currency,
        steps=tuple(PaymentStep(s.index, s.method, s.amount_cents, s.processor_ids) for s in steps),
        partial_policy=merchant.partial_policy if recorded_policy is None else recorded_policy,
    )
    recorded = _steps_of(events)
    answers = await _ask(ctx, recorded, processors, merchant, clock, observer)
    strays = _strays(ctx, recorded, answers)
    for outcome in _outcomes(ctx, recorded, answers, strays, clock):
        recorded[outcome.step_index].outcomes[outcome.attempt] = outcome
        if type(outcome) is StepSucceeded:
            recorded[outcome.step_index].held[outcome.processor_id] = outcome.amount
        await sink.emit(outcome)
    for stray in strays.values():
        await service.undo_stray(ctx, stray)
    for step_index, step in recorded.items():
        for processor_id, amount in list(step.held.items())[1:]:
            await service.undo_charge(ctx, step_index, processor_id, amount)
            del step.held[processor_id]
    # A plan that does not cover the total never runs (nothing was attempted): no step fails.
    results = [] if plan.coverage_shortfall_cents else _results(plan, recorded)
    for stated in results:
        if not stated.attempts and 0 not in recorded.get(stated.step_index, _Step()).outcomes:
            # The crash came before the step began: it fails without an attempt, and the log says
            # so as it does for a step skipped for open circuits.
            await sink.emit(_not_begun(ctx, stated, clock))
    result = await service.finish(ctx, plan, results)
    return Recovered(result, len(answers), ctx.idempotency_key)


async def _ask(
    ctx: CoreRequestContext,
    recorded: Mapping[int, _Step],
    processors: Mapping[ProcessorId, Processor],
    merchant: MerchantConfig,
    clock: Clock,
    observer: Observer,
) -> dict[tuple[int, ProcessorId], StatusAnswer]:
    """What each attempted processor holding no recorded success holds for the step's key; every
    one must answer (within the merchant's attempts) before anything is recorded."""
    timeout_s = merchant.timeout_ms / 1000
    answers: dict[tuple[int, ProcessorId], StatusAnswer] = {}
    for step_index, step in recorded.items():
        for processor_id in step.processors():
            if processor_id in step.held:
                continue
            processor = processors.get(processor_id)
            if processor is None:
                raise Unsettled(f"payment {ctx.payment_id}: processor {processor_id} is not configured")
            last = step.last_attempt_at(processor_id)
            for query in range(1, merchant.retry.max_attempts + 1):
                attributes: dict[str, str | int] = {
                    STEP_INDEX: step_index,
                    PROCESSOR: processor_id,
                    ATTEMPT: last.attempt,
                    QUERY: query,
                }
                with observer.span(STATUS_QUERY_SPAN, attributes):
                    answer, _ = await guarded_status(processor, last.idempotency_key, timeout_s, clock)
                    settlement = answer.settlement
                    # An answer, whatever it holds, is a query that succeeded; none is an ERROR span.
                    attributes[SETTLEMENT] = settlement.value
                    attributes[OUTCOME] = (
                        SUCCEEDED if settlement is not Settlement.UNKNOWN else settlement.value
                    )
                if answer.settlement is not Settlement.UNKNOWN:
                    break
            if answer.settlement is Settlement.UNKNOWN:
                raise Unsettled(f"payment {ctx.payment_id}: {processor_id} cannot say what it holds")
            answers[step_index, processor_id] = answer
    return answers


def _strays(
    ctx: CoreRequestContext,
    recorded: Mapping[int, _Step],
    answers: Mapping[tuple[int, ProcessorId], StatusAnswer],
) -> dict[tuple[int, ProcessorId], StrayCharge]:
    """The charges found that are not what their step's last attempt there asked for."""
    strays: dict[tuple[int, ProcessorId], StrayCharge] = {}
    for (step_index, processor_id), answer in answers.items():
        if answer.settlement is not Settlement.CHARGED:
            continue
        asked = recorded[step_index].last_attempt_at(processor_id).amount_cents
        held = (answer.amount_cents, answer.currency)
        stray = stray_charge(step_index, processor_id, held, (asked, ctx.currency))
        if stray is not None:
            strays[step_index, processor_id] = stray
    return strays


def _outcomes(
    ctx: CoreRequestContext,
    recorded: Mapping[int, _Step],
    answers: Mapping[tuple[int, ProcessorId], StatusAnswer],
    strays: Mapping[tuple[int, ProcessorId], StrayCharge],
    clock: Clock,
) -> list[StepSucceeded | StepFailed]:
    """The outcome events the settlement adds, in the order of the attempts they belong to."""
    found: list[StepSucceeded | StepFailed] = []
    for (step_index, processor_id), answer in answers.items():
        step = recorded[step_index]
        last = step.last_attempt_at(processor_id)
        stray = (step_index, processor_id) in strays
        for attempt in step.attempts:
            if attempt.processor_id != processor_id:
                continue
            earlier = step.outcomes.get(attempt.attempt)
            if answer.settlement is Settlement.CHARGED and attempt is last and not stray:
                # The charge's own latency when its failure was recorded (as the router records a
                # timeout its status query finds charged), else the status query's.
                latency = answer.latency_ms if earlier is None else earlier.latency_ms
                found.append(_succeeded(ctx, attempt, latency, attempt.amount_cents, clock))
            elif earlier is None:
                error = MALFORMED_CHARGE if stray and attempt is last else CUT_OFF
                found.append(_cut_off(ctx, attempt, answer.latency_ms, clock, error))
    found.sort(key=lambda outcome: (outcome.step_index, outcome.attempt))
    return found


def _succeeded(
    ctx: CoreRequestContext, attempt: StepAttempted, latency_ms: int, amount: int, clock: Clock
) -> StepSucceeded:
    return StepSucceeded(
        payment_id=ctx.payment_id,
        request_id=ctx.request_id,
        merchant_id=ctx.merchant_id,
        timestamp=clock.now(),
        step_index=attempt.step_index,
        processor_id=attempt.processor_id,
        latency_ms=latency_ms,
        amount=amount,
        attempt=attempt.attempt,
    )


def _cut_off(
    ctx: CoreRequestContext, attempt: StepAttempted, latency_ms: int, clock: Clock, error: ErrorCode
) -> StepFailed:
    return _failed(ctx, attempt.step_index, attempt.processor_id, error, latency_ms, attempt.attempt, clock)


def _not_begun(ctx: CoreRequestContext, step: Result, clock: Clock) -> StepFailed:
    return _failed(ctx, step.step_index, step.processor_id, step.error_code or CUT_OFF, 0, 0, clock)


def _failed(
    ctx: CoreRequestContext,
    step_index: int,
    processor_id: ProcessorId,
    error: ErrorCode,
    latency_ms: int,
    attempt: int,
    clock: Clock,
) -> StepFailed:
    return StepFailed(
        payment_id=ctx.payment_id,
        request_id=ctx.request_id,
        merchant_id=ctx.merchant_id,
        timestamp=clock.now(),
        step_index=step_index,
        processor_id=processor_id,
        error_code=error,
        latency_ms=latency_ms,
        attempt=attempt,
        retryable=error.retryable,
    )


def _results(plan: PaymentPlan, recorded: Mapping[int, _Step]) -> list[Result]:
    """Each step's result as its events say, in plan order, up to the first that holds no charge."""
    results: list[Result] = []
    for planned in plan.steps:
        result = recorded.get(planned.index, _Step()).result(planned)
        results.append(result)
        if not result.success:
            break
    return results
