"""Card-number masking: what the boundary does to anything that looks like a card number.

Rules (PRODUCT.md section 5):

- A *digit run* is a maximal stretch of decimal digits in which single separators may separate
  groups of digits: a space or a dash (``4242 4242 4242 4242``, ``4242-4242-4242-4242``), also
  a no-break, thin or zero-width space, an en dash or a full-width hyphen (text copied from a
  page or typed on a phone has them), or a dot (``4242.4242.4242.4242``). A run with a single
  dot is two runs, one each side of it: it is a decimal number (``1764221251.123457``, a float's
  text), and a card number written with dots has two of them at least (``3782.822463.10005``).
  Each stretch of digits between separators is a *group*; a group is never split, so a run of
  twenty digits without separators is never a card number.
- Any span of consecutive groups holding 13 to 19 digits that pass the Luhn check is a card
  number, unless no card of its length is issued under its first digit (:func:`could_be_card`:
  a 13- or 14-digit number starting with 1, 2, 7, 8 or 9). It is replaced by its first six
  digits, ``*`` for each digit in between and its last four digits, with the separators dropped:
  ``4242 4242 4242 4242`` becomes ``424242******4242``. Six and four digits are exactly what
  :func:`engine.processors.cards.card_key` reads, so a masked Stripe test card keeps its
  simulated outcome.
- Masking is repeated until nothing changes: a mask leaves ten digits in place, which could form
  a new card number with digits around it; every pass removes digits, so the loop ends.

The result holds no span that could be a card number in any digit run, whatever the input.

Why the exception, and why no other. About one number in ten passes the Luhn check, so every
13-19 digit value of a merchant's metadata had that chance of being masked: a timestamp in
milliseconds (``1764221251123``: 13 digits, 1 first until the year 2286), a date-time order
number (``20261127134512``: YYYYMMDDhhmmss), a Chinese mobile number with its country code
(``8613800138000``: 86 and 11 digits), an order id of 13 or 14 digits. Cards of 13 and 14 digits
are issued only under 3, 4, 5 and 6 (Visa's old 13-digit numbers under 4; Diners Club's 14 under
30, 36, 38 and 39; Maestro's 12 to 19 under 5 and 6). Under 1 and 2 the cards are longer (UATP,
JCB 1800 and 2131, enRoute 2014 and 2149: 15; GPN 1946: 16, 18, 19; Mir 2200-2204, Borica 2205,
Mastercard 2221-2720: 16 to 19), as they are under 7, 8 and 9 (fleet cards, UnionPay and RuPay 81
and 82, Troy 9792, UzCard, Humo: 15 to 19). So only those lengths under those digits are let
through. A leading 0 is still masked: a card number padded with zeros to a fixed width keeps its
Luhn sum, and a missed card is worse than a masked id. Longer numbers are masked whatever their
first digit (a timestamp in microseconds, 16 digits from 1, shares its length and first digit with
Indonesia's GPN cards). Identifiers kept masked and looked up by that form (idempotency keys,
complaint ids) keep the rule before it (:func:`mask_luhn_numbers`), so that a key stored masked
is found again by its repeat.

Shortcuts (:mod:`ingest.parsing.shortcuts`):

- Text of ASCII digits only is one group, so it is a card number exactly when the whole of it is
  one; its mask (ten digits split by ``*``) holds no thirteen digits, so nothing more would change.
- The loop stops as soon as a pass leaves no thirteen digits in a row (at most one separator
  between neighbours): a card number needs them, so another pass would change nothing.
- The Luhn check of ASCII digits doubles every second digit through a table.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ingest.parsing import shortcuts

MIN_CARD_DIGITS = 13
MAX_CARD_DIGITS = 19
KEPT_FIRST = 6
KEPT_LAST = 4

#: ``\d`` on purpose: Unicode decimal digits (Arabic-Indic, full-width) are masked too; leaking
#: a card number written in other digits is worse than masking an odd string.
#: The separators of a digit run: spaces (no-break, figure, thin, ideographic...; zero-width ones,
#: which show the digits as one number), dashes (the hyphens, figure dash, en dash, minus sign,
#: full-width hyphen) and dots (ASCII, full-width).
_DOTS = ".\uff0e"
_SPACES = " \u00a0\u2000-\u200d\u202f\u205f\u2060\u3000\ufeff"
SEPARATORS = _SPACES + "\\-\u2010-\u2013\u2212\ufe63\uff0d" + _DOTS
_DIGIT_RUN = re.compile(rf"\d+(?:[{SEPARATORS}]\d+)*")
_GROUP = re.compile(r"\d+")
#: Thirteen digits with at most one separator between neighbours: text without a match holds no
#: card number, which most text is, so the run-by-run search is skipped (and so does
#: :func:`ingest.parsing.issues.is_plain`).
CARD_CANDIDATE = re.compile(rf"\d(?:[{SEPARATORS}]?\d){{12}}")

#: Each digit doubled, less 9 when that makes two digits.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_valid(digits: str) -> bool:
    """Whether the decimal digits ``digits`` pass the Luhn check (mod 10)."""
    if shortcuts.ENABLED and digits.isascii():
        # From the right, every second digit is doubled; a byte's value is its digit plus 48.
        kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
        total = sum(kept.encode()) + sum(doubled.encode()) - 48 * len(digits)
        return total % 10 == 0
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


#: The first digits under which no card of 13 or 14 digits is issued (see the module's text).
_NO_SHORT_CARDS = frozenset((1, 2, 7, 8, 9))
#: The most digits a number let through by that rule has.
_SHORT_CARD_DIGITS = 14


def could_be_card(digits: str) -> bool:
    """Whether the decimal digits ``digits`` may be a card number: 13 to 19 of them, passing the
    Luhn check, and not 13 or 14 under a first digit with no card of that length."""
    if not MIN_CARD_DIGITS <= len(digits) <= MAX_CARD_DIGITS:
        return False
    if len(digits) <= _SHORT_CARD_DIGITS and int(digits[0]) in _NO_SHORT_CARDS:
        return False
    return luhn_valid(digits)


def _masked(digits: str) -> str:
    hidden = len(digits) - KEPT_FIRST - KEPT_LAST
    return digits[:KEPT_FIRST] + "*" * hidden + digits[-KEPT_LAST:]


def _mask_run(run: str, is_card: Callable[[str], bool]) -> str:
    """One pass over one digit run (a decimal number's two sides each on its own)."""
    dots = [at for at, char in enumerate(run) if char in _DOTS]
    if len(dots) == 1:
        cut = dots[0]
        return _mask_groups(run[:cut], is_card) + run[cut] + _mask_groups(run[cut + 1 :], is_card)
    return _mask_groups(run, is_card)


def _mask_groups(run: str, is_card: Callable[[str], bool]) -> str:
    """From the left, mask the longest card-number span starting at each group of ``run``."""
    groups = [(match.start(), match.end()) for match in _GROUP.finditer(run)]
    pieces: list[str] = []
    copied_to = 0
    first = 0
    while first < len(groups):
        best_last: int | None = None
        digits = ""
        for last in range(first, len(groups)):
            start, end = groups[last]
            digits += run[start:end]
            if len(digits) > MAX_CARD_DIGITS:
                break
            if len(digits) >= MIN_CARD_DIGITS and is_card(digits):
                best_last = last
        if best_last is None:
            first += 1
            continue
        span_start, span_end = groups[first][0], groups[best_last][1]
        number = "".join(run[start:end] for start, end in groups[first : best_last + 1])
        pieces.append(run[copied_to:span_start])
        pieces.append(_masked(number))
        copied_to = span_end
        first = best_last + 1
    pieces.append(run[copied_to:])
    return "".join(pieces)


def mask_card_numbers(text: str) -> str:
    """``text`` with every card number (13-19 digits passing Luhn, :func:`could_be_card`) masked to
    first six and last four digits: ``"pay 4242 4242 4242 4242"`` becomes ``"pay 424242******4242"``."""
    return _mask(text, could_be_card)


def mask_luhn_numbers(text: str) -> str:
    """``text`` masked by the rule before :func:`could_be_card`: every 13-19 digit span passing
    Luhn, whatever its first digit. For identifiers kept masked and looked up by how they were
    kept (an idempotency key, a complaint id: ``ingest.api.idempotency.KeyKeeper``): one stored
    masked by that rule must be found again by its repeat, or the repeat would charge again."""
    return _mask(text, _luhn_number)


def _luhn_number(digits: str) -> bool:
    return MIN_CARD_DIGITS <= len(digits) <= MAX_CARD_DIGITS and luhn_valid(digits)


def _mask(text: str, is_card: Callable[[str], bool]) -> str:
    if CARD_CANDIDATE.search(text) is None:
        return text
    if shortcuts.ENABLED and text.isascii() and text.isdigit():
        # At least thirteen digits (the check above), and one group that is never split.
        return _masked(text) if is_card(text) else text
    while True:
        masked = _DIGIT_RUN.sub(lambda match: _mask_run(match.group(), is_card), text)
        if masked == text or (shortcuts.ENABLED and CARD_CANDIDATE.search(masked) is None):
            return masked
        text = masked
