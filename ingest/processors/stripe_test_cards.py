"""Stripe's test card numbers and the test PaymentMethods that stand for them.

payorch never holds a full card number (metadata keeps it masked, ``424242******4242``), and
Stripe accepts raw numbers only from PCI-certified callers, so the adapter charges one of Stripe's
predefined test PaymentMethods instead. A card is recognised by its first six and last four
digits, which survive masking.

The PaymentMethod ids are those of Stripe's testing documentation (docs.stripe.com/testing,
"Declined payments"); the SDK ships no list of them. Stripe documents no PaymentMethod for the
incorrect-number card (4242 4242 4242 4241 fails the Luhn check, so it cannot be tokenized);
``pm_card_chargeDeclinedIncorrectNumber`` is payorch's choice, honoured by the test fake. Against
the real API an unknown PaymentMethod is refused (``resource_missing``), which the adapter reports
as ``unknown``: the step stops and nothing is charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.processors.cards import CARD_NUMBER_KEY, card_key

#: The PaymentMethod charged when a request names no recognised card and no ``payment_method``.
DEFAULT_PAYMENT_METHOD = "pm_card_visa"

#: (first six digits, last four digits) of a test card number -> its test PaymentMethod.
TEST_PAYMENT_METHODS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("424242", "4242"): "pm_card_visa",
        ("400000", "0002"): "pm_card_visa_chargeDeclined",
        ("400000", "9995"): "pm_card_visa_chargeDeclinedInsufficientFunds",
        ("400000", "9987"): "pm_card_visa_chargeDeclinedLostCard",
        ("400000", "9979"): "pm_card_visa_chargeDeclinedStolenCard",
        ("400000", "0069"): "pm_card_chargeDeclinedExpiredCard",
        ("400000", "0127"): "pm_card_chargeDeclinedIncorrectCvc",
        ("424242", "4241"): "pm_card_chargeDeclinedIncorrectNumber",
        ("400000", "0119"): "pm_card_chargeDeclinedProcessingError",
    }
)


def payment_method_for(metadata: Mapping[str, str]) -> str:
    """The test PaymentMethod to charge for a request's metadata.

    ``metadata["card_number"]`` (full or masked, matched by ``engine.processors.cards.card_key`` as
    the simulated processors match it) picks from :data:`TEST_PAYMENT_METHODS`; without a
    recognised card, ``metadata["payment_method"]`` is used as given, else
    :data:`DEFAULT_PAYMENT_METHOD`.
    """
    key = card_key(metadata.get(CARD_NUMBER_KEY, ""))
    known = None if key is None else TEST_PAYMENT_METHODS.get(key)
    if known is not None:
        return known
    return metadata.get("payment_method") or DEFAULT_PAYMENT_METHOD
