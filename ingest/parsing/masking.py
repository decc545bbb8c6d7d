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
  number. It is replaced by its first six digits, ``*`` for each digit in between and its last four
  digits, with the separators dropped: ``4242 4242 4242 4242`` becomes ``424242******4242``. Six
  and four digits are exactly what :func:`engine.processors.cards.card_key` reads, so a masked
  Stripe test card keeps its simulated outcome.
- Masking is repeated until nothing changes: a mask leaves ten digits in place, which could form
  a new card number with digits around it; every pass removes digits, so the loop ends.

The result holds no Luhn-valid 13-19 digit span in any digit run, whatever the input.

Shortcuts (:mod:`ingest.parsing.shortcuts`):

- Text of ASCII digits only is one group, so it is a card number exactly when the whole of it is
  one; its mask (ten digits split by ``*``) holds no thirteen digits, so nothing more would change.
- The loop stops as soon as a pass leaves no thirteen digits in a row (at most one separator
  between neighbours): a card number needs them, so another pass would change nothing.
- The Luhn check of ASCII digits doubles every second digit through a table.
"""

from __future__ import annotations

import re

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


def _masked(digits: str) -> str:
    hidden = len(digits) - KEPT_FIRST - KEPT_LAST
    return digits[:KEPT_FIRST] + "*" * hidden + digits[-KEPT_LAST:]


def _mask_run(run: str) -> str:
    """One pass over one digit run (a decimal number's two sides each on its own)."""
    dots = [at for at, char in enumerate(run) if char in _DOTS]
    if len(dots) == 1:
        cut = dots[0]
        return _mask_groups(run[:cut]) + run[cut] + _mask_groups(run[cut + 1 :])
    return _mask_groups(run)


def _mask_groups(run: str) -> str:
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
            if len(digits) >= MIN_CARD_DIGITS and luhn_valid(digits):
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
    """``text`` with every card number (13-19 digits passing Luhn) masked to first six and last
    four digits: ``"pay 4242 4242 4242 4242"`` becomes ``"pay 424242******4242"``."""
    if CARD_CANDIDATE.search(text) is None:
        return text
    if shortcuts.ENABLED and text.isascii() and text.isdigit():
        # At least thirteen digits (the check above), and one group that is never split.
        return _masked(text) if len(text) <= MAX_CARD_DIGITS and luhn_valid(text) else text
    while True:
        masked = _DIGIT_RUN.sub(lambda match: _mask_run(match.group()), text)
        if masked == text or (shortcuts.ENABLED and CARD_CANDIDATE.search(masked) is None):
            return masked
        text = masked
