import pytest

from engine.config import RoutingRule
from engine.error_codes import ErrorCode
from engine.errors import PlanInvariantError
from engine.events import CompensationIssued, DomainEvent, PaymentCompleted, PaymentFailed, StepSucceeded
from engine.methods import PartialPolicy, PaymentMethod
from engine.plan_builder import build_plan
from engine.results import CompositeResult, PaymentStatus, Result
from engine.types import ProcessorId
from tests.engine.fakes import (
    DECLINE,
    NETWORK,
    OK,
    PROCESSING,
    RAISE,
    REFUND_NOTHING,
    REFUND_TIMEOUT_APPLIED,
    TIMEOUT_CHARGED,
    TIMEOUT_UNCHARGED,
    UNAVAILABLE,
    InMemorySink,
    ManualClock,
    ScriptedProcessor,
)
from tests.engine.harness import SEED_ROUTING, merchant, request, rig


def processors(
    card: tuple[str, ...] = (OK,),
    backup: tuple[str, ...] = (OK,),
    applepay_status: tuple[str, ...] = ("ledger",),
    **refunds: tuple[str, ...],
) -> dict[str, ScriptedProcessor]:
    return {
        "applepay_sim": ScriptedProcessor(
            "applepay_sim", (OK,), refund_script=refunds.get("applepay", (OK,)), status_script=applepay_status
        ),
        "stripe_sim": ScriptedProcessor("stripe_sim", card),
        "adyen_sim": ScriptedProcessor("adyen_sim", backup),
    }


async def test_the_seed_split_succeeds_as_two_steps() -> None:
    fakes = processors()
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))
    assert isinstance(result, CompositeResult)
    assert result.status is PaymentStatus.SUCCEEDED
    assert [(s.method, s.processor_id, s.amount_processed) for s in result.step_results] == [
        (PaymentMethod.APPLE_PAY, "applepay_sim", 6000),
        (PaymentMethod.CARD, "stripe_sim", 4000),
    ]
    assert (result.total_processed, result.remaining_amount) == (10_000, 0)
    assert setup.sink.types() == [
        "PaymentReceived",
        "PlanBuilt",
        "StepAttempted",
        "StepSucceeded",
        "StepAttempted",
        "StepSucceeded",
        "PaymentCompleted",
    ]
    assert fakes["applepay_sim"].held == {"pay_1:step:0": 6000}
    assert fakes["stripe_sim"].held == {"pay_1:step:1": 4000}
    assert setup.sink.violations == []


async def test_card_declined_all_or_nothing_refunds_the_applepay_step() -> None:
    fakes = processors(card=(DECLINE,))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.FAILED
    assert result.final_error is ErrorCode.DECLINED
    first, second = result.step_results
    assert first.success and first.compensated
    assert not second.success and second.error_code is ErrorCode.DECLINED
    assert (result.total_processed, result.remaining_amount) == (0, 10_000)
    assert fakes["applepay_sim"].held == {}
    assert fakes["applepay_sim"].refunds == ["pay_1:step:0"]
    assert fakes["adyen_sim"].calls == 0  # a decline is never cascaded
    compensation = [e for e in setup.sink.events if isinstance(e, CompensationIssued)]
    assert [(c.step_index, c.processor_id, c.amount, c.succeeded) for c in compensation] == [
        (0, "applepay_sim", 6000, True)
    ]
    terminal = setup.sink.events[-1]
    assert isinstance(terminal, PaymentFailed)
    assert terminal.total_processed == 0


async def test_card_declined_allow_partial_reports_40_remaining() -> None:
    fakes = processors(card=(DECLINE,))
    setup = rig(fakes, merchant(PartialPolicy.ALLOW_PARTIAL))
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert (result.total_processed, result.remaining_amount) == (6000, 4000)
    assert result.final_error is ErrorCode.DECLINED
    assert fakes["applepay_sim"].held == {"pay_1:step:0": 6000}
    terminal = setup.sink.events[-1]
    assert isinstance(terminal, PaymentCompleted)
    assert terminal.status is PaymentStatus.PARTIALLY_SUCCEEDED


async def test_a_timeout_then_cascade_never_charges_twice_even_when_the_charge_went_through() -> None:
    fakes = processors(card=(TIMEOUT_CHARGED,))
    setup = rig(fakes, merchant(max_attempts=1))
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.step_results[1].processor_id == "stripe_sim"
    assert fakes["stripe_sim"].charges == ["pay_1:step:1"]
    assert fakes["adyen_sim"].calls == 0
    assert "router/timeout" in setup.sink.contract_ids()
    assert fakes["stripe_sim"].status_calls == 1


async def test_a_timeout_that_did_not_charge_cascades_to_the_next_processor() -> None:
    fakes = processors(card=("timeout_uncharged",))
    setup = rig(fakes, merchant(max_attempts=1))
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.step_results[1].processor_id == "adyen_sim"
    assert fakes["stripe_sim"].held == {}
    assert fakes["adyen_sim"].held == {"pay_1:step:1": 4000}


async def test_a_failed_compensation_is_critical_and_says_which_step_is_still_charged() -> None:
    fakes = processors(card=(DECLINE,), applepay=(RAISE,))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.FAILED
    assert [step.step_index for step in result.still_charged_steps] == [0]
    assert result.total_processed == 6000
    critical = [v for v in setup.sink.violations if v.contract_id == "orchestrator/compensation-failed"]
    assert len(critical) == 1
    assert critical[0].severity.value == "critical"
    assert "step 0 is still charged at applepay_sim" in critical[0].message
    assert "processor/panic" in setup.sink.contract_ids()
    terminal = setup.sink.events[-1]
    assert isinstance(terminal, PaymentFailed)
    assert terminal.total_processed == 6000


async def test_a_refund_whose_answer_is_lost_is_settled_by_asking_the_processor() -> None:
    """The void goes through but its answer never comes back (every try times out): the
    processor's status says the money came back, so the step counts as compensated and no
    compensation-failed violation claims the customer is still charged."""
    fakes = processors(card=(DECLINE,), applepay=(REFUND_TIMEOUT_APPLIED,))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))

    assert result.status is PaymentStatus.FAILED
    assert result.step_results[0].compensated
    assert result.still_charged_steps == ()
    assert result.total_processed == 0
    assert fakes["applepay_sim"].held == {}
    assert fakes["applepay_sim"].refunded == {"pay_1:step:0": 6000}
    assert fakes["applepay_sim"].status_calls == 1
    assert "orchestrator/compensation-failed" not in setup.sink.contract_ids()
    issued = [event for event in setup.sink.events if isinstance(event, CompensationIssued)]
    assert [(event.step_index, event.amount, event.succeeded) for event in issued] == [(0, 6000, True)]


async def test_a_lost_refund_answer_the_processor_cannot_settle_may_still_be_charged() -> None:
    fakes = processors(card=(DECLINE,), applepay=(REFUND_TIMEOUT_APPLIED,), applepay_status=("unknown",))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))

    assert [step.step_index for step in result.still_charged_steps] == [0]
    critical = [v for v in setup.sink.violations if v.contract_id == "orchestrator/compensation-failed"]
    assert [v.message for v in critical] == [
        "step 0 may still be charged at applepay_sim: void/refund failed with timeout"
    ]


async def test_a_refund_whose_lost_answer_went_through_records_what_came_back() -> None:
    """The first void goes through but its answer is lost; the retry finds nothing left to undo
    and says so (0). The money did come back, by the first try: the compensation records the
    6000 the processor refunded, not 0."""
    fakes = processors(card=(DECLINE,), applepay=(REFUND_TIMEOUT_APPLIED, OK))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))

    assert result.step_results[0].compensated
    assert fakes["applepay_sim"].refunded == {"pay_1:step:0": 6000}
    issued = [event for event in setup.sink.events if isinstance(event, CompensationIssued)]
    assert [(event.step_index, event.amount, event.succeeded) for event in issued] == [(0, 6000, True)]
    assert "orchestrator/compensation-failed" not in setup.sink.contract_ids()


async def test_a_lost_refund_answer_the_processor_cannot_report_records_what_was_asked() -> None:
    """As above, but the processor's status cannot tell what it refunded: the retry found nothing
    left of a charge known to hold 6000, so the 6000 the lost try asked for came back."""
    fakes = processors(card=(DECLINE,), applepay=(REFUND_TIMEOUT_APPLIED, OK), applepay_status=("unknown",))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))

    assert result.step_results[0].compensated
    assert fakes["applepay_sim"].status_calls == 1
    issued = [event for event in setup.sink.events if isinstance(event, CompensationIssued)]
    assert [(event.step_index, event.amount, event.succeeded) for event in issued] == [(0, 6000, True)]


async def test_an_unsettled_charge_voided_by_a_try_whose_answer_was_lost_is_recorded() -> None:
    """A charge in doubt (its status unknown) is voided; the first void goes through but its
    answer is lost, and the retry finds nothing left. The void is still recorded, with its amount."""
    fakes = processors()
    fakes["stripe_sim"] = ScriptedProcessor(
        "stripe_sim",
        (TIMEOUT_CHARGED, NETWORK),
        refund_script=(REFUND_TIMEOUT_APPLIED, OK),
        status_script=("unknown", "ledger"),
    )
    setup = rig(fakes, merchant(max_attempts=2))
    result = await setup.service.pay(request(10_000))

    assert result.status is PaymentStatus.FAILED
    assert fakes["stripe_sim"].refunded == {"pay_1:step:1": 4000}
    issued = [event for event in setup.sink.events if isinstance(event, CompensationIssued)]
    assert [(e.step_index, e.processor_id, e.amount, e.succeeded) for e in issued] == [
        (1, "stripe_sim", 4000, True),
        (0, "applepay_sim", 6000, True),
    ]


async def test_a_transient_refund_failure_is_retried() -> None:
    fakes = processors(card=(DECLINE,), applepay=(NETWORK, OK))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))
    assert result.step_results[0].compensated
    assert fakes["applepay_sim"].held == {}


async def test_a_plan_that_cannot_cover_the_total_charges_nothing() -> None:
    fakes = processors()
    only_applepay = merchant(routing=(merchant().routing[0],))
    setup = rig(fakes, only_applepay)
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.FAILED
    assert result.final_error is ErrorCode.COVERAGE_SHORTFALL
    assert result.step_results == ()
    assert setup.sink.types() == ["PaymentReceived", "PlanBuilt", "PaymentFailed"]
    assert setup.sink.contract_ids() == ["plan/coverage"]
    assert all(fake.calls == 0 for fake in fakes.values())


async def test_a_policy_refusal_is_a_failed_result_not_an_exception() -> None:
    fakes = processors()
    setup = rig(fakes)
    over = await setup.service.pay(request(100_000_001))
    assert over.status is PaymentStatus.FAILED
    assert over.final_error is ErrorCode.POLICY_REJECTED
    paypal = await setup.service.pay(request(100, "pay_2", payment_method=PaymentMethod.PAYPAL))
    assert paypal.final_error is ErrorCode.POLICY_REJECTED
    assert setup.sink.types() == ["PaymentReceived", "PaymentFailed", "PaymentReceived", "PaymentFailed"]
    assert all(fake.calls == 0 for fake in fakes.values())


async def test_the_requested_method_goes_first() -> None:
    fakes = processors()
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000, payment_method=PaymentMethod.CARD))
    assert [(s.method, s.amount_processed) for s in result.step_results] == [(PaymentMethod.CARD, 10_000)]


async def test_the_first_step_failing_needs_no_compensation() -> None:
    fakes = processors()
    fakes["applepay_sim"] = ScriptedProcessor("applepay_sim", (UNAVAILABLE,))
    setup = rig(fakes)
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.FAILED
    assert len(result.step_results) == 1
    assert not any(isinstance(e, CompensationIssued) for e in setup.sink.events)
    assert "router/retry-exhausted" in setup.sink.contract_ids()


class SlowSink(InMemorySink):
    """Every event takes 10 ms to record, on the manual clock."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self._clock = clock

    async def emit(self, event: DomainEvent) -> None:
        self._clock.advance(0.01)
        await super().emit(event)


async def test_the_engine_leaves_the_latency_objective_to_the_answer() -> None:
    # A merchant waits for the answer, parsing and commit included, which only the API sees
    # (tests/ingest/api/test_latency_objective.py): the engine's own time, checked here too, would
    # record a second violation, or one the answer did not break.
    slow = rig(processors(), merchant(latency_slo_ms=1), sink_factory=SlowSink)
    result = await slow.service.pay(request(10_000))
    assert result.status is PaymentStatus.SUCCEEDED
    assert "payment/latency-slo" not in slow.sink.contract_ids()


async def test_an_unsettled_timeout_that_charged_is_voided_and_never_cascaded() -> None:
    fakes = processors(card=(TIMEOUT_CHARGED,))
    fakes["stripe_sim"] = ScriptedProcessor("stripe_sim", (TIMEOUT_CHARGED,), status_script=("unknown",))
    setup = rig(fakes, merchant(max_attempts=1))
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.FAILED
    assert result.final_error is ErrorCode.TIMEOUT
    assert fakes["adyen_sim"].calls == 0
    assert fakes["stripe_sim"].held == {}
    assert fakes["stripe_sim"].refunds == ["pay_1:step:1"]
    assert fakes["applepay_sim"].held == {}
    voided = [(e.step_index, e.processor_id) for e in setup.sink.events if isinstance(e, CompensationIssued)]
    assert voided == [(1, "stripe_sim"), (0, "applepay_sim")]
    assert result.total_processed == 0


async def test_an_unsettled_timeout_that_never_charged_leaves_no_compensation_record() -> None:
    fakes = processors()
    fakes["stripe_sim"] = ScriptedProcessor("stripe_sim", ("timeout_uncharged",), status_script=("unknown",))
    setup = rig(fakes, merchant(PartialPolicy.ALLOW_PARTIAL, max_attempts=1))
    result = await setup.service.pay(request(10_000))
    assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert (result.total_processed, result.remaining_amount) == (6000, 4000)
    assert not any(isinstance(e, CompensationIssued) for e in setup.sink.events)


async def test_a_plan_of_another_payment_is_refused_before_anything_happens() -> None:
    fakes = processors()
    setup = rig(fakes)
    plan = build_plan(request(10_000, "pay_other"), setup.config.merchant("m_acme"))
    with pytest.raises(PlanInvariantError, match="is not the plan of payment pay_1"):
        await setup.service.execute(request(10_000), plan)
    assert setup.sink.events == []
    assert all(fake.calls == 0 for fake in fakes.values())


async def test_a_compensation_records_what_was_refunded_not_what_was_asked() -> None:
    fakes = processors(card=(DECLINE,), applepay=(REFUND_NOTHING,))
    setup = rig(fakes)

    await setup.service.pay(request(10_000))

    # The processor said it refunded nothing (it holds nothing for the key): no 6000 refund recorded.
    compensation = [e for e in setup.sink.events if isinstance(e, CompensationIssued)]
    assert [(c.processor_id, c.amount, c.succeeded) for c in compensation] == [("applepay_sim", 0, True)]


def in_doubt_and_held(refund: str) -> ScriptedProcessor:
    """A card processor whose charge times out (it did charge), whose status cannot tell at first
    and whose void then fails with ``refund``; after that its status says what it holds."""
    return ScriptedProcessor(
        "stripe_sim", (TIMEOUT_CHARGED,), refund_script=(refund,), status_script=("unknown", "ledger")
    )


@pytest.mark.parametrize("refund", [RAISE, UNAVAILABLE])
@pytest.mark.parametrize("policy", list(PartialPolicy))
async def test_a_charge_in_doubt_whose_void_fails_counts_when_the_processor_holds_it(
    policy: PartialPolicy, refund: str
) -> None:
    """The card step times out and its status cannot tell; its void fails (lost or refused), and
    then the processor says it holds the 40.00. Both steps are charged, so the payment is paid:
    the merchant sees the 100.00 taken, and the events say the card step succeeded."""
    fakes = processors()
    fakes["stripe_sim"] = in_doubt_and_held(refund)
    setup = rig(fakes, merchant(policy, max_attempts=1))
    result = await setup.service.pay(request(10_000))

    assert fakes["applepay_sim"].held == {"pay_1:step:0": 6000}
    assert fakes["stripe_sim"].held == {"pay_1:step:1": 4000}
    assert result.status is PaymentStatus.SUCCEEDED
    assert (result.total_processed, result.remaining_amount, result.final_error) == (10_000, 0, None)
    card = result.step_results[1]
    assert (card.processor_id, card.success, card.amount_processed, card.compensated) == (
        "stripe_sim",
        True,
        4000,
        False,
    )
    found = [e for e in setup.sink.events if isinstance(e, StepSucceeded) and e.step_index == 1]
    assert [(e.processor_id, e.amount, e.attempt) for e in found] == [("stripe_sim", 4000, 1)]
    terminal = setup.sink.events[-1]
    assert isinstance(terminal, PaymentCompleted)
    assert terminal.total_processed == 10_000
    assert "orchestrator/compensation-failed" in setup.sink.contract_ids()


THREE_STEPS = (
    SEED_ROUTING[0],
    RoutingRule(PaymentMethod.CARD, SEED_ROUTING[1].processors, max_amount_cents=3000),
    RoutingRule(PaymentMethod.PAYPAL, (ProcessorId("paypal_sim"),)),
)


async def test_a_held_charge_in_doubt_stays_charged_when_all_or_nothing_fails() -> None:
    """As above, with a third step never reached: all or nothing refunds the Apple Pay step, and
    the card step, which cannot be voided, is what the failed payment still holds."""
    fakes = processors()
    fakes["stripe_sim"] = in_doubt_and_held(RAISE)
    fakes["paypal_sim"] = ScriptedProcessor("paypal_sim")
    setup = rig(fakes, merchant(routing=THREE_STEPS, max_attempts=1))
    result = await setup.service.pay(request(10_000))

    assert fakes["applepay_sim"].held == {}
    assert fakes["stripe_sim"].held == {"pay_1:step:1": 3000}
    assert fakes["paypal_sim"].calls == 0
    assert result.status is PaymentStatus.FAILED
    assert result.final_error is ErrorCode.TIMEOUT
    assert [step.step_index for step in result.still_charged_steps] == [1]
    assert result.total_processed == 3000
    terminal = setup.sink.events[-1]
    assert isinstance(terminal, PaymentFailed)
    assert terminal.total_processed == 3000
    assert fakes["stripe_sim"].refunds == []  # one void of the step, not a second one as a compensation


async def test_a_held_charge_in_doubt_counts_in_a_partial_payment() -> None:
    fakes = processors()
    fakes["stripe_sim"] = in_doubt_and_held(RAISE)
    fakes["paypal_sim"] = ScriptedProcessor("paypal_sim")
    setup = rig(fakes, merchant(PartialPolicy.ALLOW_PARTIAL, routing=THREE_STEPS, max_attempts=1))
    result = await setup.service.pay(request(10_000))

    assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert (result.total_processed, result.remaining_amount) == (9000, 1000)
    terminal = setup.sink.events[-1]
    assert isinstance(terminal, PaymentCompleted)
    assert terminal.total_processed == 9000


async def test_a_charge_in_doubt_whose_void_fails_and_that_holds_nothing_is_not_counted() -> None:
    """The void of a charge in doubt fails, and the processor then says the key holds nothing:
    nothing was charged, nothing is recorded as undone or as still held."""
    fakes = processors()
    fakes["stripe_sim"] = ScriptedProcessor(
        "stripe_sim", (TIMEOUT_UNCHARGED,), refund_script=(PROCESSING,), status_script=("unknown", "ledger")
    )
    setup = rig(fakes, merchant(PartialPolicy.ALLOW_PARTIAL, max_attempts=1))
    result = await setup.service.pay(request(10_000))

    assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert (result.total_processed, result.remaining_amount) == (6000, 4000)
    assert not any(isinstance(e, CompensationIssued) for e in setup.sink.events)
    assert "orchestrator/compensation-failed" not in setup.sink.contract_ids()


async def test_recovery_finishing_a_payment_with_an_undone_step_still_undoes_the_rest() -> None:
    """After a crash mid-compensation, step 0 is already refunded and step 1 still charged: the
    payment fails and step 1 is refunded too (every step is successful, but not every one holds
    its charge, so this is no payment found paid after all)."""
    fakes = processors()
    setup = rig(fakes)
    ctx = request(10_000)
    await setup.service.pay(ctx)
    fakes["applepay_sim"].held.clear()
    plan = build_plan(ctx, setup.config.merchant("m_acme"))
    results = [
        Result(0, PaymentMethod.APPLE_PAY, ProcessorId("applepay_sim"), True, 6000, 1, 1, None, True),
        Result(1, PaymentMethod.CARD, ProcessorId("stripe_sim"), True, 4000, 1, 1, None, False),
    ]
    result = await setup.service.finish(ctx, plan, results)

    assert result.status is PaymentStatus.FAILED
    assert result.total_processed == 0
    assert fakes["stripe_sim"].held == {}
