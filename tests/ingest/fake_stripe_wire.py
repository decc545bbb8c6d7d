"""Stripe's wire format, as the fake API (:mod:`tests.ingest.fake_stripe`) reads and writes it.

Form-encoded parameters with bracketed keys become nested dicts and lists; answers are JSON
bytes; errors are Stripe's ``{"error": {"type": ..., "code": ..., "message": ...}}`` bodies.
The table of test PaymentMethods says how each one's charge ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]
MalformKind = Literal["truncated", "incomplete"]

# Test PaymentMethod -> None (succeeds), "requires_action", or (code, decline_code, message).
PAYMENT_METHODS: Mapping[str, tuple[str, str | None, str] | str | None] = {
    "pm_card_visa": None,
    "pm_card_mastercard": None,
    "pm_card_authenticationRequired": "requires_action",
    "pm_card_visa_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_visa_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_visa_chargeDeclinedLostCard": ("card_declined", "lost_card", "Your card was declined."),
    "pm_card_visa_chargeDeclinedStolenCard": ("card_declined", "stolen_card", "Your card was declined."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "pm_card_chargeDeclinedIncorrectNumber": ("incorrect_number", None, "Your card number is incorrect."),
    "pm_card_visa_chargeDeclinedFraudulent": ("card_declined", "fraudulent", "Your card was declined."),
    # Not Stripe's: a decline whose reason payorch does not list (one Stripe adds later, say).
    "pm_test_chargeDeclinedUnlistedReason": (
        "card_declined",
        "a_reason_not_in_payorchs_list",
        "Your card was declined.",
    ),
    "pm_card_chargeDeclinedProcessingError": (
        "processing_error",
        None,
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
# Currencies whose Stripe amounts must be multiples of a step (docs.stripe.com/currencies): ISK and
# UGX are taken in whole units written with two decimals, the three-decimal ones end in 0.
AMOUNT_STEPS: Mapping[str, int] = {
    "isk": 100,
    "ugx": 100,
    "bhd": 10,
    "jod": 10,
    "kwd": 10,
    "omr": 10,
    "tnd": 10,
}
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_QUERY = re.compile(r"metadata\['((?:[^'\\]|\\.)*)'\]:'((?:[^'\\]|\\.)*)'")
_UNESCAPE = re.compile(r"\\(.)")


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class StripeApiError(Exception):
    """An error answer, raised inside the fake's handlers."""

    def __init__(self, status: int, error: Json) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def unflatten(pairs: list[tuple[str, str]]) -> Json:
    """``metadata[k]=v`` and ``expand[0]=x`` pairs as nested dicts and lists."""
    root: Json = {}
    for raw_key, value in pairs:
        match = _KEY.fullmatch(raw_key)
        if match is None:
            raise invalid(f"Invalid parameter name {raw_key!r}.")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _listify(root)


def _listify(node: Json) -> Json:
    for name, value in node.items():
        if isinstance(value, dict):
            inner = _listify(value)
            is_list = bool(inner) and all(index.isdigit() for index in inner)
            node[name] = [inner[i] for i in sorted(inner, key=int)] if is_list else inner
    return node


def positive_int(params: Json, name: str) -> int:
    raw = params.get(name)
    if not isinstance(raw, str) or not raw.isdigit() or int(raw) <= 0:
        raise invalid(f"Invalid positive integer: {name}", code="parameter_invalid_integer", param=name)
    return int(raw)


def check_amount_step(currency: str, amount: int) -> None:
    """Refuse an amount Stripe would refuse in ``currency`` (as Stripe does, with a 400)."""
    step = AMOUNT_STEPS.get(currency, 1)
    if amount % step:
        message = f"Invalid amount. Currency {currency.upper()} amounts must be evenly divisible by {step}."
        raise invalid(message, code="invalid_charge_amount", param="amount")


# Stripe's minimum charge amounts for a few currencies (docs.stripe.com/currencies#minimum-and-
# maximum-charge-amounts), in its units; a smaller amount is refused 400 ``amount_too_small``.
MINIMUM_AMOUNTS: Mapping[str, tuple[int, str]] = {
    "usd": (50, "$0.50"),
    "eur": (50, "€0.50"),
    "gbp": (30, "£0.30"),
    "jpy": (50, "¥50"),
}


def check_minimum_amount(currency: str, amount: int) -> None:
    """Refuse an amount below Stripe's minimum for ``currency``, with Stripe's code and message."""
    minimum = MINIMUM_AMOUNTS.get(currency)
    if minimum is not None and amount < minimum[0]:
        raise invalid(
            f"Amount must be at least {minimum[1]} {currency}", code="amount_too_small", param="amount"
        )


def invalid(
    message: str, *, code: str | None = None, param: str | None = None, status: int = 400
) -> StripeApiError:
    error: Json = {"type": "invalid_request_error", "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return StripeApiError(status, error)


def masked(api_key: str) -> str:
    """An API key as Stripe shows it in an error: its prefix, stars, its last four characters."""
    return f"{api_key[:8]}{'*' * max(len(api_key) - 12, 0)}{api_key[-4:]}"


def json_reply(status: int, payload: Json) -> Reply:
    return Reply(status, json.dumps(payload).encode("utf-8"))


def garble(body: bytes, kind: MalformKind) -> bytes:
    if kind == "truncated":
        return body[: max(len(body) // 2, 1)]
    return json.dumps({"object": "payment_intent", "id": "pi_garbled"}).encode("utf-8")


def parse_search_query(query: str) -> tuple[str, str]:
    """The metadata key and value of a ``metadata['key']:'value'`` query (quotes unescaped)."""
    match = _QUERY.fullmatch(query)
    if match is None:
        raise invalid("This fake understands only metadata['key']:'value' queries.", param="query")
    name, value = (_UNESCAPE.sub(r"\1", group) for group in match.groups())
    return name, value
