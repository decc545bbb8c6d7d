"""Test card numbers, full or masked, pick Stripe's test PaymentMethods."""

import pytest

from ingest.processors.stripe_keys import search_query, stripe_idempotency_key
from ingest.processors.stripe_test_cards import payment_method_for


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"card_number": "4242424242424242"}, "pm_card_visa"),
        ({"card_number": "424242******4242"}, "pm_card_visa"),
        ({"card_number": "4000-0000-0000-9995"}, "pm_card_visa_chargeDeclinedInsufficientFunds"),
        ({"card_number": "424242******4241"}, "pm_card_chargeDeclinedIncorrectNumber"),
        ({"card_number": "555555******4444", "payment_method": "pm_card_mastercard"}, "pm_card_mastercard"),
        ({"card_number": "not a card"}, "pm_card_visa"),
        ({"payment_method": "pm_card_amex"}, "pm_card_amex"),
        ({}, "pm_card_visa"),
    ],
)
def test_the_payment_method_follows_the_card_then_the_metadata(
    metadata: dict[str, str], expected: str
) -> None:
    assert payment_method_for(metadata) == expected


def test_a_plain_key_is_stripes_key_and_others_become_a_stable_digest() -> None:
    assert stripe_idempotency_key("pay_1:0") == "pay_1:0"
    assert stripe_idempotency_key("pay_1:0", "refund") == "pay_1:0:refund"
    hashed = stripe_idempotency_key("pay_ü:0", "refund")
    assert hashed.startswith("payorch-sha256:")
    assert hashed.endswith(":refund")
    assert hashed == stripe_idempotency_key("pay_ü:0", "refund")
    assert len(stripe_idempotency_key("k" * 255, "refund")) <= 255


def test_the_search_query_escapes_quotes_and_backslashes() -> None:
    assert search_query("a'b\\c") == "metadata['payorch_idempotency_key']:'a\\'b\\\\c'"
