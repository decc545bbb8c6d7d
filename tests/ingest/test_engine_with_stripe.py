"""The orchestrator with a real Stripe adapter (official SDK) against the fake Stripe API.

ApplePay goes to a simulated processor, the card step to Stripe over loopback HTTP.
"""

from collections.abc import AsyncIterator

import pytest

from engine.circuit_breaker import BreakerPolicy, CircuitState
from engine.decline_codes import DeclineCode
from engine.error_codes import ErrorCode
from engine.events import StepAttempted, StepFailed
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.results import PaymentStatus
from tests.engine.harness import request
from tests.ingest.fake_stripe import FakeStripe
from tests.ingest.stripe_engine import ADYEN, APPLE, STRIPE, Setup, engine_with_stripe


@pytest.fixture
async def setup(fake_stripe: FakeStripe) -> AsyncIterator[Setup]:
    async with engine_with_stripe(fake_stripe) as built:
        yield built


def card(number: str) -> dict[str, str]:
    return {"card_number": number}


async def test_the_seed_split_charges_applepay_and_stripe(setup: Setup, fake_stripe: FakeStripe) -> None:
    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))
    assert result.status is PaymentStatus.SUCCEEDED
    assert [(s.processor_id, s.amount_processed) for s in result.step_results] == [
        (APPLE, 6000),
        (STRIPE, 4000),
    ]
    succeeded = fake_stripe.intents_with_status("succeeded")
    assert [intent["amount"] for intent in succeeded] == [4000]
    assert setup.ledger.held_cents(result.payment_id) == 6000


async def test_a_stripe_decline_refunds_the_applepay_step(setup: Setup, fake_stripe: FakeStripe) -> None:
    result = await setup.service.pay(request(10_000, metadata=card("400000******9995")))
    assert result.status is PaymentStatus.FAILED
    assert result.final_error is ErrorCode.DECLINED
    assert result.step_results[0].compensated
    assert setup.ledger.held_cents(result.payment_id) == 0
    assert fake_stripe.intents_with_status("succeeded") == []


@pytest.mark.parametrize(
    ("metadata", "code", "decline_code"),
    [
        (card("400000******0002"), ErrorCode.DECLINED, DeclineCode.GENERIC_DECLINE),
        (card("400000******9995"), ErrorCode.DECLINED, DeclineCode.INSUFFICIENT_FUNDS),
        (card("400000******9987"), ErrorCode.DECLINED, DeclineCode.LOST_CARD),
        (card("400000******9979"), ErrorCode.DECLINED, DeclineCode.STOLEN_CARD),
        (card("400000******0069"), ErrorCode.INVALID_CARD, DeclineCode.EXPIRED_CARD),
        (card("400000******0127"), ErrorCode.INVALID_CARD, DeclineCode.INCORRECT_CVC),
        (card("4242424242424241"), ErrorCode.INVALID_CARD, DeclineCode.INCORRECT_NUMBER),
        (
            {"payment_method": "pm_card_visa_chargeDeclinedFraudulent"},
            ErrorCode.DECLINED,
            DeclineCode.FRAUDULENT,
        ),
        (
            {"payment_method": "pm_card_authenticationRequired"},
            ErrorCode.DECLINED,
            DeclineCode.AUTHENTICATION_REQUIRED,
        ),
        # A reason outside payorch's list never reaches the merchant as Stripe wrote it.
        (
            {"payment_method": "pm_test_chargeDeclinedUnlistedReason"},
            ErrorCode.DECLINED,
            DeclineCode.GENERIC_DECLINE,
        ),
    ],
)
async def test_the_decline_code_stripe_sent_is_the_steps_and_its_events(
    setup: Setup, metadata: dict[str, str], code: ErrorCode, decline_code: DeclineCode
) -> None:
    result = await setup.service.pay(request(10_000, metadata=metadata))

    stripe_step = result.step_results[1]
    assert (stripe_step.processor_id, stripe_step.error_code) == (STRIPE, code)
    assert stripe_step.decline_code is decline_code
    failed = [
        (e.processor_id, e.error_code, e.decline_code) for e in setup.sink.events if type(e) is StepFailed
    ]
    assert failed == [(STRIPE, code, decline_code)]


async def test_a_stripe_500_is_settled_then_retried_under_the_same_key(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next(1, status=500)
    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.step_results[1].attempts == 2
    assert len(fake_stripe.intents_with_status("succeeded")) == 1


async def test_a_stripe_500_it_says_not_to_retry_is_not_retried_and_left_in_doubt(
    fake_stripe: FakeStripe,
) -> None:
    # Stripe-Should-Retry: false: Stripe stored the 500 under the key, a repeat would only replay it.
    fake_stripe.fail_next(1, status=500, should_retry=False)
    async with engine_with_stripe(fake_stripe, card_chain=(STRIPE, ADYEN)) as setup:
        result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))

        stripe_step = result.step_results[1]
        assert result.status is PaymentStatus.FAILED
        assert (stripe_step.processor_id, stripe_step.error_code) == (STRIPE, ErrorCode.PROCESSOR_ERROR)
        assert stripe_step.attempts == 1  # no repeat with the key, whose answer cannot change
        attempted = [e for e in setup.sink.events if type(e) is StepAttempted]
        assert [(e.step_index, e.processor_id) for e in attempted] == [(0, APPLE), (1, STRIPE)]
        # The outcome is unknown: never cascaded to Adyen, left in doubt as an exhausted retry is.
        assert "router/retry-exhausted" in setup.sink.contract_ids()
    creates = [r for r in fake_stripe.requests if (r.method, r.path) == ("POST", "/v1/payment_intents")]
    assert [(r.status, r.replayed) for r in creates if r.status == 500] == [(500, False)]  # none replayed


async def test_an_amount_stripe_cannot_take_is_refused_before_any_attempt(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    # 1.234 BHD: Stripe takes BHD in steps of 0.010.
    result = await setup.service.pay(
        request(1234, currency=Currency("BHD"), payment_method=PaymentMethod.CARD)
    )

    assert (result.status, result.final_error, result.step_results) == (
        PaymentStatus.FAILED,
        ErrorCode.POLICY_REJECTED,
        (),
    )
    assert [e for e in setup.sink.events if type(e) in (StepAttempted, StepFailed)] == []
    assert fake_stripe.requests == []


async def test_an_amount_stripe_cannot_take_is_charged_by_the_next_processor_of_the_chain(
    fake_stripe: FakeStripe,
) -> None:
    async with engine_with_stripe(fake_stripe, card_chain=(STRIPE, ADYEN)) as setup:
        result = await setup.service.pay(
            request(1234, currency=Currency("BHD"), payment_method=PaymentMethod.CARD)
        )

        assert result.status is PaymentStatus.SUCCEEDED
        assert [(s.processor_id, s.attempts) for s in result.step_results] == [(ADYEN, 1)]
    assert fake_stripe.requests == []


async def test_a_stripe_timeout_whose_charge_went_through_is_not_charged_again(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    fake_stripe.hang_next(3.0)
    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))
    assert result.status is PaymentStatus.SUCCEEDED
    assert len(fake_stripe.intents_with_status("succeeded")) == 1
    assert "router/timeout" in setup.sink.contract_ids()


async def test_a_stripe_charge_still_in_progress_is_left_in_doubt_not_failed_as_refused(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    fake_stripe.delay_next(30.0)  # the create outlives the merchant's timeout: every repeat is a 409

    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))

    stripe_step = result.step_results[1]
    assert result.status is PaymentStatus.FAILED
    assert (stripe_step.error_code, stripe_step.attempts) == (ErrorCode.PROCESSOR_ERROR, 3)
    creates = [r for r in fake_stripe.requests if (r.method, r.path) == ("POST", "/v1/payment_intents")]
    assert [r.status for r in creates] == [409, 409]  # the first create is still held back, unanswered
    # Stripe may still charge the first create: the payment is flagged, never quietly failed.
    assert "orchestrator/compensation-failed" in setup.sink.contract_ids()


@pytest.mark.parametrize("forbidden", [False, True])
async def test_refused_stripe_credentials_fall_back_to_the_next_processor(
    fake_stripe: FakeStripe, forbidden: bool
) -> None:
    fake_stripe.forbidden = forbidden
    api_key = "sk_test_restricted_4321" if forbidden else "rk_test_revoked_4321"
    one_fault = BreakerPolicy(failure_threshold=1)
    async with engine_with_stripe(
        fake_stripe, api_key=api_key, card_chain=(STRIPE, ADYEN), breaker=one_fault
    ) as setup:
        result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))

        assert result.status is PaymentStatus.SUCCEEDED
        assert [(s.processor_id, s.amount_processed) for s in result.step_results] == [
            (APPLE, 6000),
            (ADYEN, 4000),
        ]
        failed = [e for e in setup.sink.events if type(e) is StepFailed]
        assert [(e.processor_id, e.error_code) for e in failed] == [(STRIPE, ErrorCode.PROCESSOR_UNAVAILABLE)]
        assert setup.breakers[STRIPE].state is CircuitState.OPEN  # the refusal counted as a fault
        assert "4321" not in repr(setup.sink.events) + repr(setup.sink.violations)
    assert fake_stripe.payment_intents == {}


@pytest.mark.parametrize(
    ("factor", "currency", "refunded"), [(10, None, 40_000), (1, "eur", 4000)], ids=["amount", "currency"]
)
async def test_a_stripe_charge_that_is_not_the_one_asked_for_is_refunded_in_full(
    setup: Setup, fake_stripe: FakeStripe, factor: int, currency: str | None, refunded: int
) -> None:
    fake_stripe.overcharge_factor, fake_stripe.charge_currency = factor, currency

    single = await setup.service.pay(request(4000, "pay_single", payment_method=PaymentMethod.CARD))
    split = await setup.service.pay(request(10_000, "pay_split", metadata=card("424242******4242")))

    for result in (single, split):
        assert result.status is PaymentStatus.FAILED
        assert result.total_processed == 0
        assert result.step_results[-1].error_code is ErrorCode.MALFORMED_RESPONSE
    assert setup.ledger.held_cents(split.payment_id) == 0  # the ApplePay step was compensated
    charges = [fake_stripe.charges[i["latest_charge"]] for i in fake_stripe.payment_intents.values()]
    assert [(c["amount"], c["amount_refunded"], c["refunded"]) for c in charges] == [
        (refunded, refunded, True)
    ] * 2
    assert setup.sink.contract_ids().count("processor/malformed") == 2


async def test_a_charge_stripe_only_authorized_is_captured_and_counted(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    fake_stripe.authorize_only = True

    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))

    assert result.status is PaymentStatus.SUCCEEDED
    assert [(i["status"], i["amount_received"]) for i in fake_stripe.payment_intents.values()] == [
        ("succeeded", 4000)
    ]


async def test_an_authorization_that_cannot_be_captured_is_cancelled_not_counted(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    fake_stripe.authorize_only = fake_stripe.capture_fails = True

    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))

    assert result.status is PaymentStatus.FAILED
    assert result.total_processed == 0
    assert setup.ledger.held_cents(result.payment_id) == 0
    assert [i["status"] for i in fake_stripe.payment_intents.values()] == ["canceled"]  # no hold left


async def test_a_stripe_processing_error_moves_on_to_the_next_processor_at_once(
    fake_stripe: FakeStripe,
) -> None:
    # Stripe stores the card error under the key: retrying there would only replay it.
    failing = {"payment_method": "pm_card_chargeDeclinedProcessingError"}
    async with engine_with_stripe(fake_stripe, card_chain=(STRIPE, ADYEN)) as setup:
        result = await setup.service.pay(request(10_000, metadata=failing))

    assert result.status is PaymentStatus.SUCCEEDED
    assert (result.step_results[1].processor_id, result.step_results[1].attempts) == (ADYEN, 2)
    assert [(r.path, r.status, r.replayed) for r in fake_stripe.requests] == [
        ("/v1/payment_intents", 402, False)
    ]


async def test_a_stripe_429_is_retried_after_a_backoff_under_the_same_key(
    setup: Setup, fake_stripe: FakeStripe
) -> None:
    # Stripe's 429 charged nothing and asks to back off and retry: a card chain of Stripe alone
    # must not fail the step on it.
    fake_stripe.fail_next(1, status=429)

    result = await setup.service.pay(request(10_000, metadata=card("424242******4242")))

    assert result.status is PaymentStatus.SUCCEEDED
    assert (result.step_results[1].processor_id, result.step_results[1].attempts) == (STRIPE, 2)
    creates = [r for r in fake_stripe.requests if (r.method, r.path) == ("POST", "/v1/payment_intents")]
    assert [(r.status, r.replayed) for r in creates] == [(429, False), (200, False)]
    assert len({r.idempotency_key for r in creates}) == 1
    assert len(fake_stripe.intents_with_status("succeeded")) == 1
