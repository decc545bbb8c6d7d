"""Stripe's scale for ISK, UGX, MGA and the three-decimal currencies, both ways (table, then wire)."""

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.error_codes import ErrorCode
from engine.money import Currency
from engine.processor import Settlement
from ingest.processors.errors import MalformedProcessorResponseError, UnsupportedAmountError
from ingest.processors.stripe_adapter import UNSUPPORTED_AMOUNT, StripeProcessor
from ingest.processors.stripe_amounts import SPECIAL_CURRENCIES, from_stripe, to_stripe, to_stripe_cap
from tests.ingest.fake_stripe import FakeStripe
from tests.ingest.stripe_requests import API_KEY, KEY, charge_request, config, refund_request


@pytest.fixture
async def stripe(fake_stripe: FakeStripe) -> AsyncIterator[StripeProcessor]:
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=5.0) as processor:
        yield processor


@pytest.mark.parametrize(
    ("code", "minor", "sent"),
    [
        ("USD", 1250, 1250),
        ("JPY", 500, 500),
        ("EUR", 1, 1),
        ("HUF", 1234, 1234),  # Stripe's HUF and TWD special cases are about payouts only
        ("ISK", 5000, 500000),  # 5000 ISK: whole units, written with two decimals
        ("UGX", 7, 700),
        ("MGA", 10000, 100),  # 100 MGA: ISO 4217 says two decimals, Stripe none
        ("KWD", 1230, 1230),  # 1.230 KWD: three decimals, the last one 0
        ("BHD", 10, 10),
    ],
)
def test_amounts_are_sent_in_stripe_units_and_read_back(code: str, minor: int, sent: int) -> None:
    currency = Currency(code)

    assert to_stripe(minor, currency) == sent
    assert from_stripe(sent, currency, "amount") == minor


@pytest.mark.parametrize(
    ("code", "minor"), [("KWD", 1235), ("JOD", 1), ("OMR", 999), ("TND", 1001), ("MGA", 12345)]
)
def test_an_amount_stripe_cannot_take_exactly_is_refused(code: str, minor: int) -> None:
    with pytest.raises(UnsupportedAmountError, match=code):
        to_stripe(minor, Currency(code))


@pytest.mark.parametrize(("code", "amount"), [("ISK", 500050), ("UGX", 1)])
def test_a_stripe_amount_that_is_not_whole_minor_units_is_malformed(code: str, amount: int) -> None:
    with pytest.raises(MalformedProcessorResponseError):
        from_stripe(amount, Currency(code), "payment_intent.amount_received")


@given(st.sampled_from(sorted(SPECIAL_CURRENCIES)), st.integers(min_value=0, max_value=10**12))
def test_a_cap_is_the_largest_amount_stripe_takes_within_it(code: str, minor: int) -> None:
    currency = Currency(code)
    cap = to_stripe_cap(minor, currency)

    assert from_stripe(cap, currency, "cap") <= minor
    assert to_stripe(from_stripe(cap, currency, "cap"), currency) == cap  # Stripe takes it exactly


async def test_an_isk_charge_is_sent_with_two_decimals_and_reported_in_iso_units(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    charged = await stripe.charge(charge_request(amount=5000, currency="ISK"))
    status = await stripe.status(KEY)
    refunded = await stripe.void_or_refund(refund_request(amount=5000, currency="ISK"))

    (intent,) = fake_stripe.payment_intents.values()
    assert (intent["amount"], intent["currency"]) == (500000, "isk")
    assert charged.success
    assert charged.amount_cents == 5000
    assert (status.settlement, status.amount_cents) == (Settlement.CHARGED, 5000)
    assert (refunded.success, refunded.amount_cents) == (True, 5000)
    assert [refund["amount"] for refund in fake_stripe.refunds.values()] == [500000]


async def test_an_mga_charge_is_sent_in_whole_ariary(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    charged = await stripe.charge(charge_request(amount=250000, currency="MGA"))

    (intent,) = fake_stripe.payment_intents.values()
    assert intent["amount"] == 2500
    assert charged.amount_cents == 250000


async def test_a_three_decimal_amount_ending_in_0_is_charged_as_it_is(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    charged = await stripe.charge(charge_request(amount=5120, currency="KWD"))

    (intent,) = fake_stripe.payment_intents.values()
    assert (intent["amount"], charged.amount_cents) == (5120, 5120)


@pytest.mark.parametrize(("code", "minor"), [("KWD", 5124), ("MGA", 250050)])
async def test_an_amount_stripe_cannot_take_is_refused_before_anything_is_sent(
    stripe: StripeProcessor, fake_stripe: FakeStripe, code: str, minor: int
) -> None:
    response = await stripe.charge(charge_request(amount=minor, currency=code))

    assert response.error_code is ErrorCode.POLICY_REJECTED
    assert response.decline_code == UNSUPPORTED_AMOUNT
    assert fake_stripe.requests == []


async def test_a_charge_in_another_currency_is_reported_in_that_currency(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.charge_currency = "isk"

    charged = await stripe.charge(charge_request(amount=1250, currency="USD"))
    status = await stripe.status(KEY)

    # 1250 was sent; Stripe charged 12.50 ISK-units, which are 12 ISK and a fraction: unreadable as
    # ISK minor units, so the answer is malformed (outcome unknown), and so is the status.
    assert charged.error_code is ErrorCode.MALFORMED_RESPONSE
    assert status.settlement is Settlement.UNKNOWN


async def test_a_charge_in_another_two_decimal_currency_names_it(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.charge_currency = "eur"

    charged = await stripe.charge(charge_request(amount=1250, currency="USD"))
    status = await stripe.status(KEY)
    voided = await stripe.void_or_refund(refund_request(amount=2**63 - 1))  # all the key holds

    assert (charged.success, charged.amount_cents, charged.currency) == (True, 1250, Currency("EUR"))
    assert (status.settlement, status.amount_cents, status.currency) == (
        Settlement.CHARGED,
        1250,
        Currency("EUR"),
    )
    assert (voided.amount_cents, voided.currency) == (1250, Currency("EUR"))
    assert [refund["amount"] for refund in fake_stripe.refunds.values()] == [1250]
