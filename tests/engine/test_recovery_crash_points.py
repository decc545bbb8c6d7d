"""Recovery after a crash at every point of a payment, deterministically.

A crash here is a sink that stops taking events at the n-th one: the events before it are what
the store holds (the store commits events in order), the payment's coroutine dies at that emit,
and the processors hold whatever they held at that moment. For every scenario and every n, after
recovery:

1. every ``StepAttempted`` in the log has an outcome (``StepSucceeded`` or ``StepFailed`` for its
   step and attempt number): every attempt is settled in the log itself (decision 3);
2. each step result agrees with the log: its attempts are the step's ``StepAttempted``; a failed
   step names the processor of its last attempt and that attempt's recorded error code; a charged
   one names a processor that recorded the charge;
3. the processors hold exactly what the result says is processed, at most one charge a step, and
   the payment has exactly one terminal event, which says the same; no charge is undone twice,
   and a step is ``compensated`` exactly when the log says its charge was undone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pytest

from engine.config import RoutingRule
from engine.error_codes import ErrorCode
from engine.events import CompensationIssued, DomainEvent, PaymentCompleted, PaymentFailed, StepFailed
from engine.methods import PartialPolicy, PaymentMethod
from engine.processor import Processor
from engine.recovery import TERMINAL, interrupted, recover_payment
from engine.results import CompositeResult, PaymentStatus
from engine.types import ProcessorId
from tests.engine.fakes import (
    DECLINE,
    OK,
    PROCESSING,
    TIMEOUT_CHARGED,
    TIMEOUT_UNCHARGED,
    CheckingSink,
    ManualClock,
    ScriptedProcessor,
)
from tests.engine.harness import SEED_ROUTING, merchant, request, rig
from tests.payment_log import StepView, attempts_without_outcome, disagreements

CARD_ONLY = (RoutingRule(PaymentMethod.CARD, (ProcessorId("stripe_sim"), ProcessorId("adyen_sim"))),)
Scripts = Mapping[str, Sequence[str]]


class Crash(BaseException):
    """The process died: nothing in the engine handles it."""


class CrashingSink(CheckingSink):
    """Takes ``limit`` events, then dies on the next one (which is never stored)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def emit(self, event: DomainEvent) -> None:
        if len(self.events) >= self.limit:
            raise Crash
        await super().emit(event)


@dataclass(frozen=True)
class Scenario:
    routing: tuple[RoutingRule, ...]
    amount: int
    scripts: Scripts
    policy: PartialPolicy = PartialPolicy.ALL_OR_NOTHING

    def processors(self) -> dict[str, ScriptedProcessor]:
        return {
            name: ScriptedProcessor(name, self.scripts.get(name, (OK,)))
            for name in ("applepay_sim", "stripe_sim", "adyen_sim")
        }


SCENARIOS = {
    "split, all charged": Scenario(SEED_ROUTING, 10_000, {}),
    "split, card declined, apple pay refunded": Scenario(SEED_ROUTING, 10_000, {"stripe_sim": (DECLINE,)}),
    "split, card declined, partial kept": Scenario(
        SEED_ROUTING, 10_000, {"stripe_sim": (DECLINE,)}, PartialPolicy.ALLOW_PARTIAL
    ),
    # The reported case: three processing errors at stripe, two at adyen, then adyen's third.
    "processing errors, then the fallback charges": Scenario(
        CARD_ONLY, 4000, {"stripe_sim": (PROCESSING,) * 3, "adyen_sim": (PROCESSING, PROCESSING, OK)}
    ),
    "processing errors everywhere": Scenario(
        CARD_ONLY, 4000, {"stripe_sim": (PROCESSING,), "adyen_sim": (PROCESSING,)}
    ),
    "a timeout that had charged": Scenario(CARD_ONLY, 4000, {"stripe_sim": (TIMEOUT_CHARGED,)}),
    "a timeout that had not charged, then a retry": Scenario(
        CARD_ONLY, 4000, {"stripe_sim": (TIMEOUT_UNCHARGED, OK)}
    ),
}


async def _run(scenario: Scenario, processors: Mapping[str, Processor], limit: int) -> list[DomainEvent]:
    """The events a payment left when the process died at its ``limit``-th event."""
    config = merchant(scenario.policy, scenario.routing)
    factory: Callable[[ManualClock], CrashingSink] = lambda _clock: CrashingSink(limit)  # noqa: E731
    crashing = rig(processors, config, sink_factory=factory)
    method = PaymentMethod.CARD if scenario.routing is CARD_ONLY else None
    with contextlib.suppress(Crash):
        await crashing.service.pay(request(scenario.amount, payment_method=method))
    return crashing.sink.events


async def _recover(
    scenario: Scenario, processors: Mapping[str, Processor], events: list[DomainEvent]
) -> tuple[CompositeResult, list[DomainEvent]]:
    config = merchant(scenario.policy, scenario.routing)
    restarted = rig(processors, config)
    adapters = {ProcessorId(name): processor for name, processor in processors.items()}
    recovered = await recover_payment(
        events,
        service=restarted.service,
        processors=adapters,
        merchant=config,
        sink=restarted.sink,
        clock=restarted.clock,
    )
    return recovered.result, restarted.sink.events


def _check_the_log(result: CompositeResult, log: Sequence[DomainEvent]) -> None:
    assert attempts_without_outcome(log) == []
    assert disagreements([StepView.of(step) for step in result.step_results], log) == []
    terminal = [e for e in log if isinstance(e, TERMINAL)]
    assert len(terminal) == 1, terminal
    ended = terminal[0]
    assert isinstance(ended, PaymentCompleted | PaymentFailed)
    assert ended.total_processed == result.total_processed
    undone = [(e.step_index, e.processor_id) for e in log if type(e) is CompensationIssued and e.succeeded]
    assert len(undone) == len(set(undone)), f"a charge undone twice: {undone}"
    for step in result.step_results:
        assert step.compensated == ((step.step_index, step.processor_id) in undone), step


def _check_the_books(result: CompositeResult, processors: Mapping[str, ScriptedProcessor]) -> None:
    held = [(key, amount) for p in processors.values() for key, amount in p.held.items()]
    assert sum(amount for _, amount in held) == result.total_processed
    keys = [key for key, _ in held]
    assert len(keys) == len(set(keys)), f"a step charged twice: {held}"


async def _events_in_full(scenario: Scenario) -> int:
    return len(await _run(scenario, scenario.processors(), limit=10**6))


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_a_crash_at_any_event_is_recovered_into_a_log_and_result_that_agree(name: str) -> None:
    scenario = SCENARIOS[name]
    recovered_any = False
    for limit in range(await _events_in_full(scenario)):
        processors = scenario.processors()
        before = await _run(scenario, processors, limit)
        if not interrupted(before):
            continue
        result, added = await _recover(scenario, processors, before)
        recovered_any = True
        log = [*before, *added]
        try:
            _check_the_log(result, log)
            _check_the_books(result, processors)
        except AssertionError as failed:
            types = [event.event_type for event in log]
            raise AssertionError(f"crash at event {limit} ({types}): {failed}") from failed
    assert recovered_any


async def test_an_attempt_cut_off_after_five_processing_errors_is_recorded_failed_at_its_processor() -> None:
    """The reported payment: stripe_sim failed three times, adyen_sim twice, and the crash came
    while adyen_sim's third attempt (the sixth) was out; adyen_sim holds nothing for it."""
    scenario = Scenario(CARD_ONLY, 4000, {"stripe_sim": (PROCESSING,), "adyen_sim": (PROCESSING,)})
    processors = scenario.processors()
    full = await _run(scenario, processors, limit=10**6)
    sixth = next(i for i, e in enumerate(full) if type(e) is StepFailed and e.attempt == 6)

    result, added = await _recover(scenario, processors, full[:sixth])

    assert result.status is PaymentStatus.FAILED
    (step,) = result.step_results
    assert (step.processor_id, step.attempts, step.error_code) == ("adyen_sim", 6, ErrorCode.UNKNOWN)
    assert step.latency_ms == sum(e.latency_ms for e in [*full[:sixth], *added] if type(e) is StepFailed)
    (cut_off,) = [e for e in added if type(e) is StepFailed]
    assert (cut_off.processor_id, cut_off.attempt, cut_off.error_code) == ("adyen_sim", 6, ErrorCode.UNKNOWN)
    assert [e.event_type for e in added] == ["StepFailed", "PaymentFailed"]
