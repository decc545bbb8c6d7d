"""Classifying failed Stripe calls: the cases the fake server cannot produce on demand."""

import httpx
import pytest
import stripe

from engine.error_codes import ErrorCode, RetryClass
from ingest.processors.errors import MalformedProcessorResponseError
from ingest.processors.stripe_failure import Failure, classify_failure, refusal_line


def connection_error(cause: Exception) -> stripe.APIConnectionError:
    # APIConnectionError.__init__ carries no annotations in stripe 16.1.
    error = stripe.APIConnectionError("network error", should_retry=True)  # type: ignore[no-untyped-call]
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "cause",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow connect"), httpx.PoolTimeout("pool")],
)
def test_a_request_that_never_left_is_a_network_failure(cause: Exception) -> None:
    assert classify_failure(connection_error(cause)) == Failure(ErrorCode.NETWORK_FAILURE)


@pytest.mark.parametrize(
    "cause",
    [httpx.ReadTimeout("slow answer"), httpx.WriteTimeout("slow upload"), httpx.ReadError("reset")],
)
def test_a_request_that_may_have_arrived_is_a_timeout_in_doubt(cause: Exception) -> None:
    assert classify_failure(connection_error(cause)) == Failure(ErrorCode.TIMEOUT, in_doubt=True)


def test_a_5xx_is_an_unknown_outcome_whatever_its_body() -> None:
    failure = classify_failure(stripe.APIError("bad gateway", "<html>", 502))

    assert failure == Failure(ErrorCode.PROCESSOR_ERROR, in_doubt=True)


def test_a_2xx_body_that_is_not_stripe_json_is_malformed() -> None:
    failure = classify_failure(stripe.APIError("Invalid response body from API", "{", 200))

    assert failure == Failure(ErrorCode.MALFORMED_RESPONSE, in_doubt=True)


def test_an_answer_missing_fields_is_malformed() -> None:
    failure = classify_failure(MalformedProcessorResponseError("payment_intent.status", "missing"))

    assert failure.code is ErrorCode.MALFORMED_RESPONSE


def test_a_refusal_by_stripe_is_unknown_and_charged_nothing() -> None:
    error = stripe.IdempotencyError("keys reused", None, 400, {"error": {"type": "idempotency_error"}})

    assert classify_failure(error) == Failure(ErrorCode.UNKNOWN)


@pytest.mark.parametrize(
    "error",
    [
        stripe.AuthenticationError("Invalid API Key provided: sk_live_****1234", None, 401),
        stripe.PermissionError("The provided key 'rk_live_****1234' lacks permissions", None, 403),
    ],
)
def test_refused_credentials_make_stripe_unavailable_so_the_step_falls_back(
    error: stripe.StripeError,
) -> None:
    failure = classify_failure(error)

    assert failure == Failure(ErrorCode.PROCESSOR_UNAVAILABLE)
    assert failure.code.is_processor_fault  # it counts against Stripe's circuit breaker
    assert failure.code.retry_class is RetryClass.CASCADE


def test_any_other_exception_is_unknown_in_doubt() -> None:
    assert classify_failure(RuntimeError("bug")) == Failure(ErrorCode.UNKNOWN, in_doubt=True)


def test_a_refusal_line_names_no_api_key_and_no_card_number() -> None:
    message = "Invalid amount 4000 0000 0000 0002 for sk_live_51HabcDEF and rk_test_9876xyz"
    body = {"error": {"type": "invalid_request_error", "message": message}}
    # InvalidRequestError.__init__ carries no annotations in stripe 16.1.
    error = stripe.InvalidRequestError(message, "amount", "parameter_invalid_integer", None, 400, body)  # type: ignore[no-untyped-call]

    line = refusal_line("stripe_live", error)

    assert line == (
        "stripe processor stripe_live: Stripe refused the request (400 invalid_request_error, code "
        "parameter_invalid_integer, param amount): Invalid amount 400000******0002 for sk_live_**** "
        "and rk_test_****"
    )


@pytest.mark.parametrize(
    "error",
    [
        stripe.CardError("declined", None, "card_declined", None, 402),  # type: ignore[no-untyped-call]
        stripe.RateLimitError("too many", None, 429),
        stripe.APIError("oops", None, 500),
    ],
)
def test_only_a_request_stripe_refused_as_invalid_has_a_refusal_line(error: stripe.StripeError) -> None:
    assert refusal_line("stripe_live", error) is None
