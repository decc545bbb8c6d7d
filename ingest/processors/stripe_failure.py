"""How a failed Stripe call (an exception of the SDK, or anything else) becomes an ``ErrorCode``.

=========================================================  ==========================================
what happened                                              error code
=========================================================  ==========================================
``CardError`` ``card_declined``                            ``declined`` (decline code kept)
``CardError`` expired / incorrect / invalid card details   ``invalid_card``
``CardError`` ``processing_error``                         ``processing_error`` (final for the key)
``RateLimitError`` (HTTP 429)                              ``rate_limited``
``AuthenticationError``, ``PermissionError`` (401, 403)    ``processor_unavailable`` (nothing charged)
``APIError`` with HTTP 5xx                                 ``processor_error`` (the outcome is unknown)
``APIError`` with HTTP 409 (the key's request is running)  ``processor_error`` (the outcome is unknown)
``APIError`` whose body is not a Stripe JSON answer        ``malformed_response``
:class:`MalformedProcessorResponseError`                   ``malformed_response``
``APIConnectionError`` before a connection was made        ``network_failure`` (nothing was sent)
``APIConnectionError`` after (read timeout, reset, ...)    ``timeout`` (the outcome is unknown)
``InvalidRequestError``, ``IdempotencyError`` (400, 404)   ``unknown`` (nothing charged; see below)
anything else                                              ``unknown`` (the outcome is unknown)
=========================================================  ==========================================

A 400 or 404 that is not a card error is Stripe refusing the request itself (an unknown
PaymentMethod, an amount below Stripe's minimum, a parameter the account cannot take): nothing
was charged and a repeat would be refused the same, so the step stops there, with no status
query. The step's error code is ``unknown``, and why Stripe refused it is the merchant's to see as
a Stripe user would: :func:`failure_details` gives Stripe's error type, code, decline code,
parameter and message, masked of card numbers and API keys, for the step's result and its
``StepFailed``; a card error's are given the same way. The operator also gets one WARNING line per
refusal (:func:`refusal_line`): with Stripe's ``Request-Id``, and why only where no event says it (a
status query, a refund); a charge's reason is its ``StepFailed`` line's ``failure_details``, under
the same ``request_id``, which the WARNING line repeated word for word. A refusal of payorch's own
credentials gives no details: its message names the key, and it is no fault of the payment.

Stripe's ``Stripe-Should-Retry: false`` header on an answer says that a repeat of the request
(with the same ``Idempotency-Key``) would only get the same answer: Stripe stored it under the key
(as it does for some 500s). Such a failure is ``final_for_key``: the router stops retrying with the
key at once, and since a 5xx leaves the outcome unknown, it settles the step with ``status`` and
otherwise leaves it in doubt, as after its last attempt (never cascading elsewhere). ``true``
changes nothing: the errors it comes with (409, 429, 5xx) are already retried or moved on.

Every card error settles the key: Stripe stores the 402 under the idempotency key and replays it
to any repeat with that key. So a ``processing_error``, which payorch would retry at the same
processor, is answered ``final_for_key``: the router moves on to the next processor instead of
repeating a request whose answer cannot change (a retry at Stripe would need a new key, and a
second key for the same step would be a second chance to charge it). The decline code is kept in
the answer (``ProcessorResponse.decline_code``).

Stripe refusing payorch's own credentials (a revoked, wrong or restricted API key) says nothing
about the card and charges nothing, but no payment can go through Stripe until an operator acts:
the processor is unusable. So it is ``processor_unavailable``: the step moves on to the next
processor of its chain, and the refusals count against Stripe's circuit breaker. Stripe's message
(which names the key, partly masked) is never kept.

A 409 is Stripe's answer to a request whose ``Idempotency-Key`` an earlier request still holds:
that request is still being carried out (a retry sent after a timeout can overtake it), may yet
charge, and a later repeat with the key gets its answer. So it is an unknown outcome to settle
and retry like a 5xx, never a refusal that proves nothing was charged. (The SDK raises it as a
plain ``APIError``: its ``IdempotencyError`` is only the 400 of a key reused with other
parameters.)

The HTTP client (:mod:`ingest.processors.stripe_http`, like the SDK's own) wraps every httpx
transport exception in ``APIConnectionError`` and chains the original as ``__cause__``; that
cause tells whether the request could have reached Stripe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import httpx
import stripe

from engine.error_codes import ErrorCode
from engine.failure_details import MAX_CODE, MAX_MESSAGE, MAX_PARAM, FailureDetails
from ingest.parsing.masking import mask_card_numbers
from ingest.processors.errors import MalformedProcessorResponseError

_INVALID_CARD_CODES = frozenset(
    {
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "incorrect_zip",
        "invalid_cvc",
        "invalid_number",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "invalid_expiry_month_past",
        "invalid_expiry_year_past",
    }
)
# Raised by httpx before any byte of the request left: connecting, waiting for a pooled connection,
# or refusing the URL.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_MAX_DECLINE_CODE = 100
_IN_PROGRESS = 409  # another request with the same Idempotency-Key is still being carried out
_SHOULD_RETRY = "stripe-should-retry"
# Stripe's API keys (secret, restricted, publishable; test or live) as its messages may name them.
_API_KEY = re.compile(r"\b([srp]k_(?:test|live)_)[A-Za-z0-9*]+")
_MAX_MESSAGE = MAX_MESSAGE


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed call, classified.

    ``in_doubt`` is true when Stripe may have acted on the request although the call failed, so
    a missing PaymentIntent in a search (which lags behind writes) proves nothing yet.
    ``settles`` is true when Stripe answered for the idempotency key itself (a card error is
    stored and replayed under the key), which proves that the key charged nothing.
    ``replayed_to_repeats`` is true when a repeat with the key can only get the same answer
    (``settles``, or Stripe's ``Stripe-Should-Retry: false``).
    """

    code: ErrorCode
    decline_code: str | None = None
    in_doubt: bool = False
    settles: bool = False
    replayed_to_repeats: bool = False


def classify_failure(error: BaseException) -> Failure:
    """The :class:`Failure` that ``error`` stands for (see the module's table)."""
    failure = _classify(error)
    if not failure.replayed_to_repeats and _should_not_retry(error):
        return replace(failure, replayed_to_repeats=True)
    return failure


def _should_not_retry(error: BaseException) -> bool:
    """Whether Stripe's answer carries ``Stripe-Should-Retry: false``."""
    headers = error.headers if isinstance(error, stripe.StripeError) else None
    if not headers:
        return False
    found = next((value for name, value in headers.items() if name.lower() == _SHOULD_RETRY), None)
    return isinstance(found, str) and found.strip().lower() == "false"


def _classify(error: BaseException) -> Failure:
    if isinstance(error, stripe.CardError):
        return _card_failure(error)
    if isinstance(error, stripe.RateLimitError):
        return Failure(ErrorCode.RATE_LIMITED)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return Failure(ErrorCode.PROCESSOR_UNAVAILABLE)
    if isinstance(error, stripe.APIConnectionError):
        if isinstance(error.__cause__, _NOT_SENT):
            return Failure(ErrorCode.NETWORK_FAILURE)
        return Failure(ErrorCode.TIMEOUT, in_doubt=True)
    if isinstance(error, stripe.APIError):
        if error.http_status is not None and (error.http_status >= 500 or error.http_status == _IN_PROGRESS):
            # Stripe calls the outcome of a 5xx indeterminate, and a 409's request is still running:
            # settle before going elsewhere.
            return Failure(ErrorCode.PROCESSOR_ERROR, in_doubt=True)
        if error.error is None:
            return Failure(ErrorCode.MALFORMED_RESPONSE, in_doubt=True)
        return Failure(ErrorCode.UNKNOWN, in_doubt=True)
    if isinstance(error, MalformedProcessorResponseError):
        return Failure(ErrorCode.MALFORMED_RESPONSE, in_doubt=True)
    if isinstance(error, stripe.StripeError):
        # IdempotencyError, InvalidRequestError: Stripe answered and refused the request, so
        # nothing was charged by it.
        return Failure(ErrorCode.UNKNOWN)
    return Failure(ErrorCode.UNKNOWN, in_doubt=True)


def _card_failure(error: stripe.CardError) -> Failure:
    code = error.code or ""
    decline_code = _short(error.error.decline_code if error.error is not None else None)
    if code == "card_declined":
        return _settling(ErrorCode.DECLINED, decline_code or "generic_decline")
    if code in _INVALID_CARD_CODES:
        return _settling(ErrorCode.INVALID_CARD, decline_code or code)
    if code == "processing_error":
        return _settling(ErrorCode.PROCESSING_ERROR, decline_code)
    return _settling(ErrorCode.UNKNOWN, _short(code) or decline_code)


def _settling(code: ErrorCode, decline_code: str | None) -> Failure:
    """A card error: stored by Stripe under the key and replayed to every repeat with it."""
    return Failure(code, decline_code, settles=True, replayed_to_repeats=True)


def _short(code: str | None) -> str | None:
    """A decline code fit for a response (``ProcessorResponse`` allows 1 to 100 characters)."""
    if not isinstance(code, str) or not code or len(code) > _MAX_DECLINE_CODE:
        return None
    return code


def refusal_line(processor_id: str, error: BaseException, *, charge: bool = False) -> str | None:
    """The operator's line for a request Stripe refused as invalid (a 400 or 404 that is not a
    card error), or ``None`` for any other failure. A ``charge``'s reason is left to its
    ``StepFailed`` event, which carries it (:func:`failure_details`): one copy in the log."""
    if not isinstance(error, stripe.InvalidRequestError | stripe.IdempotencyError):
        return None
    details = error.error
    kind = (details.type if details is not None else None) or "invalid_request_error"
    stripe_request = f", request {error.request_id}" if error.request_id else ""
    refused = f"stripe processor {processor_id}: Stripe refused"
    if charge and failure_details(error) is not None:
        return (
            f"{refused} a charge ({error.http_status}{stripe_request}): "
            "why is the failure_details of the StepFailed event of this request_id"
        )
    parts = [f"{error.http_status} {kind}"]
    code = _shown(error.code, MAX_CODE)
    if code:
        parts.append(f"code {code}")
    param = _shown(getattr(error, "param", None), MAX_PARAM)
    if param:
        parts.append(f"param {param}")
    message = _masked(error.user_message or "")[:_MAX_MESSAGE]
    return f"{refused} the request ({', '.join(parts)}{stripe_request}): {message}"


def failure_details(error: BaseException) -> FailureDetails | None:
    """What Stripe said of a request it refused (a card error, an invalid request), masked and
    bounded for the merchant's result; ``None`` for any other failure, or when it said nothing."""
    if not isinstance(error, stripe.CardError | stripe.InvalidRequestError | stripe.IdempotencyError):
        return None
    details = error.error
    fields = {
        "type": _shown(details.type if details is not None else None, MAX_CODE),
        "code": _shown(error.code, MAX_CODE),
        "decline_code": _shown(details.decline_code if details is not None else None, MAX_CODE),
        "param": _shown(getattr(error, "param", None), MAX_PARAM),
        "message": _shown(error.user_message, MAX_MESSAGE),
    }
    if not any(fields.values()):
        return None
    return FailureDetails(**fields)


def _shown(value: object, limit: int) -> str | None:
    """``value`` fit to show: a non-empty string, masked of card numbers and API keys, at most
    ``limit`` characters; ``None`` for anything else (Stripe's fields are optional)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _masked(value)[:limit]


def _masked(text: str) -> str:
    """``text`` with every card number and Stripe API key masked."""
    return _API_KEY.sub(r"\1****", mask_card_numbers(text))
