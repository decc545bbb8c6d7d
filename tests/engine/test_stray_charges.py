"""A charge that is not the one asked for (another amount or currency) never counts: the step fails
with ``processor/malformed`` and the charge is voided in full, live and after a crash."""

from __future__ import annotations

import pytest

from engine.error_codes import ErrorCode
from engine.events import CompensationIssued, DomainEvent, StepAttempted
from engine.methods import PartialPolicy, PaymentMethod
from engine.processor import Processor
from engine.recovery import recover_payment
from engine.results import CompositeResult, PaymentStatus
from engine.types import ProcessorId
from tests.engine.fakes import (
    OK,
    OVERCHARGE,
    TIMEOUT_OVERCHARGED,
    WRONG_CURRENCY,
    ScriptedProcessor,
)
from tests.engine.harness import merchant, request, rig

KEY_0, KEY_1 = "pay_1:step:0", "pay_1:step:1"


def processors(card: str) -> dict[str, ScriptedProcessor]:
    return {
        "applepay_sim": ScriptedProcessor("applepay_sim", (OK,)),
        "stripe_sim": ScriptedProcessor("stripe_sim", (card,)),
        "adyen_sim": ScriptedProcessor("adyen_sim", (OK,)),
    }


def compensations(events: list[DomainEvent]) -> list[tuple[int, str, int, bool]]:
    issued = [e for e in events if type(e) is CompensationIssued]
    return [(c.step_index, c.processor_id, c.amount, c.succeeded) for c in issued]


@pytest.mark.parametrize("card", [OVERCHARGE, TIMEOUT_OVERCHARGED, WRONG_CURRENCY])
async def test_a_single_step_charged_otherwise_than_asked_fails_and_is_voided_in_full(card: str) -> None:
    fakes = processors(card)
    setup = rig(fakes)

    result = await setup.service.pay(request(4000, payment_method=PaymentMethod.CARD))

    assert result.status is PaymentStatus.FAILED
    (step,) = result.step_results
    assert (step.processor_id, step.success, step.amount_processed) == ("stripe_sim", False, 0)
    assert result.total_processed == 0
    assert "processor/malformed" in setup.sink.contract_ids()
    assert fakes["stripe_sim"].held == {}  # all of it refunded, not just the 4000 asked for
    held = 40_000 if card != WRONG_CURRENCY else 4000
    assert fakes["stripe_sim"].refunded == {KEY_0: held}
    assert compensations(setup.sink.events) == [(0, "stripe_sim", held, True)]
    assert fakes["adyen_sim"].calls == 0  # never cascaded while the stray charge was not undone
    assert len(fakes["stripe_sim"].charges) == 1  # nor retried: the key would find the same charge


@pytest.mark.parametrize("policy", [PartialPolicy.ALL_OR_NOTHING, PartialPolicy.ALLOW_PARTIAL])
async def test_a_split_whose_card_step_overcharged_leaves_nothing_of_it_charged(
    policy: PartialPolicy,
) -> None:
    fakes = processors(OVERCHARGE)
    setup = rig(fakes, merchant(policy))

    result = await setup.service.pay(request(10_000))

    first, second = result.step_results
    assert not second.success
    assert second.error_code is ErrorCode.MALFORMED_RESPONSE
    assert fakes["stripe_sim"].held == {}
    assert fakes["stripe_sim"].refunded == {KEY_1: 40_000}
    if policy is PartialPolicy.ALL_OR_NOTHING:
        assert result.status is PaymentStatus.FAILED
        assert first.compensated
        assert fakes["applepay_sim"].held == {}
        assert result.total_processed == 0
    else:
        assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
        assert result.total_processed == 6000
        assert fakes["applepay_sim"].held == {KEY_0: 6000}


async def _crashed_after_the_overcharge(fakes: dict[str, ScriptedProcessor]) -> list[DomainEvent]:
    """The split's events up to the card step's StepAttempted: the crash came before its answer
    was recorded (and so before anything was voided)."""
    setup = rig(fakes)
    await setup.service.pay(request(10_000))
    events = setup.sink.events
    at = next(i for i, e in enumerate(events) if type(e) is StepAttempted and e.step_index == 1)
    fakes["stripe_sim"].held[KEY_1] = 40_000  # as it stood at the crash
    fakes["stripe_sim"].refunded.clear()
    fakes["applepay_sim"].held[KEY_0] = 6000
    fakes["applepay_sim"].refunded.clear()
    return events[: at + 1]


async def test_recovery_does_not_count_an_overcharge_and_voids_it_in_full() -> None:
    fakes = processors(OVERCHARGE)
    events = await _crashed_after_the_overcharge(fakes)
    restarted = rig(fakes)
    adapters: dict[ProcessorId, Processor] = {ProcessorId(name): p for name, p in fakes.items()}

    recovered = await recover_payment(
        events,
        service=restarted.service,
        processors=adapters,
        merchant=merchant(),
        sink=restarted.sink,
        clock=restarted.clock,
    )

    result: CompositeResult = recovered.result
    assert result.status is PaymentStatus.FAILED
    assert result.step_results[1].error_code is ErrorCode.MALFORMED_RESPONSE
    assert result.total_processed == 0
    assert fakes["stripe_sim"].held == fakes["applepay_sim"].held == {}
    assert fakes["stripe_sim"].refunded == {KEY_1: 40_000}
    assert "processor/malformed" in restarted.sink.contract_ids()
    assert restarted.sink.types()[0] == "StepFailed"  # the cut-off attempt's outcome, not a success
