"""The Stripe processor: the engine's ``Processor`` port over the official SDK's async API.

It keeps the port's contract (:mod:`engine.processor`): it never raises (a cancelled call is
the one exception that propagates), it is idempotent through Stripe's own ``Idempotency-Key``,
and it can settle and compensate a charge knowing only payorch's idempotency key.

* ``charge`` creates and confirms a PaymentIntent in one call, with ``capture_method=automatic``:
  payorch charges, it never leaves money only authorized (nothing in payorch would capture it
  later, and an authorization counted as a charge would leave the merchant unpaid). An intent
  that still comes back ``requires_capture`` is captured at once, under ``<key>:capture``: that
  completes the charge that was asked for. payorch's idempotency key is the Stripe
  ``Idempotency-Key`` (Stripe replays the stored answer for a repeat, so a repeat never charges
  twice) and is written to the intent's metadata with the payment id and step index.
* ``status`` finds the intents whose metadata holds the key (:mod:`ingest.processors.stripe_lookup`:
  by id when this process charged the key, else the Search API, else the newest intents of the
  List API, since the search lags behind writes) and reads ``latest_charge.refunded`` (expanded).
  When none is found it answers ``NOT_CHARGED`` only when that is proven (a definitive answer
  without a charge, or Stripe's idempotency layer showing the key was never used), else
  ``UNKNOWN``: an empty search is never taken for "not charged".
* ``void_or_refund`` cancels an uncaptured intent or refunds a captured one, under the derived
  idempotency keys ``<key>:void`` and ``<key>:refund``. "Nothing to undo" (a success with 0) is
  answered only when the key's intents are found and none holds money, or the key provably never
  charged; otherwise the refund fails with ``unknown``, never reporting money as returned.
* Amounts cross in both directions through :mod:`ingest.processors.stripe_amounts` (Stripe's own
  scale for ISK, UGX, MGA and the three-decimal currencies); an amount Stripe cannot take exactly
  is refused with ``policy_rejected`` before anything is sent.

The SDK's own network retries are off by default: the engine's router owns retries. Call
:meth:`StripeProcessor.aclose` (or use ``async with``) to close the HTTP connections.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Self

import stripe

from engine.config import ProcessorConfig, ProcessorKind
from engine.error_codes import ErrorCode
from engine.processor import ChargeRequest, ProcessorResponse, RefundRequest, Settlement, StatusAnswer
from engine.types import ProcessorId
from ingest.processors.errors import (
    MalformedProcessorResponseError,
    ProcessorSetupError,
    UnsupportedAmountError,
)
from ingest.processors.recent_attempts import RecentAttempts
from ingest.processors.stripe_amounts import from_stripe, to_stripe, to_stripe_cap
from ingest.processors.stripe_credentials import stripe_api_key
from ingest.processors.stripe_failure import classify_failure, failure_details, refusal_line
from ingest.processors.stripe_http import StripeHttpClient
from ingest.processors.stripe_key_refusals import KeyRefusalLog
from ingest.processors.stripe_keys import IDEMPOTENCY_METADATA_KEY, stripe_idempotency_key
from ingest.processors.stripe_lookup import IntentLookup
from ingest.processors.stripe_objects import IntentView, read_intent, read_refund
from ingest.processors.stripe_test_cards import payment_method_for

logger = logging.getLogger("payorch.processors.stripe")

#: The decline code of a charge refused before it was sent: Stripe cannot take the amount exactly.
UNSUPPORTED_AMOUNT = "amount_not_supported_by_stripe"
_DECLINED_STATES = frozenset({"requires_payment_method", "requires_action", "canceled"})


class StripeProcessor:
    """A payment processor backed by a Stripe account (PRODUCT.md section 3, ``kind: stripe``)."""

    def __init__(
        self,
        config: ProcessorConfig,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        max_network_retries: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.kind is not ProcessorKind.STRIPE:
            raise ProcessorSetupError(config.id, f"is of kind {config.kind.value}, not stripe")
        if not api_key:
            raise ProcessorSetupError(config.id, "the API key is empty")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ProcessorSetupError(config.id, f"timeout_s={timeout_s!r} must be a positive number")
        self._id = config.id
        # The SDK's client telemetry (a header on every request, an id file in the home folder) is
        # a process-wide switch; payorch sends none.
        stripe.enable_telemetry = False
        # The SDK logs every request and every error message at INFO (logger "stripe"), and Stripe's
        # messages may name the API key (an unknown or restricted key, partly masked). payorch keeps
        # its own record of each call (events, metrics, spans); the SDK's lines stay below INFO.
        # The logger's own level, not the one it inherits now: ``payorch serve`` lowers the root
        # logger to INFO after building its processors.
        sdk_logger = logging.getLogger("stripe")
        if sdk_logger.level < logging.WARNING:
            sdk_logger.setLevel(logging.WARNING)
        self._http = StripeHttpClient(timeout_s)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": config.api_base} if config.api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )
        self._recent = RecentAttempts(time.monotonic)
        self._key_refusals = KeyRefusalLog(config.id, config.api_key_env, monotonic)
        self._lookup = IntentLookup(self._client, self._recent)

    @property
    def processor_id(self) -> ProcessorId:
        return self._id

    async def aclose(self) -> None:
        """Close the HTTP connections; the processor must not be used afterwards."""
        await self._http.close_async()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        """Charge once per idempotency key; succeed exactly when the PaymentIntent ``succeeded``."""
        started = time.monotonic()
        key = request.idempotency_key
        try:
            amount = to_stripe(request.amount_cents, request.currency)
        except UnsupportedAmountError:
            # Refused here, clearly: sent, Stripe would refuse it too, and rounding it would charge
            # another amount than the one asked for.
            return ProcessorResponse.failed(
                ErrorCode.POLICY_REJECTED, _elapsed_ms(started), UNSUPPORTED_AMOUNT
            )
        try:
            answer = await self._client.v1.payment_intents.create_async(
                {
                    "amount": amount,
                    "currency": request.currency.code.lower(),
                    "confirm": True,
                    "capture_method": "automatic",
                    "payment_method": payment_method_for(request.metadata),
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "metadata": {
                        "payment_id": request.payment_id,
                        "step_index": str(request.step_index),
                        IDEMPOTENCY_METADATA_KEY: key,
                    },
                },
                options={"idempotency_key": stripe_idempotency_key(key)},
            )
            intent = read_intent(answer)
            if intent.status == "requires_capture":
                captured = await self._client.v1.payment_intents.capture_async(
                    intent.id, options={"idempotency_key": stripe_idempotency_key(key, "capture")}
                )
                intent = read_intent(captured)
            return self._charge_outcome(key, intent, started)
        except asyncio.CancelledError:
            self._recent.in_doubt(key)
            raise
        except Exception as error:  # noqa: BLE001 - the port answers every failure, it never raises
            failure = classify_failure(error)
            self._note_refusal(error, charge=True)
            if failure.in_doubt:
                self._recent.in_doubt(key)
            elif failure.settles:
                self._recent.settled(key)
            # A card error is stored by Stripe under the key and replayed to any repeat, and so is
            # an answer Stripe marks Stripe-Should-Retry: false: a retry with the same key can never
            # succeed, so the answer says so and the router stops retrying with the key.
            return ProcessorResponse.failed(
                failure.code,
                _elapsed_ms(started),
                failure.decline_code,
                final_for_key=failure.replayed_to_repeats,
                failure_details=failure_details(error),
            )

    async def status(self, idempotency_key: str) -> StatusAnswer:
        """What Stripe holds for the key; ``UNKNOWN`` when it cannot be told for sure."""
        started = time.monotonic()
        key = idempotency_key
        try:
            intents = await self._intents_for(key)
            holding = _holding(intents)
            if holding is not None and holding.status == "requires_capture":
                # Authorized, not captured: not a charge (nothing was taken, and counting it would
                # leave the merchant unpaid), not free either (the amount is held on the card). A
                # repeat of the charge captures it; void_or_refund cancels it.
                return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(started))
            if holding is not None:
                held = _minor(holding, _held_amount(holding), "held")
                return StatusAnswer(
                    Settlement.CHARGED, _elapsed_ms(started), held, holding.id, holding.currency
                )
            if self._unsettled(intents):
                return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(started))
            refunded = next((i for i in intents if i.status == "succeeded"), None)
            if refunded is not None and refunded.charge is not None:
                amount = _minor(refunded, refunded.charge.amount_refunded, "charge.amount_refunded")
                return StatusAnswer(
                    Settlement.REFUNDED, _elapsed_ms(started), amount, refunded.id, refunded.currency
                )
            if not intents and not await self._lookup.never_charged(key):
                return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(started))
        except Exception as error:  # noqa: BLE001 - any failure to ask is an unknown settlement
            self._note_refusal(error)
            return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(started))
        return StatusAnswer(Settlement.NOT_CHARGED, _elapsed_ms(started))

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        """Undo the key's charge, up to ``amount_cents``; nothing to undo is a success with 0."""
        started = time.monotonic()
        key = request.idempotency_key
        try:
            intents = await self._intents_for(key)
            intent = _holding(intents)
            if intent is None:
                if self._unsettled(intents) or not (intents or await self._lookup.never_charged(key)):
                    # Money may be held although no intent shows it: never report it as returned.
                    return ProcessorResponse.failed(ErrorCode.UNKNOWN, _elapsed_ms(started))
                return ProcessorResponse(True, _elapsed_ms(started), 0)  # nothing held: nothing to undo
            if intent.status == "requires_capture":
                voided = read_intent(
                    await self._client.v1.payment_intents.cancel_async(
                        intent.id, options={"idempotency_key": stripe_idempotency_key(key, "void")}
                    )
                )
                voided_amount = _minor(intent, intent.amount_capturable, "amount_capturable")
                return ProcessorResponse(
                    True, _elapsed_ms(started), voided_amount, None, voided.id, None, intent.currency
                )
            amount = min(to_stripe_cap(request.amount_cents, request.currency), _held_amount(intent))
            if amount == 0:
                return ProcessorResponse(True, _elapsed_ms(started), 0)
            refund = read_refund(
                await self._client.v1.refunds.create_async(
                    {
                        "payment_intent": intent.id,
                        "amount": amount,
                        "metadata": {IDEMPOTENCY_METADATA_KEY: key, "payment_id": request.payment_id},
                    },
                    options={"idempotency_key": stripe_idempotency_key(key, "refund")},
                )
            )
            refunded = _minor(intent, refund.amount, "refund.amount")
        except stripe.InvalidRequestError as error:
            if error.code == "charge_already_refunded":
                return ProcessorResponse(True, _elapsed_ms(started), 0)
            self._note_refusal(error)
            return ProcessorResponse.failed(classify_failure(error).code, _elapsed_ms(started))
        except Exception as error:  # noqa: BLE001 - the port answers every failure, it never raises
            self._note_refusal(error)
            failure = classify_failure(error)
            return ProcessorResponse.failed(failure.code, _elapsed_ms(started), failure.decline_code)
        if refund.status in ("failed", "canceled"):
            return ProcessorResponse.failed(ErrorCode.UNKNOWN, _elapsed_ms(started))
        return ProcessorResponse(True, _elapsed_ms(started), refunded, None, refund.id, None, intent.currency)

    def _charge_outcome(self, key: str, intent: IntentView, started: float) -> ProcessorResponse:
        if intent.status == "succeeded":
            self._recent.charged(key, intent.id)
            received = _minor(intent, intent.amount_received, "amount_received")
            # What Stripe really charged, amount and currency: the engine counts it only when it is
            # what was asked (engine.guard), and voids it in full otherwise.
            return ProcessorResponse(
                True, _elapsed_ms(started), received, None, intent.id, None, intent.currency
            )
        if intent.status in _DECLINED_STATES:
            # Confirmed but not paid: declined in the body (rare with confirm=true, which answers
            # card errors with HTTP 402), or needing authentication that redirects cannot give.
            self._recent.settled(key)
            fallback = "authentication_required" if intent.status == "requires_action" else "generic_decline"
            return ProcessorResponse.failed(
                ErrorCode.DECLINED, _elapsed_ms(started), intent.decline_code or fallback, final_for_key=True
            )
        # processing, requires_confirmation: money may move later, so the outcome is unknown and
        # the router must settle it before going anywhere else.
        self._recent.in_doubt(key)
        return ProcessorResponse.failed(ErrorCode.PROCESSOR_ERROR, _elapsed_ms(started))

    def _note_refusal(self, error: BaseException, *, charge: bool = False) -> None:
        """Tell the operator when Stripe refused the API key itself (rate-limited), or refused a
        request as invalid (why, which the merchant's ``unknown`` does not say: for a ``charge``,
        its StepFailed event's ``failure_details``)."""
        if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
            self._key_refusals.refused(error.http_status)
            return
        line = refusal_line(self._id, error, charge=charge)
        if line is not None:
            logger.warning(line)

    async def _intents_for(self, key: str) -> tuple[IntentView, ...]:
        """The key's PaymentIntents that can be found, each with its latest charge expanded."""
        intents = await self._lookup.intents(key)
        for intent in intents:
            if intent.status == "succeeded" and intent.charge is None:
                raise MalformedProcessorResponseError(
                    "payment_intent.latest_charge", "is not an expanded charge"
                )
        return intents

    @staticmethod
    def _unsettled(intents: Sequence[IntentView]) -> bool:
        """Whether money may still move for the key though no intent found holds any."""
        return any(intent.status == "processing" for intent in intents)


def stripe_processor_from_config(
    config: ProcessorConfig, environ: Mapping[str, str], *, timeout_s: float = 10.0
) -> StripeProcessor:
    """The Stripe processor of ``config``, its API key read from ``environ[config.api_key_env]``.

    Raises :class:`MissingApiKeyError` naming the variable when it is unset or empty.
    """
    return StripeProcessor(config, stripe_api_key(config, environ), timeout_s=timeout_s)


def _holding(intents: Sequence[IntentView]) -> IntentView | None:
    """The first intent that holds money: captured and not fully refunded, or awaiting capture."""
    for intent in intents:
        if intent.status == "requires_capture":
            return intent
        if intent.status == "succeeded" and intent.charge is not None and not intent.charge.refunded:
            return intent
    return None


def _held_amount(intent: IntentView) -> int:
    if intent.status == "requires_capture":
        return intent.amount_capturable
    refunded = intent.charge.amount_refunded if intent.charge is not None else 0
    return max(intent.amount_received - refunded, 0)


def _minor(intent: IntentView, amount: int, field: str) -> int:
    """A Stripe amount of ``intent``'s currency in ISO minor units."""
    return from_stripe(amount, intent.currency, f"payment_intent.{field}")


def _elapsed_ms(started: float) -> int:
    return max(int((time.monotonic() - started) * 1000), 0)
