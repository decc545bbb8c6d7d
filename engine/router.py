"""Router: runs one plan step against its processors until it is charged or cannot be.

For each processor of the step's fallback chain (skipping those whose circuit is open), up to
``retry.max_attempts`` attempts with the step's stable idempotency key:

* ``StepAttempted`` is emitted (and awaited) before every charge is sent: intent before effect.
* An unknown outcome (timeout, malformed answer, adapter panic) is settled with ``status``
  before anything else. Charged: the step succeeded. It stays in doubt until ``status`` or an
  answer for the same key settles it (an attempt that never reached the processor settles
  nothing); still in doubt after the last attempt, the step fails *without* cascading and is
  reported unsettled, so it is never charged at two processors.
* ``RETRY_SAME`` errors are retried at the same processor after a full-jitter backoff, unless
  its circuit opened meanwhile (then the step moves on, unless an attempt is still in doubt);
  ``CASCADE`` errors, and ``RETRY_SAME`` errors once attempts run out or when the processor says
  a repeat with the key would get the same answer (``final_for_key``), move to the next
  processor; ``NEVER`` errors stop the step.
* A charge that is not the one asked for (another amount or currency, in the charge's answer or
  found by ``status``) never counts: ``processor/malformed`` is recorded and the step fails at
  once, without retrying (the same key would find the same charge) or cascading (it is not
  undone yet). The step reports it as a :class:`~engine.guard.StrayCharge` for the orchestrator
  to void in full.

Each attempt passes two circuits (:class:`~engine.circuit_breaker.CircuitPair`): the processor's,
shared by every merchant, and the merchant's own for it, which alone counts the timeouts of a
budget shorter than the processor's ``breaker.min_timeout_ms``: one merchant's short
``timeout_ms`` skips the processor for that merchant, never for the others (and a step's
``router/retry-exhausted`` names a processor so skipped as the merchant's own circuit's: no metric
shows that circuit).

Every failed attempt emits ``StepFailed``. A step whose every processor is skipped (circuit open
or not configured) sends nothing and fails ``processor_unavailable`` with 0 attempts; it emits one
``StepFailed`` with attempt 0 and no latency, so that the events tell what the result does. It is
emitted outside any attempt's span: no charge attempt was made, and none is counted.

A ``declined`` or ``invalid_card`` answer's reason is its ``StepFailed``'s ``decline_code``, and
the step's when the step ends on that answer; it is kept only from the closed set of
:mod:`engine.decline_codes` (a reason outside it is ``generic_decline``). What the processor
itself said of a refusal (``ProcessorResponse.failure_details``: Stripe's code, parameter and
message) travels the same way, to the ``StepFailed`` and the step's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from engine.backoff import backoff_seconds
from engine.circuit_breaker import CircuitBreakers, CircuitPair
from engine.config import MerchantConfig
from engine.context import CoreRequestContext
from engine.contracts import ContractRegistry
from engine.decline_codes import DeclineCode, decline_code_for
from engine.error_codes import ErrorCode, RetryClass
from engine.events import StepAttempted, StepFailed, StepSucceeded
from engine.failure_details import FailureDetails
from engine.guard import (
    MALFORMED,
    TIMEOUT,
    Misbehaviour,
    StrayCharge,
    guarded_charge,
    guarded_status,
    stray_charge,
)
from engine.money import Money
from engine.monitor import ContractMonitor
from engine.observer import (
    AMOUNT,
    ATTEMPT,
    ATTEMPT_SPAN,
    METHOD,
    NULL_OBSERVER,
    PROCESSOR,
    STEP_INDEX,
    STEP_SPAN,
    Observer,
    SpanAttributes,
)
from engine.plan import PaymentStep, step_idempotency_key
from engine.ports import Clock, EventSink, RandomSource, Sleeper
from engine.processor import ChargeRequest, Processor, Settlement
from engine.results import Result
from engine.types import ProcessorId
from engine.unchecked import unchecked

RETRY_EXHAUSTED = "router/retry-exhausted"

#: Failures that say the attempt never reached the processor: they settle nothing about earlier
#: attempts with the same key.
_NOT_REACHED = frozenset({ErrorCode.NETWORK_FAILURE, ErrorCode.PROCESSOR_UNAVAILABLE, ErrorCode.RATE_LIMITED})


class RoutedStep(NamedTuple):
    """A step's result, plus the processors where an attempt's outcome is still unknown and the
    charges found that were not the ones asked for (both to be voided).

    A named tuple, like ``_AtProcessor``: one is built per step, in one call."""

    result: Result
    unsettled: tuple[ProcessorId, ...] = ()
    strays: tuple[StrayCharge, ...] = ()


#: How a processor skipped for the merchant alone is named in ``router/retry-exhausted``.
_OWN_CIRCUIT = (
    "(this merchant's own circuit: its timeout_ms ran out there in a row, "
    "shorter than the processor's breaker.min_timeout_ms)"
)


class _AtProcessor(NamedTuple):
    """What happened at one processor of the chain.

    A named tuple, not a dataclass: one is built per step, and a tuple is built in one call where
    a slotted dataclass has each of its eight fields set in turn (even by engine.unchecked)."""

    charged: bool
    attempts: int
    latency_ms: int
    error: ErrorCode | None = None
    unsettled: bool = False
    stray: StrayCharge | None = None
    decline_code: DeclineCode | None = None
    details: FailureDetails | None = None


class _Reason(NamedTuple):
    """Why the last attempt at a processor failed, in the processor's words."""

    decline_code: DeclineCode | None
    details: FailureDetails | None


_NO_REASON = _Reason(None, None)


# The router builds these from checked values only (the context, the step, the processor's
# checked answer): see engine.unchecked.
_attempted = unchecked(StepAttempted)
_failed = unchecked(StepFailed)
_succeeded = unchecked(StepSucceeded)
_charge_request = unchecked(ChargeRequest)
_result = unchecked(Result)


class Router:
    """Routes steps; one instance serves every payment of a process (it owns the breakers)."""

    __slots__ = (
        "_breakers",
        "_circuit_pairs",
        "_clock",
        "_monitor",
        "_observer",
        "_processors",
        "_random",
        "_sink",
        "_sleeper",
    )

    def __init__(
        self,
        processors: Mapping[ProcessorId, Processor],
        sink: EventSink,
        clock: Clock,
        sleeper: Sleeper,
        random: RandomSource,
        breakers: CircuitBreakers | None = None,
        registry: ContractRegistry | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._processors = processors
        self._observer = observer
        self._sink = sink
        self._clock = clock
        self._sleeper = sleeper
        self._random = random
        self._breakers = breakers or CircuitBreakers()
        self._monitor = ContractMonitor(sink, clock, registry)
        #: Each merchant's pair of circuits per processor, made once (a pair holds no state).
        self._circuit_pairs: dict[tuple[ProcessorId, str, int], CircuitPair] = {}

    @property
    def breakers(self) -> CircuitBreakers:
        return self._breakers

    async def route(self, ctx: CoreRequestContext, step: PaymentStep, merchant: MerchantConfig) -> Result:
        """The step's result after its retries and fallbacks."""
        return (await self.route_step(ctx, step, merchant)).result

    async def route_step(
        self, ctx: CoreRequestContext, step: PaymentStep, merchant: MerchantConfig
    ) -> RoutedStep:
        """The step's result, its processors left in doubt and the stray charges found, inside the
        step's span (one coroutine: each awaited layer is a frame on every step)."""
        attributes: SpanAttributes = {
            STEP_INDEX: step.index,
            METHOD: str(step.method),  # its value: str() of a StrEnum runs no Python frame
            AMOUNT: step.amount_cents,
        }
        with self._observer.span(STEP_SPAN, attributes):
            request = _charge_request(
                payment_id=ctx.payment_id,
                step_index=step.index,
                idempotency_key=step_idempotency_key(ctx.payment_id, step.index),
                amount_cents=step.amount_cents,
                currency=ctx.currency,
                method=step.method,
                metadata=ctx.metadata,
            )
            attempts = latency = 0
            error = ErrorCode.PROCESSOR_UNAVAILABLE
            decline: DeclineCode | None = None
            details: FailureDetails | None = None
            last = step.processor_id
            skipped: list[str] = []
            for processor_id in step.processor_ids:
                processor = self._processors.get(processor_id)
                circuits = self._circuits(processor_id, merchant)
                refusing = None if processor is None else circuits.refusing(self._clock.monotonic())
                if processor is None or refusing is not None:
                    # The merchant's own circuit is in no metric: the skip says so, or the violation
                    # ("circuit open") and payorch_circuit_state (closed) disagree.
                    own = refusing is not None and refusing is circuits.own
                    skipped.append(f"{processor_id} {_OWN_CIRCUIT}" if own else processor_id)
                    continue
                last = processor_id
                try:
                    at = await self._at_processor(ctx, request, processor, circuits, merchant, attempts)
                except BaseException:
                    circuits.abandon()
                    raise
                attempts += at.attempts
                latency += at.latency_ms
                if at.charged:
                    return RoutedStep(self._result(step, processor_id, attempts, latency, None))
                error = at.error or ErrorCode.UNKNOWN
                decline, details = at.decline_code, at.details
                if at.stray is not None:
                    result = self._result(step, processor_id, attempts, latency, error)
                    return RoutedStep(result, strays=(at.stray,))
                if at.unsettled:
                    result = self._result(step, processor_id, attempts, latency, error)
                    await self._monitor.violated(
                        ctx, RETRY_EXHAUSTED, f"step {step.index} unsettled at {processor_id}: {error}"
                    )
                    return RoutedStep(result, (processor_id,))
                if error.retry_class is RetryClass.NEVER:
                    return RoutedStep(
                        self._result(step, processor_id, attempts, latency, error, decline, details)
                    )
            if not attempts:
                await self._sink.emit(
                    _failed(
                        payment_id=ctx.payment_id,
                        request_id=ctx.request_id,
                        merchant_id=ctx.merchant_id,
                        timestamp=self._clock.now(),
                        step_index=step.index,
                        processor_id=last,
                        error_code=error,
                        retryable=error.retryable,
                        latency_ms=0,
                        attempt=0,
                    )
                )
            if error.retryable:
                detail = (
                    f"; skipped (circuit open or not configured): {', '.join(skipped)}" if skipped else ""
                )
                message = f"step {step.index} failed after {attempts} attempts, last error {error}{detail}"
                await self._monitor.violated(ctx, RETRY_EXHAUSTED, message)
            return RoutedStep(self._result(step, last, attempts, latency, error, decline, details))

    async def _at_processor(
        self,
        ctx: CoreRequestContext,
        request: ChargeRequest,
        processor: Processor,
        circuits: CircuitPair,
        merchant: MerchantConfig,
        earlier_attempts: int,
    ) -> _AtProcessor:
        timeout_s = merchant.timeout_ms / 1000
        latency = 0
        unsettled = False
        error: ErrorCode | None = None
        reason = _NO_REASON
        doubt: ErrorCode | None = None
        processor_id = processor.processor_id
        for attempt in range(1, merchant.retry.max_attempts + 1):
            if attempt > 1 and not await self._back_off(attempt - 1, merchant, circuits, unsettled):
                # Its circuit opened during the backoff; nothing is in doubt here: move on.
                return _AtProcessor(
                    False,
                    attempt - 1,
                    latency,
                    error,
                    decline_code=reason.decline_code,
                    details=reason.details,
                )
            number = earlier_attempts + attempt
            attributes: SpanAttributes = {
                STEP_INDEX: request.step_index,
                PROCESSOR: processor_id,
                METHOD: str(request.method),
                ATTEMPT: number,
            }
            with self._observer.span(ATTEMPT_SPAN, attributes):
                await self._sink.emit(
                    _attempted(
                        payment_id=ctx.payment_id,
                        request_id=ctx.request_id,
                        merchant_id=ctx.merchant_id,
                        timestamp=self._clock.now(),
                        step_index=request.step_index,
                        processor_id=processor_id,
                        attempt=number,
                        method=request.method,
                        amount_cents=request.amount_cents,
                        idempotency_key=request.idempotency_key,
                    )
                )
                sent = circuits.sent()  # its answer counts in the order it was sent
                response, problem = await guarded_charge(processor, request, timeout_s, self._clock)
                latency += response.latency_ms
                if problem is not None:
                    await self._misbehaved(ctx, problem)
                if response.success:
                    circuits.record_success(sent)
                    await self._sink.emit(
                        self._succeeded(ctx, request, processor_id, response.latency_ms, number)
                    )
                    return _AtProcessor(True, attempt, latency)
                error = response.error_code or ErrorCode.UNKNOWN
                # The processor's reason, kept only from the closed set (engine.decline_codes).
                reason = _Reason(decline_code_for(error, response.decline_code), response.failure_details)
                if error.is_processor_fault:
                    circuits.record_failure(self._clock.monotonic(), sent, budget_expired=_expired(problem))
                else:
                    circuits.record_neutral(sent)
                await self._sink.emit(
                    _failed(
                        payment_id=ctx.payment_id,
                        request_id=ctx.request_id,
                        merchant_id=ctx.merchant_id,
                        timestamp=self._clock.now(),
                        step_index=request.step_index,
                        processor_id=processor_id,
                        error_code=error,
                        retryable=error.retryable,
                        latency_ms=response.latency_ms,
                        attempt=number,
                        decline_code=reason.decline_code,
                        failure_details=reason.details,
                    )
                )
                if problem is not None and problem.stray is not None:
                    return _AtProcessor(False, attempt, latency, error, stray=problem.stray)
                if error not in _NOT_REACHED:
                    unsettled = False  # the processor answered for the key: nothing is in doubt any more
                if error.outcome_unknown:
                    answer, problem = await guarded_status(
                        processor, request.idempotency_key, timeout_s, self._clock
                    )
                    latency += answer.latency_ms
                    if problem is not None:
                        await self._misbehaved(ctx, problem)
                    if answer.settlement is Settlement.CHARGED:
                        held = (answer.amount_cents, answer.currency)
                        asked = (request.amount_cents, request.currency)
                        stray = stray_charge(request.step_index, processor_id, held, asked)
                        if stray is not None:
                            await self._monitor.violated(ctx, MALFORMED, _found_stray(stray, request))
                            return _AtProcessor(False, attempt, latency, error, stray=stray)
                        await self._sink.emit(
                            self._succeeded(ctx, request, processor_id, response.latency_ms, number)
                        )
                        return _AtProcessor(True, attempt, latency)
                    unsettled = answer.settlement is Settlement.UNKNOWN
                    if unsettled:
                        doubt = error
                if unsettled and error.retry_class is RetryClass.CASCADE:
                    continue  # an earlier attempt is still in doubt: stay here, retry with the same key
                if error.retry_class is not RetryClass.RETRY_SAME or response.final_for_key:
                    break  # (a repeat with the key would only be answered the same: move on)
        # A step left in doubt reports the error that put it there, not a later one.
        if unsettled:
            return _AtProcessor(False, attempt, latency, doubt, unsettled)
        return _AtProcessor(
            False,
            attempt,
            latency,
            error,
            unsettled,
            decline_code=reason.decline_code,
            details=reason.details,
        )

    async def _back_off(
        self, retry_number: int, merchant: MerchantConfig, circuits: CircuitPair, in_doubt: bool
    ) -> bool:
        """Wait before retry ``retry_number``; whether it may still be sent. Not to a processor whose
        circuit opened meanwhile (the faults of the payments in flight open it): retries must not
        add to the load on a sick processor. An attempt in doubt there is still retried: only that
        processor can settle it."""
        await self._sleeper.sleep(backoff_seconds(retry_number, merchant.retry, self._random))
        return in_doubt or circuits.allow(self._clock.monotonic())

    def _circuits(self, processor_id: ProcessorId, merchant: MerchantConfig) -> CircuitPair:
        """The circuits ``merchant``'s attempts at ``processor_id`` pass: the processor's, and the
        merchant's own, which alone counts the timeouts of a budget too short for the shared one."""
        key = (processor_id, merchant.merchant_id, merchant.timeout_ms)
        pair = self._circuit_pairs.get(key)
        if pair is None:
            counts = self._breakers.policy(processor_id).counts_timeout(merchant.timeout_ms)
            own = None if counts else self._breakers.merchant_circuit(processor_id, merchant.merchant_id)
            pair = CircuitPair(self._breakers[processor_id], own)
            self._circuit_pairs[key] = pair
        return pair

    def _succeeded(
        self,
        ctx: CoreRequestContext,
        request: ChargeRequest,
        processor_id: ProcessorId,
        latency_ms: int,
        number: int,
    ) -> StepSucceeded:
        return _succeeded(
            payment_id=ctx.payment_id,
            request_id=ctx.request_id,
            merchant_id=ctx.merchant_id,
            timestamp=self._clock.now(),
            step_index=request.step_index,
            processor_id=processor_id,
            latency_ms=latency_ms,
            amount=request.amount_cents,
            attempt=number,
        )

    @staticmethod
    def _result(
        step: PaymentStep,
        processor_id: ProcessorId,
        attempts: int,
        latency_ms: int,
        error: ErrorCode | None,
        decline_code: DeclineCode | None = None,
        details: FailureDetails | None = None,
    ) -> Result:
        return _result(
            step_index=step.index,
            method=step.method,
            processor_id=processor_id,
            success=error is None,
            amount_processed=step.amount_cents if error is None else 0,
            latency_ms=latency_ms,
            attempts=attempts,
            error_code=error,
            compensated=False,
            decline_code=decline_code,
            failure_details=details,
        )

    async def _misbehaved(self, ctx: CoreRequestContext, problem: Misbehaviour) -> None:
        await self._monitor.violated(ctx, problem.contract_id, problem.message)


def _expired(problem: Misbehaviour | None) -> bool:
    """Whether an attempt failed because the merchant's budget ran out (the guard's timeout), not
    on an answer of the processor's (a processor may itself answer ``timeout``)."""
    return problem is not None and problem.contract_id == TIMEOUT


def _found_stray(stray: StrayCharge, request: ChargeRequest) -> str:
    return (
        f"status at {stray.processor_id} found {stray.describe()} charged for a request of "
        f"{Money(request.amount_cents, request.currency)}; it does not count and is voided in full"
    )
