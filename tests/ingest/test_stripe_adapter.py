"""The Stripe adapter against the fake Stripe API: real HTTP over loopback, the official SDK."""

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.resources import Resource

from engine.error_codes import ErrorCode
from engine.observer import ATTEMPT_SPAN
from engine.processor import Processor, Settlement
from ingest.observe.spans import Spans
from ingest.processors import MissingApiKeyError, ProcessorSetupError
from ingest.processors.stripe_adapter import StripeProcessor, stripe_processor_from_config
from ingest.processors.stripe_http import REQUEST_ID
from tests.ingest.fake_stripe import FakeStripe
from tests.ingest.stripe_requests import API_KEY, KEY, charge_request, config, refund_request


@pytest.fixture
async def stripe(fake_stripe: FakeStripe) -> AsyncIterator[StripeProcessor]:
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=5.0) as processor:
        yield processor


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_a_visa_charge_succeeds_with_the_amount_received_and_the_intent_id(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    port: Processor = stripe  # the adapter keeps the engine's port (checked by mypy)

    response = await port.charge(charge_request(card="424242******4242"))

    assert response.success
    assert response.error_code is None
    assert response.amount_cents == 1250
    (intent,) = fake_stripe.payment_intents.values()
    assert response.reference == intent["id"]
    assert intent["currency"] == "usd"
    assert intent["payment_method"] == "pm_card_visa"
    assert intent["metadata"] == {"payment_id": "pay_1", "step_index": "0", "payorch_idempotency_key": KEY}
    assert [r.idempotency_key for r in fake_stripe.requests] == [KEY]
    assert stripe.processor_id == "stripe_live"


@pytest.mark.parametrize(
    ("card", "error_code", "decline_code"),
    [
        ("4000000000000002", ErrorCode.DECLINED, "generic_decline"),
        ("400000******9995", ErrorCode.DECLINED, "insufficient_funds"),
        ("4000 0000 0000 9987", ErrorCode.DECLINED, "lost_card"),
        ("400000******9979", ErrorCode.DECLINED, "stolen_card"),
        ("4000000000000069", ErrorCode.INVALID_CARD, "expired_card"),
        ("400000******0127", ErrorCode.INVALID_CARD, "incorrect_cvc"),
        ("4242424242424241", ErrorCode.INVALID_CARD, "incorrect_number"),
        ("400000******0119", ErrorCode.PROCESSING_ERROR, None),
    ],
)
async def test_a_test_card_fails_with_its_error_and_decline_code_and_charges_nothing(
    stripe: StripeProcessor,
    fake_stripe: FakeStripe,
    card: str,
    error_code: ErrorCode,
    decline_code: str | None,
) -> None:
    response = await stripe.charge(charge_request(card=card))

    assert not response.success
    assert response.error_code is error_code
    assert response.decline_code == decline_code
    assert response.amount_cents == 0
    assert fake_stripe.intents_with_status("succeeded") == []
    assert (await stripe.status(KEY)).settlement is Settlement.NOT_CHARGED


@pytest.mark.parametrize("card", ["400000******0119", "4000000000009995"])
async def test_a_card_error_is_final_for_the_key_since_stripe_replays_it(
    stripe: StripeProcessor, fake_stripe: FakeStripe, card: str
) -> None:
    first = await stripe.charge(charge_request(card=card))
    second = await stripe.charge(charge_request(card=card))

    assert first.final_for_key
    assert (second.error_code, second.decline_code) == (first.error_code, first.decline_code)
    assert fake_stripe.requests[-1].replayed  # the same stored answer, not a new attempt


async def test_a_repeated_decline_is_replayed_not_attempted_again(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    first = await stripe.charge(charge_request(card="4000000000009995"))
    second = await stripe.charge(charge_request(card="4000000000009995"))

    assert (first.error_code, first.decline_code) == (second.error_code, second.decline_code)
    assert first.error_code is ErrorCode.DECLINED
    assert len(fake_stripe.payment_intents) == 1
    assert fake_stripe.requests[-1].replayed


async def test_an_intent_needing_authentication_is_declined(stripe: StripeProcessor) -> None:
    response = await stripe.charge(charge_request(payment_method="pm_card_authenticationRequired"))

    assert response.error_code is ErrorCode.DECLINED
    assert response.decline_code == "authentication_required"


async def test_an_unknown_payment_method_stops_as_unknown(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    response = await stripe.charge(charge_request(payment_method="pm_card_nonexistent"))

    assert response.error_code is ErrorCode.UNKNOWN
    assert fake_stripe.payment_intents == {}


async def test_a_refused_charge_is_told_to_the_operator_once_with_stripes_request_id(
    stripe: StripeProcessor, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    # The WARNING line repeated the type, code, param and message that the step's StepFailed event
    # logs under the same request_id (its failure_details): one copy is enough.
    caplog.set_level(logging.INFO)

    response = await stripe.charge(charge_request(payment_method="pm_4242424242424242"))

    assert response.error_code is ErrorCode.UNKNOWN
    assert [(r.path, r.status) for r in fake_stripe.requests] == [("/v1/payment_intents", 400)]
    assert response.failure_details is not None
    assert response.failure_details.message == "No such PaymentMethod: 'pm_424242******4242'"
    lines = [r for r in caplog.records if r.name == "payorch.processors.stripe"]
    assert [r.levelno for r in lines] == [logging.WARNING]
    assert lines[0].getMessage() == (
        "stripe processor stripe_live: Stripe refused a charge "
        f"(400, request {fake_stripe.requests[0].request_id}): "
        "why is the failure_details of the StepFailed event of this request_id"
    )
    assert "4242" not in caplog.text


async def test_why_stripe_refused_a_refund_is_told_to_the_operator_masked(
    stripe: StripeProcessor, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    # No event carries a refund's reason: its line does, with no card number and no API key.
    assert (await stripe.charge(charge_request())).success
    caplog.set_level(logging.INFO)
    fake_stripe.refuse_next(
        "Invalid value for sk_live_abcdef123456", code="parameter_invalid", param="metadata[4111111111111111]"
    )

    refunded = await stripe.void_or_refund(refund_request())

    assert not refunded.success
    lines = [r.getMessage() for r in caplog.records if r.name == "payorch.processors.stripe"]
    assert lines == [
        "stripe processor stripe_live: Stripe refused the request (400 invalid_request_error, code "
        "parameter_invalid, param metadata[411111******1111], "
        f"request {fake_stripe.requests[-1].request_id}): Invalid value for sk_live_****"
    ]


async def test_a_declined_card_or_a_429_writes_no_refusal_line(
    stripe: StripeProcessor, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake_stripe.fail_next(1, status=429)

    assert (await stripe.charge(charge_request())).error_code is ErrorCode.RATE_LIMITED
    declined = await stripe.charge(charge_request("pay_1:step:1", card="4000000000000002"))

    assert declined.error_code is ErrorCode.DECLINED
    assert [r for r in caplog.records if r.name == "payorch.processors.stripe"] == []


async def test_a_500_is_an_unknown_outcome_and_a_retry_with_the_same_key_charges(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next(1, status=500)

    failed = await stripe.charge(charge_request())
    retried = await stripe.charge(charge_request())

    assert failed.error_code is ErrorCode.PROCESSOR_ERROR
    assert failed.error_code.outcome_unknown
    assert retried.success
    assert len(fake_stripe.payment_intents) == 1


async def test_a_429_is_rate_limited(stripe: StripeProcessor, fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next(1, status=429)

    response = await stripe.charge(charge_request())

    assert response.error_code is ErrorCode.RATE_LIMITED
    assert fake_stripe.payment_intents == {}


async def test_stripes_request_ids_are_kept_on_the_span_of_the_attempt(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    # An operator asking Stripe's support about a call names it by its Request-Id.
    spans = Spans(Resource.create({}), None)
    fake_stripe.authorize_only = True  # a create, then its capture
    with spans.span(ATTEMPT_SPAN, {}) as charged:
        assert (await stripe.charge(charge_request())).success
    fake_stripe.fail_next(1, status=429)
    with spans.span(ATTEMPT_SPAN, {}) as refused:
        assert (await stripe.charge(charge_request("pay_1:step:1"))).error_code is ErrorCode.RATE_LIMITED

    ids = [r.request_id for r in fake_stripe.requests]
    assert [r.status for r in fake_stripe.requests] == [200, 200, 429]
    assert all(i.startswith("req_") for i in ids) and len(set(ids)) == 3
    assert (charged.attributes or {}).get(REQUEST_ID) == f"{ids[0]} {ids[1]}"
    assert (refused.attributes or {}).get(REQUEST_ID) == ids[2]


async def test_a_timeout_is_settled_by_status_and_by_a_repeat_without_a_second_charge(
    fake_stripe: FakeStripe,
) -> None:
    fake_stripe.hang_next(1.0)
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=0.2) as stripe:
        timed_out = await stripe.charge(charge_request())
        settled = await stripe.status(KEY)
        repeated = await stripe.charge(charge_request())

    assert timed_out.error_code is ErrorCode.TIMEOUT
    assert 200 <= timed_out.latency_ms < 1000
    assert settled.settlement is Settlement.CHARGED
    assert settled.amount_cents == 1250
    assert repeated.success
    assert repeated.reference == settled.reference
    assert len(fake_stripe.payment_intents) == 1
    assert fake_stripe.requests[-1].replayed


async def test_a_refused_connection_is_a_network_failure(closed_port_url: str) -> None:
    async with StripeProcessor(config(closed_port_url), API_KEY, timeout_s=1.0) as stripe:
        charged = await stripe.charge(charge_request())
        status = await stripe.status(KEY)
        refunded = await stripe.void_or_refund(refund_request())

    assert charged.error_code is ErrorCode.NETWORK_FAILURE
    assert status.settlement is Settlement.UNKNOWN
    assert refunded.error_code is ErrorCode.NETWORK_FAILURE


@pytest.mark.parametrize("kind", ["truncated", "incomplete"])
async def test_an_unreadable_answer_is_malformed_and_the_charge_can_still_be_settled(
    stripe: StripeProcessor, fake_stripe: FakeStripe, kind: str
) -> None:
    fake_stripe.malform_next("truncated" if kind == "truncated" else "incomplete")

    response = await stripe.charge(charge_request())

    assert response.error_code is ErrorCode.MALFORMED_RESPONSE
    assert (await stripe.status(KEY)).settlement is Settlement.CHARGED


async def test_a_repeated_successful_charge_is_replayed_and_charges_once(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    first = await stripe.charge(charge_request())
    second = await stripe.charge(charge_request())

    assert first.success
    assert second.success
    assert second.reference == first.reference
    assert len(fake_stripe.payment_intents) == 1
    assert [r.replayed for r in fake_stripe.requests] == [False, True]


async def test_the_same_key_with_another_amount_is_refused_without_charging(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    await stripe.charge(charge_request())

    response = await stripe.charge(charge_request(amount=999))

    assert response.error_code is ErrorCode.UNKNOWN
    assert len(fake_stripe.payment_intents) == 1


async def test_a_refunded_charge_reports_refunded(stripe: StripeProcessor, fake_stripe: FakeStripe) -> None:
    await stripe.charge(charge_request())

    refunded = await stripe.void_or_refund(refund_request())
    status = await stripe.status(KEY)

    assert refunded.success
    assert refunded.amount_cents == 1250
    (refund,) = fake_stripe.refunds.values()
    assert refunded.reference == refund["id"]
    assert status.settlement is Settlement.REFUNDED
    assert status.amount_cents == 1250


async def test_refunding_twice_refunds_once(stripe: StripeProcessor, fake_stripe: FakeStripe) -> None:
    await stripe.charge(charge_request())

    first = await stripe.void_or_refund(refund_request())
    second = await stripe.void_or_refund(refund_request())

    assert (first.success, first.amount_cents) == (True, 1250)
    assert (second.success, second.amount_cents) == (True, 0)
    assert len(fake_stripe.refunds) == 1


async def test_refunding_a_key_that_never_charged_succeeds_with_nothing(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    response = await stripe.void_or_refund(refund_request("pay_unknown:step:0"))

    assert (response.success, response.amount_cents) == (True, 0)
    assert fake_stripe.refunds == {}


async def test_an_unknown_key_is_not_charged(stripe: StripeProcessor) -> None:
    assert (await stripe.status("pay_unknown:step:0")).settlement is Settlement.NOT_CHARGED


async def test_status_is_unknown_when_stripe_fails(stripe: StripeProcessor, fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next(1, status=500)

    assert (await stripe.status(KEY)).settlement is Settlement.UNKNOWN


async def test_a_fresh_charge_is_found_and_refunded_while_search_lags(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.search_visible = False
    await stripe.charge(charge_request())

    charged = await stripe.status(KEY)
    refunded = await stripe.void_or_refund(refund_request())

    assert charged.settlement is Settlement.CHARGED
    assert refunded.amount_cents == 1250
    assert (await stripe.status(KEY)).settlement is Settlement.REFUNDED


async def test_a_timed_out_charge_hidden_from_search_is_found_by_the_list_and_refunded(
    fake_stripe: FakeStripe,
) -> None:
    fake_stripe.search_visible = False
    fake_stripe.hang_next(1.0)
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=0.2) as stripe:
        await stripe.charge(charge_request())
        status = await stripe.status(KEY)
        refunded = await stripe.void_or_refund(refund_request())

    assert (status.settlement, status.amount_cents) == (Settlement.CHARGED, 1250)
    assert (refunded.success, refunded.amount_cents) == (True, 1250)
    assert [refund["amount"] for refund in fake_stripe.refunds.values()] == [1250]


async def test_a_timed_out_charge_still_in_flight_is_unknown_not_uncharged(fake_stripe: FakeStripe) -> None:
    fake_stripe.delay_next(1.0)  # the create reaches Stripe only after the client gave up
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=0.2) as stripe:
        timed_out = await stripe.charge(charge_request())
        status = await stripe.status(KEY)
        refunded = await stripe.void_or_refund(refund_request())

    assert timed_out.error_code is ErrorCode.TIMEOUT
    assert status.settlement is Settlement.UNKNOWN
    assert refunded.error_code is ErrorCode.UNKNOWN
    assert fake_stripe.refunds == {}


async def test_a_charge_cancelled_by_the_caller_is_in_doubt(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.delay_next(1.0)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stripe.charge(charge_request()), timeout=0.1)

    assert (await stripe.status(KEY)).settlement is Settlement.UNKNOWN


async def test_a_key_stripe_is_still_carrying_out_is_an_unknown_outcome_to_retry(
    fake_stripe: FakeStripe,
) -> None:
    fake_stripe.delay_next(30.0)  # the first create is still running at Stripe when it is repeated
    # 2 s: the repeat must be answered (409) within the timeout; at 0.2 s a loaded machine timed
    # it out too, and the fake recorded no answer.
    async with StripeProcessor(config(fake_stripe.url), API_KEY, timeout_s=2.0) as stripe:
        timed_out = await stripe.charge(charge_request())
        repeated = await stripe.charge(charge_request())
        status = await stripe.status(KEY)

    assert timed_out.error_code is ErrorCode.TIMEOUT
    assert [(r.status, r.idempotency_key) for r in fake_stripe.requests if r.method == "POST"] == [(409, KEY)]
    # Stripe's 409: the key's first request may still charge, and a later repeat gets its answer.
    assert repeated.error_code is ErrorCode.PROCESSOR_ERROR
    assert repeated.error_code.outcome_unknown
    assert not repeated.final_for_key
    assert status.settlement is Settlement.UNKNOWN


async def test_charges_are_asked_to_capture_automatically(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    await stripe.charge(charge_request())

    (intent,) = fake_stripe.payment_intents.values()
    assert intent["capture_method"] == "automatic"


async def test_an_authorization_stripe_leaves_uncaptured_is_captured_as_the_charge_asked(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.authorize_only = True

    charged = await stripe.charge(charge_request())
    again = await stripe.charge(charge_request())

    assert (charged.success, charged.amount_cents) == (True, 1250)
    (intent,) = fake_stripe.payment_intents.values()
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1250)
    assert fake_stripe.charges[intent["latest_charge"]]["captured"]
    assert (again.success, again.reference) == (True, charged.reference)  # replayed, captured once
    assert (await stripe.status(KEY)).settlement is Settlement.CHARGED


async def test_an_authorization_left_uncaptured_is_not_a_charge_and_is_cancelled_by_a_void(
    stripe: StripeProcessor, fake_stripe: FakeStripe
) -> None:
    fake_stripe.authorize_only = fake_stripe.capture_fails = True
    authorized = await stripe.charge(charge_request())
    assert authorized.error_code is not None
    assert authorized.error_code.outcome_unknown  # money may still move: the router must settle it

    held = await stripe.status(KEY)
    voided = await stripe.void_or_refund(refund_request())

    assert held.settlement is Settlement.UNKNOWN  # authorized only: neither charged nor free
    assert (voided.success, voided.amount_cents) == (True, 1250)
    assert fake_stripe.intents_with_status("canceled") != []
    assert (await stripe.status(KEY)).settlement is Settlement.NOT_CHARGED


@pytest.mark.parametrize("key", ["pay_1:it's\\odd", "pay_ü:step:0", "k" * 255])
async def test_keys_with_quotes_non_ascii_or_full_length_are_charged_and_found(
    stripe: StripeProcessor, fake_stripe: FakeStripe, key: str
) -> None:
    charged = await stripe.charge(charge_request(key))
    fresh = StripeProcessor(config(fake_stripe.url), API_KEY)
    async with fresh:
        status = await fresh.status(key)
        refunded = await fresh.void_or_refund(refund_request(key))

    assert charged.success
    assert status.settlement is Settlement.CHARGED
    assert refunded.amount_cents == 1250


@pytest.mark.parametrize(
    ("api_key", "forbidden"), [("rk_wrong_key_9876", False), ("sk_test_limited_9876", True)]
)
async def test_refused_credentials_are_processor_unavailable_and_never_logged(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, api_key: str, forbidden: bool
) -> None:
    fake_stripe.forbidden = forbidden
    caplog.set_level(logging.DEBUG)
    async with StripeProcessor(config(fake_stripe.url), api_key) as stripe:
        response = await stripe.charge(charge_request())

    assert response.error_code is ErrorCode.PROCESSOR_UNAVAILABLE
    assert fake_stripe.payment_intents == {}
    assert [r.status for r in fake_stripe.requests] == [403 if forbidden else 401]
    assert "9876" not in caplog.text  # Stripe's message names the key (masked but for its end)


@pytest.mark.parametrize(
    ("api_key", "forbidden"), [("rk_wrong_key_9876", False), ("sk_test_limited_9876", True)]
)
async def test_a_refused_key_is_told_to_the_operator_once_a_minute_without_the_key(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, api_key: str, forbidden: bool
) -> None:
    fake_stripe.forbidden = forbidden
    now = [100.0]
    caplog.set_level(logging.INFO)
    async with StripeProcessor(config(fake_stripe.url), api_key, monotonic=lambda: now[0]) as stripe:
        for at in (100.0, 101.0, 159.0, 160.0):
            now[0] = at
            assert (await stripe.charge(charge_request())).error_code is ErrorCode.PROCESSOR_UNAVAILABLE
        await stripe.status(KEY)  # at 160 still: the refusal is counted, not written

    status = 403 if forbidden else 401
    lines = [r.getMessage() for r in caplog.records if r.name == "payorch.processors.stripe"]
    assert len(lines) == 2
    assert lines[0].startswith(f"stripe processor stripe_live: Stripe refused the API key ({status})")
    assert lines[0].endswith("check the key in $STRIPE_API_KEY")
    assert lines[1].endswith("check the key in $STRIPE_API_KEY; 2 more refusals since the last line")
    assert {r.levelno for r in caplog.records if r.name == "payorch.processors.stripe"} == {logging.WARNING}
    assert "9876" not in caplog.text


@pytest.mark.parametrize("library", ["stripe", "httpx"])
async def test_the_sdk_stays_quiet_when_logging_is_turned_up_after_the_processor_is_built(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, library: str
) -> None:
    # payorch serve builds its processors first and lowers the root logger to INFO afterwards; the
    # root's handler writes at once, on the event loop, outside the log pipe.
    library_logger = logging.getLogger(library)
    library_level = library_logger.level
    library_logger.setLevel(logging.NOTSET)  # as in a fresh process
    caplog.set_level(logging.WARNING)
    try:
        async with StripeProcessor(config(fake_stripe.url), "rk_wrong_key_9876") as stripe:
            caplog.set_level(logging.INFO)
            response = await stripe.charge(charge_request())
    finally:
        library_logger.setLevel(library_level)

    assert response.error_code is ErrorCode.PROCESSOR_UNAVAILABLE
    assert [r.name for r in caplog.records if r.name.startswith(library)] == []
    assert "9876" not in caplog.text


async def test_the_factory_reads_the_api_key_from_the_named_variable(fake_stripe: FakeStripe) -> None:
    async with stripe_processor_from_config(config(fake_stripe.url), {"STRIPE_API_KEY": API_KEY}) as stripe:
        assert (await stripe.charge(charge_request())).success


@pytest.mark.parametrize("environ", [{}, {"STRIPE_API_KEY": ""}])
def test_a_missing_api_key_variable_is_an_error_naming_it(environ: dict[str, str]) -> None:
    with pytest.raises(MissingApiKeyError, match="STRIPE_API_KEY") as raised:
        stripe_processor_from_config(config("http://127.0.0.1:9"), environ)

    assert raised.value.variable == "STRIPE_API_KEY"


@pytest.mark.parametrize("api_key", [f"{API_KEY}\n", f" {API_KEY}", f"{API_KEY}\u00a0", "\t"])
def test_an_api_key_with_spaces_or_control_characters_is_refused_unseen(api_key: str) -> None:
    """A key with a trailing newline (a secret mounted from a file) used to fail every charge as a
    ``timeout`` (the header could not be sent), without a word about the key."""
    with pytest.raises(ProcessorSetupError) as raised:
        stripe_processor_from_config(config("http://127.0.0.1:9"), {"STRIPE_API_KEY": api_key})
    assert str(raised.value) == (
        "processors['stripe_live']: the environment variable STRIPE_API_KEY holds spaces, control or "
        "non-ASCII characters (a trailing newline?), which no Stripe key has (the key is not shown)"
    )
