"""Settling a key after a restart (a new adapter that remembers nothing) while Stripe's Search API
lags: an empty search never means "not charged" nor "nothing to refund"."""

from collections.abc import AsyncIterator

import pytest

from engine.error_codes import ErrorCode
from engine.processor import Settlement
from ingest.processors.stripe_adapter import StripeProcessor
from ingest.processors.stripe_lookup import PROBE_METADATA_KEY
from tests.ingest.fake_stripe import FakeStripe
from tests.ingest.stripe_requests import API_KEY, KEY, charge_request, config, refund_request


@pytest.fixture
async def before_the_crash(fake_stripe: FakeStripe) -> AsyncIterator[StripeProcessor]:
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=5.0) as processor:
        yield processor


@pytest.fixture
async def after_the_restart(fake_stripe: FakeStripe) -> AsyncIterator[StripeProcessor]:
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=5.0) as processor:
        yield processor


def probes(fake_stripe: FakeStripe) -> list[dict[str, object]]:
    return [i for i in fake_stripe.payment_intents.values() if PROBE_METADATA_KEY in i["metadata"]]


async def test_a_charge_the_search_does_not_show_yet_is_found_and_refunded_after_a_restart(
    fake_stripe: FakeStripe, before_the_crash: StripeProcessor, after_the_restart: StripeProcessor
) -> None:
    fake_stripe.search_visible = False
    assert (await before_the_crash.charge(charge_request())).success

    status = await after_the_restart.status(KEY)
    refunded = await after_the_restart.void_or_refund(refund_request())

    assert (status.settlement, status.amount_cents) == (Settlement.CHARGED, 1250)
    assert (refunded.success, refunded.amount_cents) == (True, 1250)
    assert [refund["amount"] for refund in fake_stripe.refunds.values()] == [1250]
    assert (await after_the_restart.status(KEY)).settlement is Settlement.REFUNDED
    assert probes(fake_stripe) == []


async def test_the_charge_is_found_among_many_newer_intents(
    fake_stripe: FakeStripe, before_the_crash: StripeProcessor, after_the_restart: StripeProcessor
) -> None:
    fake_stripe.search_visible = False
    await before_the_crash.charge(charge_request())
    for number in range(150):  # other payments since: the key's intent is on the list's second page
        await before_the_crash.charge(charge_request(f"pay_{number}:step:0"))

    status = await after_the_restart.status(KEY)

    assert (status.settlement, status.amount_cents) == (Settlement.CHARGED, 1250)


async def test_a_declined_charge_the_search_does_not_show_yet_is_not_charged(
    fake_stripe: FakeStripe, before_the_crash: StripeProcessor, after_the_restart: StripeProcessor
) -> None:
    fake_stripe.search_visible = False
    await before_the_crash.charge(charge_request(card="4000000000000002"))

    assert (await after_the_restart.status(KEY)).settlement is Settlement.NOT_CHARGED
    assert (await after_the_restart.void_or_refund(refund_request())).amount_cents == 0
    assert probes(fake_stripe) == []


async def test_a_key_that_never_reached_stripe_is_proven_uncharged_and_can_never_charge(
    fake_stripe: FakeStripe, before_the_crash: StripeProcessor, after_the_restart: StripeProcessor
) -> None:
    first = await after_the_restart.status(KEY)
    again = await after_the_restart.status(KEY)
    undone = await after_the_restart.void_or_refund(refund_request())
    late = await before_the_crash.charge(charge_request())  # the crashed process's request, arriving late

    assert first.settlement is again.settlement is Settlement.NOT_CHARGED
    assert (undone.success, undone.amount_cents) == (True, 0)
    (probe,) = probes(fake_stripe)  # sent once, then replayed; never confirmed, and cancelled
    assert (probe["status"], probe["amount"], probe["currency"]) == ("canceled", 100, "usd")
    assert late.error_code is ErrorCode.UNKNOWN  # Stripe refuses the key now taken by the probe
    assert fake_stripe.intents_with_status("succeeded") == []
    assert fake_stripe.refunds == {}


async def test_a_used_key_whose_intent_cannot_be_found_is_unknown_and_nothing_is_refunded(
    fake_stripe: FakeStripe, before_the_crash: StripeProcessor, after_the_restart: StripeProcessor
) -> None:
    fake_stripe.search_visible = False
    await before_the_crash.charge(charge_request())
    for intent in fake_stripe.payment_intents.values():
        intent["created"] -= 2 * 3600  # older than the list's window, and still not searchable

    status = await after_the_restart.status(KEY)
    refunded = await after_the_restart.void_or_refund(refund_request())

    assert status.settlement is Settlement.UNKNOWN
    assert refunded.error_code is ErrorCode.UNKNOWN  # never "nothing to undo"
    assert fake_stripe.refunds == {}
    assert probes(fake_stripe) == []  # Stripe refused the probe: the key was used

    fake_stripe.search_visible = True  # the index catches up
    assert (await after_the_restart.status(KEY)).settlement is Settlement.CHARGED


async def test_without_the_list_a_used_key_is_unknown_and_an_unused_one_still_proven(
    fake_stripe: FakeStripe, before_the_crash: StripeProcessor, after_the_restart: StripeProcessor
) -> None:
    fake_stripe.search_visible = False
    fake_stripe.list_fails = True
    await before_the_crash.charge(charge_request())

    used = await after_the_restart.status(KEY)
    unused = await after_the_restart.status("pay_2:step:0")

    assert used.settlement is Settlement.UNKNOWN
    assert unused.settlement is Settlement.NOT_CHARGED
