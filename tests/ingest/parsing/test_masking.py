"""Card-number masking: Luhn-valid 13-19 digit numbers become first six, stars, last four."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.error_codes import ErrorCode
from engine.processors.cards import card_outcome
from ingest.parsing import mask_card_numbers
from ingest.parsing.masking import luhn_valid
from tests.ingest.parsing.support import luhn_number, unmasked_card_numbers

CARD = "4242424242424242"


def masked(number: str) -> str:
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def test_the_generated_numbers_are_luhn_valid_and_their_neighbours_are_not() -> None:
    for length in (12, 13, 16, 19, 20):
        number = luhn_number(length)
        assert luhn_valid(number)
        assert not luhn_valid(number[:-1] + str((int(number[-1]) + 1) % 10))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(CARD, "424242******4242", id="sixteen-digits"),
        pytest.param("4242424242424241", "4242424242424241", id="stripe-incorrect-number-card-fails-luhn"),
        pytest.param("4242424242424243", "4242424242424243", id="not-luhn"),
        pytest.param(luhn_number(12), luhn_number(12), id="twelve-digits-never"),
        pytest.param(luhn_number(13), masked(luhn_number(13)), id="thirteen-digits"),
        pytest.param(luhn_number(19), masked(luhn_number(19)), id="nineteen-digits"),
        pytest.param(luhn_number(20), luhn_number(20), id="twenty-digits-never"),
        pytest.param("4242 4242 4242 4242", "424242******4242", id="spaced"),
        pytest.param("4242-4242-4242-4242", "424242******4242", id="dashed"),
        pytest.param("4242 4242-4242 4242", "424242******4242", id="mixed-separators"),
        pytest.param("4242  4242 4242 4242", "4242  4242 4242 4242", id="double-space-splits-the-run"),
        pytest.param("4242.4242.4242.4242", "424242******4242", id="dotted"),
        pytest.param("3782.822463.10005", "378282*****0005", id="dotted-amex"),
        pytest.param("4242.4242.4242-4242", "424242******4242", id="dots-and-a-dash"),
        pytest.param("4242\u00a04242\u202f4242\u20094242", "424242******4242", id="no-break-and-thin-spaces"),
        pytest.param("4242\u20134242\u20134242\u20134242", "424242******4242", id="en-dashes"),
        pytest.param(
            "\uff14\uff12\uff14\uff12\uff0d" * 3 + "\uff14\uff12\uff14\uff12",
            "\uff14\uff12\uff14\uff12\uff14\uff12******\uff14\uff12\uff14\uff12",
            id="full-width-digits-and-hyphens",
        ),
        pytest.param("4242\u30004242\u30004242\u30004242", "424242******4242", id="ideographic-spaces"),
        pytest.param("1764221251.123457", "1764221251.123457", id="a-decimal-number-is-no-card"),
        pytest.param("52.520008123451", "52.520008123451", id="a-latitude-is-no-card"),
        pytest.param(f"{CARD}.5", "424242******4242.5", id="a-card-before-a-decimal-point"),
        pytest.param("4242\u200b4242\u200b4242\u200b4242", "424242******4242", id="zero-width-spaces"),
        pytest.param(f"card: {CARD}, exp 12/29", "card: 424242******4242, exp 12/29", id="embedded-in-text"),
        pytest.param(f"a{CARD}b", "a424242******4242b", id="glued-to-letters"),
        pytest.param(
            f"{CARD} and 4000 0000 0000 0002", "424242******4242 and 400000******0002", id="two-cards"
        ),
        pytest.param(f"order 12 {CARD}", "order 12 424242******4242", id="group-before-the-card"),
        pytest.param("no digits here", "no digits here", id="no-digits"),
        pytest.param("", "", id="empty"),
        pytest.param("\ud800" + CARD, "\ud800424242******4242", id="beside-a-lone-surrogate"),
    ],
)
def test_mask_card_numbers(text: str, expected: str) -> None:
    assert mask_card_numbers(text) == expected


def test_masking_keeps_every_stripe_test_card_recognisable() -> None:
    cards = {
        "4242424242424242": None,
        "4000000000000002": ErrorCode.DECLINED,
        "4000000000009995": ErrorCode.DECLINED,
        "4000000000009987": ErrorCode.DECLINED,
        "4000000000009979": ErrorCode.DECLINED,
        "4000000000000069": ErrorCode.INVALID_CARD,
        "4000000000000127": ErrorCode.INVALID_CARD,
        "4242424242424241": ErrorCode.INVALID_CARD,
        "4000000000000119": ErrorCode.PROCESSING_ERROR,
    }
    for number, code in cards.items():
        assert card_outcome(mask_card_numbers(number)).error_code is code


digit_texts = st.text(alphabet="0123456789 -.x\u00a0\u2013\uff0e", max_size=80)


@settings(max_examples=300)
@given(st.one_of(digit_texts, st.text(max_size=40)), st.lists(st.integers(13, 19), max_size=3))
def test_masked_text_holds_no_card_number_and_masking_again_changes_nothing(
    text: str, lengths: list[int]
) -> None:
    with_cards = text + " ".join(luhn_number(n) for n in lengths)
    result = mask_card_numbers(with_cards)
    assert unmasked_card_numbers(result) == []
    assert mask_card_numbers(result) == result
    assert len(result) <= len(with_cards)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("created_at_ms", "1764221251127"),  # a timestamp in milliseconds (13 digits from 1)
        ("order_number", "20261127134504"),  # YYYYMMDDhhmmss
        ("order_ref", "ORD-20261127134504"),
        ("phone", "+86 138 0013 8002"),  # a Chinese mobile with its country code (13 digits)
        ("phone_e164", "+8613800138002"),
        ("loyalty_id", "7000000000003"),
        ("account", "90000000000001"),
    ],
)
def test_merchant_ids_no_card_can_have_are_kept_as_they_are(name: str, value: str) -> None:
    digits = "".join(c for c in value if c.isdigit())
    assert luhn_valid(digits)  # each one was masked before: Luhn alone took it for a card

    assert mask_card_numbers(value) == value
    assert mask_card_numbers(f"{name}={value}") == f"{name}={value}"


@pytest.mark.parametrize(
    "card",
    [
        "4222222222222",  # Visa, 13 digits
        "30569309025904",  # Diners Club, 14 digits
        "38520000023237",  # Diners Club, 14 digits
        "122000000000003",  # UATP, 15 digits from 1
        "378282246310005",  # American Express
        "2223003122003222",  # Mastercard's 2-series
        "1946000000000005",  # Indonesia's GPN, 16 digits from 1
        "1764221251123408",  # a timestamp in microseconds: a GPN card's length and first digit
        "0004242424242000",  # a card zero-padded to a fixed width keeps its Luhn sum
        "6011111111111117",  # Discover
        "5555555555554444",  # Mastercard
    ],
)
def test_every_length_and_first_digit_a_card_is_issued_under_is_still_masked(card: str) -> None:
    assert luhn_valid(card)
    assert mask_card_numbers(card) == masked(card)
    assert mask_card_numbers(f"note {card[:4]} {card[4:8]} {card[8:]}") == f"note {masked(card)}"
