"""Recovery of payments a crash cut short: each attempt is settled with its processor, then the
payment is finished as its policy says. A "crash" here is a payment's events cut after some
event, with the processors holding whatever they held at that moment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from engine.config import MerchantConfig
from engine.error_codes import ErrorCode
from engine.events import CompensationIssued, DomainEvent, PlanBuilt, StepAttempted, StepSucceeded
from engine.methods import PartialPolicy
from engine.observer import NULL_OBSERVER, Observer, SpanAttributes
from engine.processor import Processor
from engine.recovery import Recovered, Unsettled, interrupted, recover_payment
from engine.results import PaymentStatus
from engine.types import ProcessorId
from tests.engine.fakes import ScriptedProcessor
from tests.engine.harness import SEED_ROUTING, Rig, merchant, rig

KEY_0, KEY_1 = "pay_1:step:0", "pay_1:step:1"


def _processors(**options: object) -> dict[str, ScriptedProcessor]:
    return {
        name: ScriptedProcessor(name, **options)  # type: ignore[arg-type]
        for name in ("applepay_sim", "stripe_sim", "adyen_sim")
    }


async def _events_of_a_paid_split(
    processors: dict[str, ScriptedProcessor], policy: PartialPolicy = PartialPolicy.ALL_OR_NOTHING
) -> list[DomainEvent]:
    """The seven events of the seed's split ($60 Apple Pay, $40 card), all charged, paid under
    ``policy``."""
    paid = rig(processors, merchant(policy))
    await paid.pay()
    return paid.sink.events


def _cut_before_step_1_succeeded(events: list[DomainEvent]) -> list[DomainEvent]:
    at = next(i for i, e in enumerate(events) if type(e) is StepSucceeded and e.step_index == 1)
    return events[:at]


async def _restart_and_recover(
    events: list[DomainEvent],
    processors: dict[str, ScriptedProcessor],
    config: MerchantConfig,
    observer: Observer = NULL_OBSERVER,
) -> tuple[Recovered, Rig]:
    """``events`` recovered by a new process: a new engine over the same processors, with
    ``observer`` watching the recovery."""
    restarted = rig(processors, config)
    adapters: dict[ProcessorId, Processor] = {ProcessorId(name): p for name, p in processors.items()}
    recovered = await recover_payment(
        events,
        service=restarted.service,
        processors=adapters,
        merchant=config,
        sink=restarted.sink,
        clock=restarted.clock,
        observer=observer,
    )
    return recovered, restarted


async def _recover(
    events: list[DomainEvent], processors: dict[str, ScriptedProcessor], policy: PartialPolicy
) -> tuple[Recovered, list[str], list[str]]:
    recovered, restarted = await _restart_and_recover(events, processors, merchant(policy))
    return recovered, restarted.sink.types(), restarted.sink.contract_ids()


async def test_an_attempt_that_charged_is_recorded_and_the_payment_completed() -> None:
    processors = _processors()
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))
    assert interrupted(events)

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALL_OR_NOTHING)

    assert recovered.result.status is PaymentStatus.SUCCEEDED
    assert recovered.settled_attempts == 1
    assert types == ["StepSucceeded", "PaymentCompleted"]
    assert processors["applepay_sim"].refunds == processors["stripe_sim"].refunds == []


async def test_an_attempt_that_never_charged_undoes_the_rest_when_all_or_nothing() -> None:
    processors = _processors()
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))
    processors["stripe_sim"].held.pop(KEY_1)  # the crash came before the charge reached it

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALL_OR_NOTHING)

    assert recovered.result.status is PaymentStatus.FAILED
    # The cut-off attempt gets its outcome: it charged nothing, and why is not known.
    assert types == ["StepFailed", "CompensationIssued", "PaymentFailed"]
    card = recovered.result.step_results[1]
    assert (card.processor_id, card.attempts, card.error_code) == ("stripe_sim", 1, ErrorCode.UNKNOWN)
    assert processors["applepay_sim"].refunds == [KEY_0]
    assert processors["applepay_sim"].held == {}


async def test_allow_partial_keeps_what_was_charged() -> None:
    processors = _processors()
    paid = await _events_of_a_paid_split(processors, PartialPolicy.ALLOW_PARTIAL)
    events = _cut_before_step_1_succeeded(paid)
    processors["stripe_sim"].held.pop(KEY_1)

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALLOW_PARTIAL)

    result = recovered.result
    assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert result.total_processed == 6000
    assert types == ["StepFailed", "PaymentCompleted"]
    assert processors["applepay_sim"].refunds == []


async def test_a_step_charged_at_two_processors_keeps_its_first_charge() -> None:
    processors = _processors()
    events = await _events_of_a_paid_split(processors)
    done = events[: next(i for i, e in enumerate(events) if e.event_type == "PaymentCompleted")]
    first_attempt = next(e for e in done if type(e) is StepAttempted and e.step_index == 1)
    # A fallback charged too (say the first processor timed out after all), then the crash.
    fallback = StepAttempted(
        payment_id=first_attempt.payment_id,
        request_id=first_attempt.request_id,
        merchant_id=first_attempt.merchant_id,
        timestamp=first_attempt.timestamp,
        step_index=1,
        processor_id=ProcessorId("adyen_sim"),
        attempt=2,
        method=first_attempt.method,
        amount_cents=first_attempt.amount_cents,
        idempotency_key=KEY_1,
    )
    processors["adyen_sim"].held[KEY_1] = first_attempt.amount_cents

    recovered, types, _ = await _recover([*done, fallback], processors, PartialPolicy.ALL_OR_NOTHING)

    assert recovered.result.status is PaymentStatus.SUCCEEDED
    assert types == ["StepSucceeded", "CompensationIssued", "PaymentCompleted"]
    assert processors["adyen_sim"].held == {}
    assert processors["stripe_sim"].held == {KEY_1: 4000}


async def test_a_processor_that_cannot_say_leaves_the_payment_for_the_next_start() -> None:
    processors = _processors(status_script=("unknown",))
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))

    with pytest.raises(Unsettled, match="cannot say what it holds"):
        await _recover(events, processors, PartialPolicy.ALL_OR_NOTHING)


async def test_a_status_query_that_cannot_answer_once_is_asked_again() -> None:
    """One lost status answer (a query that timed out) does not leave the payment, and its
    idempotency key, stuck until the next start: the processor is asked again and answers."""
    processors = _processors(status_script=("unknown", "ledger"))
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALL_OR_NOTHING)

    assert recovered.result.status is PaymentStatus.SUCCEEDED
    assert processors["stripe_sim"].status_calls == 2
    assert types == ["StepSucceeded", "PaymentCompleted"]


class SpanLog:
    """An observer that keeps each span's name and its attributes as they were when it ended."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, dict[str, str | int]]] = []

    @contextmanager
    def span(self, name: str, attributes: SpanAttributes) -> Iterator[None]:
        yield None
        self.ended.append((name, dict(attributes)))


async def test_each_status_query_is_a_span_saying_what_it_found() -> None:
    """Recovery's status queries had no spans: a recovery that took seconds showed one span, with
    nothing of which processor was asked, how often, or what it answered."""
    processors = _processors(status_script=("unknown", "ledger"))
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))
    observer = SpanLog()

    await _restart_and_recover(events, processors, merchant(PartialPolicy.ALL_OR_NOTHING), observer)

    asked = {"payorch.step_index": 1, "payorch.processor_id": "stripe_sim", "payorch.attempt": 1}
    assert observer.ended == [
        (
            "status_query",
            asked | {"payorch.query": 1, "payorch.settlement": "unknown", "payorch.outcome": "unknown"},
        ),
        (
            "status_query",
            asked | {"payorch.query": 2, "payorch.settlement": "charged", "payorch.outcome": "succeeded"},
        ),
    ]


async def test_a_finished_or_refused_payment_is_not_interrupted() -> None:
    events = await _events_of_a_paid_split(_processors())

    assert not interrupted(events)
    assert interrupted(events[:-1])
    assert not interrupted([])


async def test_a_refund_made_before_the_crash_is_recorded_with_what_it_returned() -> None:
    processors = _processors()
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))
    processors["stripe_sim"].held.pop(KEY_1)  # the card leg never charged
    # The crash came after compensation refunded the Apple Pay leg, before its event was written.
    apple_pay = processors["applepay_sim"]
    apple_pay.refunded[KEY_0] = apple_pay.held.pop(KEY_0)

    recovered, restarted = await _restart_and_recover(
        events, processors, merchant(PartialPolicy.ALL_OR_NOTHING)
    )

    assert recovered.result.status is PaymentStatus.FAILED
    assert restarted.sink.types() == ["StepFailed", "CompensationIssued", "PaymentFailed"]
    compensation = next(e for e in restarted.sink.events if type(e) is CompensationIssued)
    assert (compensation.amount, compensation.succeeded) == (6000, True)  # not the 0 left to refund
    assert recovered.result.total_processed == 0


async def test_a_payment_accepted_under_allow_partial_keeps_its_charge_after_a_policy_change() -> None:
    """The payment was accepted under allow_partial; the merchant's config says all_or_nothing at
    the restart. The charge the payment was accepted to keep stays, as it would have without the
    crash: the policy recorded in ``PlanBuilt`` decides, not the config."""
    processors = _processors()
    paid = await _events_of_a_paid_split(processors, PartialPolicy.ALLOW_PARTIAL)
    events = _cut_before_step_1_succeeded(paid)
    processors["stripe_sim"].held.pop(KEY_1)

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALL_OR_NOTHING)

    assert recovered.result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert recovered.result.total_processed == 6000
    assert types == ["StepFailed", "PaymentCompleted"]
    assert processors["applepay_sim"].refunds == []


async def test_a_payment_accepted_all_or_nothing_is_undone_after_a_policy_change() -> None:
    """The shopper was promised all or nothing: a merchant allowing partial payments since does
    not keep the first leg's charge of a payment a crash cut short."""
    processors = _processors()
    events = _cut_before_step_1_succeeded(await _events_of_a_paid_split(processors))
    processors["stripe_sim"].held.pop(KEY_1)

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALLOW_PARTIAL)

    assert recovered.result.status is PaymentStatus.FAILED
    assert recovered.result.total_processed == 0
    assert types == ["StepFailed", "CompensationIssued", "PaymentFailed"]
    assert processors["applepay_sim"].refunds == [KEY_0]


@pytest.mark.parametrize("policy", list(PartialPolicy))
async def test_a_plan_recorded_without_its_policy_is_finished_under_the_merchants_current_one(
    policy: PartialPolicy,
) -> None:
    """A ``PlanBuilt`` written before the policy was recorded: the merchant's policy at the
    restart is all there is to go by."""
    processors = _processors()
    paid = await _events_of_a_paid_split(processors, PartialPolicy.ALLOW_PARTIAL)
    events = [
        replace(event, partial_policy=None) if type(event) is PlanBuilt else event
        for event in _cut_before_step_1_succeeded(paid)
    ]
    processors["stripe_sim"].held.pop(KEY_1)

    recovered, _, _ = await _recover(events, processors, policy)

    kept = policy is PartialPolicy.ALLOW_PARTIAL
    assert recovered.result.status is (PaymentStatus.PARTIALLY_SUCCEEDED if kept else PaymentStatus.FAILED)
    assert processors["applepay_sim"].refunds == ([] if kept else [KEY_0])


async def test_a_payment_whose_every_charge_was_refunded_before_the_crash_fails_under_any_policy() -> None:
    """All or nothing, its card leg declined and its Apple Pay leg refunded, then the crash, before
    its ``PaymentFailed``; its ``PlanBuilt`` does not say its policy, and the merchant allows
    partial payments at the restart. Nothing is charged, so nothing can be kept: it failed. It
    was finished ``partially_succeeded`` with 0 of 100.00 charged (a refunded leg still counted
    as a success to keep)."""
    processors = _processors()
    processors["stripe_sim"] = ScriptedProcessor("stripe_sim", ("decline",))
    failed = await _events_of_a_paid_split(processors)
    assert type(failed[-1]).__name__ == "PaymentFailed"
    events = [
        replace(event, partial_policy=None) if type(event) is PlanBuilt else event for event in failed[:-1]
    ]
    assert processors["applepay_sim"].held == {}

    recovered, types, _ = await _recover(events, processors, PartialPolicy.ALLOW_PARTIAL)

    result = recovered.result
    assert (result.status, result.final_error, result.total_processed) == (
        PaymentStatus.FAILED,
        ErrorCode.DECLINED,
        0,
    )
    assert types == ["PaymentFailed"]
    assert processors["applepay_sim"].refunds == [KEY_0]  # the one refund, before the crash


async def test_a_plan_that_cannot_cover_the_amount_fails_as_it_would_have_without_the_crash() -> None:
    """The routing covers $60 of $100: the payment fails ``coverage_shortfall`` with nothing
    attempted. A crash after its ``PlanBuilt`` and before its ``PaymentFailed`` changes none of
    that: no step was going to run, so none is recorded as failed ``unknown``."""
    processors = _processors()
    uncovered = merchant(routing=(SEED_ROUTING[0],))  # Apple Pay up to $60, no card
    paid = rig(processors, uncovered)
    answered = await paid.pay()
    events = paid.sink.events[: paid.sink.types().index("PaymentFailed")]
    assert interrupted(events)

    recovered, restarted = await _restart_and_recover(events, processors, uncovered)

    assert recovered.result == answered
    assert recovered.result.final_error is ErrorCode.COVERAGE_SHORTFALL
    assert restarted.sink.types() == ["PaymentFailed"]
    assert recovered.settled_attempts == 0
