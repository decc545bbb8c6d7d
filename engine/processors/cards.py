"""Stripe's test card numbers, as the simulated processors honor them (PRODUCT.md section 5).

A card number reaches a processor in full (``4000000000009995``) or masked as its first six
and last four digits (``400000******9995``); both are recognised by those ten digits. Any other
card number behaves like ``4242424242424242``: it succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from engine.error_codes import ErrorCode

#: The metadata key a card number arrives under.
CARD_NUMBER_KEY = "card_number"


@dataclass(frozen=True, slots=True)
class CardOutcome:
    """What a test card makes every charge do: succeed (``error_code`` ``None``) or fail."""

    error_code: ErrorCode | None = None
    decline_code: str | None = None

    @property
    def definitive(self) -> bool:
        """True when a processor replays this outcome for the key instead of trying again."""
        return self.error_code is None or self.error_code in _DEFINITIVE_FAILURES


_DEFINITIVE_FAILURES = frozenset({ErrorCode.DECLINED, ErrorCode.INVALID_CARD})

SUCCEEDS = CardOutcome()


def _card(number: str, outcome: CardOutcome) -> tuple[tuple[str, str], CardOutcome]:
    return (number[:6], number[-4:]), outcome


_TEST_CARDS: Mapping[tuple[str, str], CardOutcome] = MappingProxyType(
    dict(
        [
            _card("4242424242424242", SUCCEEDS),
            _card("4000000000000002", CardOutcome(ErrorCode.DECLINED, "generic_decline")),
            _card("4000000000009995", CardOutcome(ErrorCode.DECLINED, "insufficient_funds")),
            _card("4000000000009987", CardOutcome(ErrorCode.DECLINED, "lost_card")),
            _card("4000000000009979", CardOutcome(ErrorCode.DECLINED, "stolen_card")),
            _card("4000000000000069", CardOutcome(ErrorCode.INVALID_CARD, "expired_card")),
            _card("4000000000000127", CardOutcome(ErrorCode.INVALID_CARD, "incorrect_cvc")),
            _card("4242424242424241", CardOutcome(ErrorCode.INVALID_CARD, "incorrect_number")),
            _card("4000000000000119", CardOutcome(ErrorCode.PROCESSING_ERROR, "processing_error")),
        ]
    )
)


def card_key(card_number: str) -> tuple[str, str] | None:
    """The first six and last four characters of a full or masked card number, which identify a
    test card; spaces and dashes are ignored. ``None`` when the number is too short to have them."""
    compact = card_number.replace(" ", "").replace("-", "")
    if len(compact) < 10:
        return None
    return compact[:6], compact[-4:]


def card_outcome(card_number: str) -> CardOutcome:
    """The outcome a card number forces; an unknown or unreadable number succeeds.

    The number is matched on :func:`card_key` (the masking ``*`` in between are not looked at).
    """
    key = card_key(card_number)
    return SUCCEEDS if key is None else _TEST_CARDS.get(key, SUCCEEDS)
