"""Crash recovery with the real Stripe adapter while Stripe's Search API lags behind: the seed split
($60 by Apple Pay, $40 by card, both at Stripe), cut off before the second step's outcome was
recorded, then finished by a restarted engine whose adapter remembers nothing."""

import pytest

from engine.events import CompensationIssued, DomainEvent, StepAttempted
from engine.recovery import Recovered, Unsettled, recover_payment
from engine.results import PaymentStatus
from tests.engine.harness import request
from tests.ingest.fake_stripe import FakeStripe
from tests.ingest.stripe_engine import STRIPE, engine_with_stripe

KEY_0, KEY_1 = "pay_1:step:0", "pay_1:step:1"


async def _crashed_split(fake_stripe: FakeStripe) -> list[DomainEvent]:
    """The split's events up to the second step's StepAttempted; Stripe charged both steps."""
    async with engine_with_stripe(fake_stripe, card_chain=(STRIPE,), applepay_chain=(STRIPE,)) as first:
        paid = await first.service.pay(request(10_000))
        assert paid.status is PaymentStatus.SUCCEEDED
        events = first.sink.events
    at = next(i for i, e in enumerate(events) if type(e) is StepAttempted and e.step_index == 1)
    return events[: at + 1]


async def _recover(fake_stripe: FakeStripe, events: list[DomainEvent]) -> tuple[Recovered, list[DomainEvent]]:
    async with engine_with_stripe(fake_stripe, card_chain=(STRIPE,), applepay_chain=(STRIPE,)) as restarted:
        recovered = await recover_payment(
            events,
            service=restarted.service,
            processors=restarted.processors,
            merchant=restarted.merchant,
            sink=restarted.sink,
            clock=restarted.clock,
        )
        return recovered, restarted.sink.events


def _charges(fake_stripe: FakeStripe) -> list[tuple[int, int]]:
    """(amount, amount refunded) of every charge Stripe made, oldest first."""
    return [(c["amount"], c["amount_refunded"]) for c in fake_stripe.charges.values()]


async def test_a_charge_the_search_does_not_show_yet_completes_the_payment(fake_stripe: FakeStripe) -> None:
    fake_stripe.search_visible = False
    events = await _crashed_split(fake_stripe)

    recovered, recorded = await _recover(fake_stripe, events)

    assert recovered.result.status is PaymentStatus.SUCCEEDED
    assert recovered.result.total_processed == 10_000
    assert [type(e).__name__ for e in recorded] == ["StepSucceeded", "PaymentCompleted"]
    assert _charges(fake_stripe) == [(6000, 0), (4000, 0)]


async def test_a_step_that_never_reached_stripe_fails_the_payment_with_a_real_refund(
    fake_stripe: FakeStripe,
) -> None:
    fake_stripe.search_visible = False
    events = await _crashed_split(fake_stripe)
    fake_stripe.forget(KEY_1)  # the crash came before the second charge was sent

    recovered, recorded = await _recover(fake_stripe, events)

    assert recovered.result.status is PaymentStatus.FAILED
    assert recovered.result.total_processed == 0
    assert _charges(fake_stripe) == [(6000, 6000)]  # refunded at Stripe, not just reported so
    issued = [e for e in recorded if type(e) is CompensationIssued]
    assert [(e.step_index, e.amount, e.succeeded) for e in issued] == [(0, 6000, True)]


async def test_a_charge_that_cannot_be_found_yet_leaves_the_payment_for_the_next_start(
    fake_stripe: FakeStripe,
) -> None:
    fake_stripe.search_visible = False
    events = await _crashed_split(fake_stripe)
    for intent in fake_stripe.payment_intents.values():
        intent["created"] -= 2 * 3600  # beyond the adapter's list window, and not searchable

    with pytest.raises(Unsettled):
        await _recover(fake_stripe, events)
    assert _charges(fake_stripe) == [(6000, 0), (4000, 0)]  # nothing undone on a guess

    fake_stripe.search_visible = True  # the next start: the index has caught up
    recovered, recorded = await _recover(fake_stripe, events)

    assert recovered.result.status is PaymentStatus.SUCCEEDED
    assert [type(e).__name__ for e in recorded] == ["StepSucceeded", "PaymentCompleted"]
