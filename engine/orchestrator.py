"""CompositePaymentService: runs a plan's steps in order and ends every payment in one terminal state.

Invariants (checked by property tests): ``total_processed`` is the sum of successful,
uncompensated steps; ``remaining_amount == total_amount - total_processed``; no step charges more
than its amount; nothing is charged beyond the total; exactly one of ``PaymentCompleted`` and
``PaymentFailed`` is emitted per payment.

When a step fails, ``all_or_nothing`` voids or refunds the successful steps in reverse order
(``CompensationIssued``); ``allow_partial`` keeps them and reports ``partially_succeeded``. An
attempt whose outcome stayed unknown, and a charge that was not the one asked for (a
:class:`~engine.guard.StrayCharge`), are voided in either case, in full (all their key holds), so
nothing stays charged unseen. A compensation that fails is a critical violation and the step
stays charged in the result; so does an attempt in doubt whose void fails and that the processor
then says holds the step's charge (``StepSucceeded``): it counts in ``total_processed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from engine.backoff import backoff_seconds
from engine.config import MerchantConfig, PlatformConfig, ProcessorConfig
from engine.context import CoreRequestContext
from engine.contracts import ContractRegistry
from engine.error_codes import ErrorCode
from engine.errors import PlanInvariantError
from engine.events import (
    CompensationIssued,
    EventIds,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepSucceeded,
    event_ids,
)
from engine.guard import MALFORMED, StrayCharge, guarded_refund, guarded_status, stray_charge
from engine.methods import PartialPolicy
from engine.money import MAX_MINOR_UNITS
from engine.monitor import ContractMonitor
from engine.observer import (
    AMOUNT,
    COMPENSATION_SPAN,
    NULL_OBSERVER,
    PLAN_SPAN,
    PROCESSOR,
    STEP_INDEX,
    STEPS,
    Observer,
    SpanAttributes,
)
from engine.plan import PaymentPlan, PaymentStep, processor_idempotency_key
from engine.plan_builder import AmountCheck, build_plan
from engine.policy import PaymentPolicyEnforcer
from engine.ports import Clock, EventSink, RandomSource, Sleeper
from engine.processor import Processor, RefundRequest, Settlement, StatusAnswer
from engine.results import CompositeResult, PaymentStatus, Result
from engine.router import Router
from engine.types import ProcessorId
from engine.unchecked import unchecked

COVERAGE = "plan/coverage"
SUM = "orchestrator/sum"
COMPENSATION_FAILED = "orchestrator/compensation-failed"


# Built from checked values only (the context, the plan, the router's results): see engine.unchecked.
_received = unchecked(PaymentReceived)
_plan_built = unchecked(PlanBuilt)
_planned_step = unchecked(PlannedStep)
_completed = unchecked(PaymentCompleted)
_composite_result = unchecked(CompositeResult)


@dataclass(frozen=True, slots=True)
class _Undo:
    """How a void or refund ended: ``undone``, or not, and then ``held`` when the processor's
    status says the key still holds a charge (what it holds)."""

    undone: bool
    held: StatusAnswer | None = None


def _sum_breaks(plan: PaymentPlan, results: list[Result]) -> list[str]:
    """Steps that processed neither nothing nor exactly their planned amount."""
    return [
        f"step {result.step_index} processed {result.amount_processed} of a planned {planned}"
        for result in results
        if result.amount_processed not in (0, planned := plan.steps[result.step_index].amount_cents)
    ]


class CompositePaymentService:
    """The orchestrator. One instance per process, wired in the composition root."""

    __slots__ = (
        "_amount_checks",
        "_clock",
        "_config",
        "_merchants",
        "_monitor",
        "_observer",
        "_policy",
        "_processor_configs",
        "_processors",
        "_random",
        "_router",
        "_sink",
        "_sleeper",
    )

    def __init__(
        self,
        config: PlatformConfig,
        processors: Mapping[ProcessorId, Processor],
        router: Router,
        sink: EventSink,
        clock: Clock,
        sleeper: Sleeper,
        random: RandomSource,
        registry: ContractRegistry | None = None,
        observer: Observer = NULL_OBSERVER,
        amount_checks: Mapping[ProcessorId, AmountCheck] | None = None,
    ) -> None:
        self._observer = observer
        self._amount_checks = amount_checks or {}
        self._config = config
        self._merchants: Mapping[str, MerchantConfig] = {m.merchant_id: m for m in config.merchants}
        self._processors = processors
        self._processor_configs: Mapping[ProcessorId, ProcessorConfig] = {p.id: p for p in config.processors}
        self._router = router
        self._sink = sink
        self._clock = clock
        self._sleeper = sleeper
        self._random = random
        self._monitor = ContractMonitor(sink, clock, registry)
        self._policy = PaymentPolicyEnforcer(config, self._amount_checks)

    def _merchant(self, ctx: CoreRequestContext) -> MerchantConfig:
        merchant = self._merchants.get(ctx.merchant_id)
        return merchant if merchant is not None else self._config.merchant(ctx.merchant_id)

    async def pay(self, ctx: CoreRequestContext) -> CompositeResult:
        """Record the request, check the merchant's policy, build the plan and execute it.

        The merchant's latency objective is not checked here: what a merchant waits for is the
        answer, which also holds the parsing before and the commit after (``ingest.api.payments``)."""
        merchant = self._merchant(ctx)
        await self._sink.emit(
            _received(
                payment_id=ctx.payment_id,
                request_id=ctx.request_id,
                merchant_id=ctx.merchant_id,
                timestamp=self._clock.now(),
                accepted=True,
                amount_cents=ctx.amount_cents,
                currency=ctx.currency,
                method=ctx.payment_method,
                idempotency_key=ctx.idempotency_key,
                validation_issues=ctx.validation_errors,
            )
        )
        decision = self._policy.check(ctx, merchant)
        if not decision.allowed:
            await self._failed(ctx, ErrorCode.POLICY_REJECTED, 0)
            return self._composite(ctx, PaymentStatus.FAILED, (), ErrorCode.POLICY_REJECTED)
        routing = self._policy.routing(merchant, ctx.payment_method, ctx.currency)
        plan = build_plan(ctx, merchant, self._processor_configs, self._amount_checks, routing)
        return await self.execute(ctx, plan)

    async def execute(self, ctx: CoreRequestContext, plan: PaymentPlan) -> CompositeResult:
        """Run ``plan`` for ``ctx``; a plan that does not cover the total charges nothing."""
        belongs = (plan.payment_id, plan.request_id, plan.merchant_id, plan.total_amount_cents, plan.currency)
        if belongs != (ctx.payment_id, ctx.request_id, ctx.merchant_id, ctx.amount_cents, ctx.currency):
            raise PlanInvariantError(
                "plan.payment_id", plan.payment_id, f"is not the plan of payment {ctx.payment_id}"
            )
        merchant = self._merchant(ctx)
        with self._observer.span(PLAN_SPAN, {AMOUNT: plan.total_amount_cents, STEPS: len(plan.steps)}):
            failed = await self._record_plan(ctx, plan)
        if failed is not None:
            return failed
        results: list[Result] = []
        unsettled: list[tuple[PaymentStep, ProcessorId]] = []
        strays: list[StrayCharge] = []
        for step in plan.steps:
            routed = await self._router.route_step(ctx, step, merchant)
            results.append(routed.result)
            if routed.unsettled:
                unsettled.extend((step, processor) for processor in routed.unsettled)
            strays.extend(routed.strays)
            if not routed.result.success:
                break
        for message in _sum_breaks(plan, results):
            await self._monitor.violated(ctx, SUM, message)
        # The steps stop at the first failure, so they all succeeded when the last one ran and did.
        if len(results) == len(plan.steps) and results[-1].success:
            await self._sink.emit(
                _completed(
                    payment_id=ctx.payment_id,
                    request_id=ctx.request_id,
                    merchant_id=ctx.merchant_id,
                    timestamp=self._clock.now(),
                    total_amount=plan.total_amount_cents,
                    total_processed=plan.total_amount_cents,
                    status=PaymentStatus.SUCCEEDED,
                )
            )
            return self._composite(ctx, PaymentStatus.SUCCEEDED, tuple(results), None)
        return await self._after_failure(ctx, plan, merchant, results, unsettled, strays)

    async def _record_plan(self, ctx: CoreRequestContext, plan: PaymentPlan) -> CompositeResult | None:
        """Record ``PlanBuilt``; a plan that does not cover the total fails the payment here."""
        shortfall = plan.coverage_shortfall_cents
        await self._sink.emit(
            _plan_built(
                payment_id=ctx.payment_id,
                request_id=ctx.request_id,
                merchant_id=ctx.merchant_id,
                timestamp=self._clock.now(),
                total_amount_cents=plan.total_amount_cents,
                currency=plan.currency,
                # From a list, not a generator: one frame for the steps, not one resumed per step.
                steps=tuple(
                    [
                        _planned_step(
                            index=s.index,
                            method=s.method,
                            amount_cents=s.amount_cents,
                            processor_ids=s.processor_ids,
                        )
                        for s in plan.steps
                    ]
                ),
                coverage_shortfall_cents=shortfall,
                partial_policy=plan.partial_policy,
            )
        )
        if shortfall:
            message = (
                f"routing covers {plan.planned_amount_cents} of {plan.total_amount_cents}; nothing charged"
            )
            await self._monitor.violated(ctx, COVERAGE, message)
            await self._failed(ctx, ErrorCode.COVERAGE_SHORTFALL, 0)
            return self._composite(ctx, PaymentStatus.FAILED, (), ErrorCode.COVERAGE_SHORTFALL)
        return None

    async def finish(
        self, ctx: CoreRequestContext, plan: PaymentPlan, results: Sequence[Result]
    ) -> CompositeResult:
        """Finish a payment a crash cut short, as its policy says (see ``engine.recovery``).

        ``results`` holds each step's result as its events say once its attempts were settled
        after the restart, in plan order, up to the first step that holds no charge. That step is
        not tried again: the merchant's request is long gone, and nothing starts charging again
        after a crash. So the payment succeeds when every step holds its charge; else it keeps
        what is charged under ``allow_partial``, or voids or refunds every charge still held (in
        reverse order) and fails. A plan that does not cover the total never ran: it fails
        ``coverage_shortfall`` with no step, as it did before the crash.
        """
        merchant = self._merchant(ctx)
        settled = list(results)
        if plan.coverage_shortfall_cents:  # a plan that never runs: the crash came before its end
            await self._failed(ctx, ErrorCode.COVERAGE_SHORTFALL, 0)
            return self._composite(ctx, PaymentStatus.FAILED, (), ErrorCode.COVERAGE_SHORTFALL)
        if not settled:  # the crash came before the plan was recorded: nothing was attempted
            await self._failed(ctx, ErrorCode.UNKNOWN, 0)
            return self._composite(ctx, PaymentStatus.FAILED, (), ErrorCode.UNKNOWN)
        if len(settled) == len(plan.steps) and all(r.success and not r.compensated for r in settled):
            return await self._succeeded(ctx, plan, settled)
        return await self._after_failure(ctx, plan, merchant, settled, [], [])

    async def undo_charge(
        self, ctx: CoreRequestContext, step_index: int, processor_id: ProcessorId, amount_cents: int
    ) -> bool:
        """Void or refund one charge of ``ctx``'s payment as compensation does (retries, the
        ``CompensationIssued`` event, a violation when it fails); True once undone."""
        undo = await self._compensate(
            ctx, self._merchant(ctx), step_index, processor_id, amount_cents, unsettled=False
        )
        return undo.undone

    async def undo_stray(self, ctx: CoreRequestContext, stray: StrayCharge) -> bool:
        """Record ``processor/malformed`` for a charge that is not the one asked for and void it
        in full (all its key holds); True once undone."""
        message = (
            f"step {stray.step_index} at {stray.processor_id} holds {stray.describe()}, not what "
            "was asked; it does not count and is voided in full"
        )
        await self._monitor.violated(ctx, MALFORMED, message)
        return await self._void_stray(ctx, self._merchant(ctx), stray)

    async def _void_stray(
        self, ctx: CoreRequestContext, merchant: MerchantConfig, stray: StrayCharge
    ) -> bool:
        undo = await self._compensate(
            ctx,
            merchant,
            stray.step_index,
            stray.processor_id,
            stray.amount_cents,
            unsettled=False,
            whole=True,
        )
        return undo.undone

    async def _after_failure(
        self,
        ctx: CoreRequestContext,
        plan: PaymentPlan,
        merchant: MerchantConfig,
        results: list[Result],
        unsettled: list[tuple[PaymentStep, ProcessorId]],
        strays: list[StrayCharge],
    ) -> CompositeResult:
        final_error = results[-1].error_code or ErrorCode.UNKNOWN
        for stray in strays:
            await self._void_stray(ctx, merchant, stray)
        held: set[int] = set()  # steps found charged after their void failed: not tried again
        for step, processor_id in unsettled:
            # In full: an attempt whose outcome is unknown may hold another amount than the step's.
            undo = await self._compensate(
                ctx, merchant, step.index, processor_id, step.amount_cents, unsettled=True, whole=True
            )
            if undo.held is not None and not undo.undone:
                found, asked = (undo.held.amount_cents, undo.held.currency), (step.amount_cents, ctx.currency)
                if stray_charge(step.index, processor_id, found, asked) is not None:
                    continue  # not the charge asked for: it never counts (the violation says it is held)
                position = next(i for i, r in enumerate(results) if r.step_index == step.index)
                results[position] = await self._found_charged(
                    ctx, results[position], processor_id, step.amount_cents
                )
                held.add(step.index)
        if held and len(results) == len(plan.steps) and all(r.charged_cents for r in results):
            # Every step holds its charge after all (the last one's void failed): the payment is paid.
            return await self._succeeded(ctx, plan, results)
        # What is kept is what is still charged: a step refunded before a crash succeeded, and
        # holds nothing (a payment whose every charge came back has failed, under any policy).
        keep = plan.partial_policy is PartialPolicy.ALLOW_PARTIAL and any(r.charged_cents for r in results)
        if keep:
            processed = sum(result.charged_cents for result in results)
            await self._sink.emit(
                PaymentCompleted.derived(
                    **self._ids(ctx),
                    total_amount=plan.total_amount_cents,
                    total_processed=processed,
                    status=PaymentStatus.PARTIALLY_SUCCEEDED,
                )
            )
            return self._composite(ctx, PaymentStatus.PARTIALLY_SUCCEEDED, tuple(results), final_error)
        for position in range(len(results) - 1, -1, -1):
            result = results[position]
            if result.step_index in held:
                continue  # its void has just failed, after retries: it stays charged
            if result.success and not result.compensated:  # recovery: some may be undone already
                undo = await self._compensate(
                    ctx,
                    merchant,
                    result.step_index,
                    result.processor_id,
                    result.amount_processed,
                    unsettled=False,
                )
                if undo.undone:
                    results[position] = replace(result, compensated=True)
        still_charged = sum(result.charged_cents for result in results)
        await self._failed(ctx, final_error, still_charged, plan.total_amount_cents)
        return self._composite(
            ctx, PaymentStatus.FAILED, tuple(results), final_error, plan.total_amount_cents
        )

    async def _compensate(
        self,
        ctx: CoreRequestContext,
        merchant: MerchantConfig,
        step_index: int,
        processor_id: ProcessorId,
        amount_cents: int,
        *,
        unsettled: bool,
        whole: bool = False,
    ) -> _Undo:
        """Void or refund a step's charge (``amount_cents``, or all its key holds when ``whole``),
        retrying transient failures. When the last try's outcome is unknown (a timeout), or the
        charge itself was in doubt (``unsettled``), the processor's status settles it."""
        attributes: SpanAttributes = {STEP_INDEX: step_index, PROCESSOR: processor_id}
        with self._observer.span(COMPENSATION_SPAN, attributes):
            return await self._undo(
                ctx, merchant, step_index, processor_id, amount_cents, unsettled=unsettled, whole=whole
            )

    async def _undo(
        self,
        ctx: CoreRequestContext,
        merchant: MerchantConfig,
        step_index: int,
        processor_id: ProcessorId,
        amount_cents: int,
        *,
        unsettled: bool,
        whole: bool,
    ) -> _Undo:
        request = RefundRequest(
            payment_id=ctx.payment_id,
            step_index=step_index,
            idempotency_key=processor_idempotency_key(ctx.payment_id, step_index),
            amount_cents=MAX_MINOR_UNITS if whole else amount_cents,
            currency=ctx.currency,
        )
        processor = self._processors.get(processor_id)
        error: ErrorCode = ErrorCode.PROCESSOR_UNAVAILABLE
        in_doubt = False  # an earlier try's answer was lost: it may have undone the charge itself
        for attempt in range(1, merchant.retry.max_attempts + 1):
            if processor is None:
                break
            if attempt > 1:
                await self._sleeper.sleep(backoff_seconds(attempt - 1, merchant.retry, self._random))
            response, problem = await guarded_refund(
                processor, request, merchant.timeout_ms / 1000, self._clock
            )
            if problem is not None:
                await self._monitor.violated(ctx, problem.contract_id, problem.message)
            if response.success:
                # What this void/refund returned, as the processor says: never the amount asked for
                # in its place. 0 means the key holds nothing any more (refunded before, say by a
                # compensation a crash cut short): nothing is held, and nothing was returned now.
                returned = response.amount_cents
                if returned == 0 and (in_doubt or not unsettled):
                    # Nothing left to undo of a charge known to be held: something undid it before,
                    # a try whose answer was lost or a compensation a crash kept from its event.
                    # What the processor says it refunded came back (when it cannot say, what was
                    # asked for; all the key held is not known here).
                    asked = 0 if whole else amount_cents
                    returned = await self._refunded(ctx, merchant, processor, request.idempotency_key, asked)
                if unsettled and returned == 0:
                    return _Undo(True)  # the unknown attempt never charged: nothing to undo or record
                await self._issued(ctx, step_index, processor_id, returned, None)
                return _Undo(True)
            error = response.error_code or ErrorCode.UNKNOWN
            in_doubt = in_doubt or error.outcome_unknown
            if not error.retryable:
                break
        charged = not unsettled  # as far as is known
        held: StatusAnswer | None = None
        if processor is not None and (error.outcome_unknown or unsettled):
            # The last void/refund may have gone through although its answer was lost: ask
            # (ARCHITECTURE.md decision 4), rather than report money that came back as held. A
            # charge in doubt is asked about too: whether it holds money is what the merchant sees.
            answer, problem = await guarded_status(
                processor, request.idempotency_key, merchant.timeout_ms / 1000, self._clock
            )
            if problem is not None:
                await self._monitor.violated(ctx, problem.contract_id, problem.message)
            if answer.settlement is Settlement.NOT_CHARGED and unsettled:
                return _Undo(True)  # as above: never charged
            if answer.settlement is Settlement.REFUNDED:
                await self._issued(ctx, step_index, processor_id, answer.amount_cents, None)
                return _Undo(True)
            charged = answer.settlement is Settlement.CHARGED
            held = answer if charged else None
        await self._issued(ctx, step_index, processor_id, amount_cents, error)
        what = "is still charged" if charged else "may still be charged"
        message = f"step {step_index} {what} at {processor_id}: void/refund failed with {error}"
        await self._monitor.violated(ctx, COMPENSATION_FAILED, message)
        return _Undo(False, held)

    async def _found_charged(
        self, ctx: CoreRequestContext, result: Result, processor_id: ProcessorId, amount: int
    ) -> Result:
        """The step in doubt holds its charge after all (its void failed, and the processor's
        status says so): ``StepSucceeded`` for its last attempt, and the step counts as charged.
        The attempt's latency went with its ``StepFailed``; this records none."""
        await self._sink.emit(
            StepSucceeded.derived(
                **self._ids(ctx),
                step_index=result.step_index,
                processor_id=processor_id,
                latency_ms=0,
                amount=amount,
                attempt=result.attempts,
            )
        )
        return replace(
            result, processor_id=processor_id, success=True, amount_processed=amount, error_code=None
        )

    async def _refunded(
        self, ctx: CoreRequestContext, merchant: MerchantConfig, processor: Processor, key: str, unknown: int
    ) -> int:
        """What ``processor`` says it refunded under ``key``; ``unknown`` when it cannot tell."""
        answer, problem = await guarded_status(processor, key, merchant.timeout_ms / 1000, self._clock)
        if problem is not None:
            await self._monitor.violated(ctx, problem.contract_id, problem.message)
        if answer.settlement is Settlement.UNKNOWN:
            return unknown
        return answer.amount_cents if answer.settlement is Settlement.REFUNDED else 0

    async def _issued(
        self,
        ctx: CoreRequestContext,
        step_index: int,
        processor_id: ProcessorId,
        amount: int,
        error: ErrorCode | None,
    ) -> None:
        """``CompensationIssued`` for a step: undone when ``error`` is None, else failed with it."""
        await self._sink.emit(
            CompensationIssued.derived(
                **self._ids(ctx),
                step_index=step_index,
                processor_id=processor_id,
                amount=amount,
                succeeded=error is None,
                error_code=error,
            )
        )

    def _ids(self, ctx: CoreRequestContext) -> EventIds:
        return event_ids(ctx.payment_id, ctx.request_id, ctx.merchant_id, self._clock.now())

    async def _succeeded(
        self, ctx: CoreRequestContext, plan: PaymentPlan, results: Sequence[Result]
    ) -> CompositeResult:
        """``PaymentCompleted`` (succeeded, the whole amount) and its result, off the hot path (the
        events' checks run: see engine.unchecked)."""
        await self._sink.emit(
            PaymentCompleted.derived(
                **self._ids(ctx),
                total_amount=plan.total_amount_cents,
                total_processed=plan.total_amount_cents,
                status=PaymentStatus.SUCCEEDED,
            )
        )
        return self._composite(ctx, PaymentStatus.SUCCEEDED, tuple(results), None)

    async def _failed(
        self, ctx: CoreRequestContext, error: ErrorCode, still_charged: int, total: int | None = None
    ) -> None:
        await self._sink.emit(
            PaymentFailed.derived(
                **self._ids(ctx),
                total_amount=ctx.amount_cents if total is None else total,
                final_error=error,
                total_processed=still_charged,
            )
        )

    def _composite(
        self,
        ctx: CoreRequestContext,
        status: PaymentStatus,
        results: tuple[Result, ...],
        final_error: ErrorCode | None,
        total: int | None = None,
    ) -> CompositeResult:
        return _composite_result(
            payment_id=ctx.payment_id,
            request_id=ctx.request_id,
            merchant_id=ctx.merchant_id,
            status=status,
            currency=ctx.currency,
            total_amount=ctx.amount_cents if total is None else total,
            step_results=results,
            final_error=final_error,
            validation_errors=ctx.validation_errors,
        )
