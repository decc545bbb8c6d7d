"""Numbers as merchants write them: digits, decimal separators and thousands separators.

Rules (the text has no sign and no currency left; see :mod:`ingest.parsing.amount`):

- Only ASCII digits, ``.``, ``,``, apostrophes (``'`` and U+2019) and spaces (ordinary, no-break,
  thin and narrow no-break) may appear, and no two separators side by side.
- Digits only: a whole number written without separators (the amount rules read it as minor
  units).
- Spaces and apostrophes only ever separate thousands.
- Both ``,`` and ``.``: the last of the two is the decimal separator (it must occur once and be
  the last separator); the other separates thousands: ``1,234.56``, ``1.234,56``.
- One of them, more than once: thousands (``1,234,567``, ``1.234.567``).
- One of them, once: the decimal separator, with one exception: a lone ``,`` followed by exactly
  three digits, after a leading group that could start a thousands grouping (1-3 digits, not
  starting with 0) and with no other separator, is *ambiguous*: it is read as thousands and the
  reading says so (``1,234`` is 1234; the caller warns). A lone ``.`` is always decimal.
- Thousands separators are of one kind, and the groups they separate have three digits after a
  first group of one to three; the Indian grouping (``12,34,567``: threes at the end, twos
  before) is accepted too.
- Either side of the decimal separator may be empty (``.50``, ``12.``), not both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATORS = re.compile(r"([.,'\u2019 \u00a0\u2009\u202f])")
_KIND = {
    ".": "dot",
    ",": "comma",
    "'": "apostrophe",
    "\u2019": "apostrophe",
    " ": "space",
    "\u00a0": "space",
    "\u2009": "space",
    "\u202f": "space",
}


@dataclass(frozen=True, slots=True)
class Numeral:
    """A number read from text: ``whole`` digits and, after a decimal separator, ``fraction``
    digits (``None`` without one). ``plain`` is true for digits alone; ``thousands_guess`` marks
    the ambiguous lone comma read as a thousands separator."""

    whole: str
    fraction: str | None
    plain: bool
    thousands_guess: bool = False


@dataclass(frozen=True, slots=True)
class NumeralProblem:
    """Why a text is no number, said to the merchant."""

    reason: str


def _digits(group: str) -> bool:
    return group.isascii() and group.isdigit()


def _grouped(groups: list[str]) -> bool:
    """Whether digit groups split by thousands separators are well formed."""
    if any(not group for group in groups) or groups[0].startswith("0"):
        return False
    first, rest = groups[0], groups[1:]
    if len(first) <= 3 and all(len(group) == 3 for group in rest):
        return True
    # The Indian grouping: 12,34,56,789.
    return (
        len(groups) >= 3
        and len(first) <= 2
        and len(rest[-1]) == 3
        and all(len(group) == 2 for group in rest[:-1])
    )


def _decimal_index(groups: list[str], separators: list[str]) -> int | NumeralProblem | None:
    """Which separator is the decimal separator (``None``: all separate thousands)."""
    dots = [i for i, sep in enumerate(separators) if sep == "."]
    commas = [i for i, sep in enumerate(separators) if sep == ","]
    others = len(separators) - len(dots) - len(commas)
    if dots and commas:
        last = max(dots[-1], commas[-1])
        if separators.count(separators[last]) > 1:
            return NumeralProblem(f"{separators[last]!r} is the last separator but appears more than once")
        return last
    marks = dots or commas
    if not marks or len(marks) > 1:
        return None
    only = marks[0]
    if others:
        return only
    ambiguous = separators[only] == "," and len(groups[1]) == 3 and _grouped(groups)
    return None if ambiguous else only


def read_numeral(text: str) -> Numeral | NumeralProblem:
    """The number ``text`` writes (see the module rules)."""
    parts = _SEPARATORS.split(text)
    groups, separators = parts[0::2], parts[1::2]
    for group in groups:
        if group and not _digits(group):
            bad = next(char for char in group if not ("0" <= char <= "9"))
            return NumeralProblem(f"{bad!r} is not a digit or a separator")
    if not separators:
        if not groups[0]:
            return NumeralProblem("there are no digits")
        return Numeral(groups[0], None, plain=True)
    decimal = _decimal_index(groups, separators)
    if isinstance(decimal, NumeralProblem):
        return decimal
    if decimal is not None and decimal != len(separators) - 1:
        return NumeralProblem("a separator follows the decimal separator")
    thousands = separators if decimal is None else separators[:decimal]
    whole_groups = groups if decimal is None else groups[: decimal + 1]
    if len({_KIND[sep] for sep in thousands}) > 1:
        return NumeralProblem("it mixes different thousands separators")
    if thousands and not _grouped(whole_groups):
        return NumeralProblem("the digit groups between thousands separators do not have three digits")
    whole = "".join(whole_groups)
    fraction = None if decimal is None else groups[decimal + 1]
    if not whole and not fraction:
        return NumeralProblem("there are no digits")
    guessed = decimal is None and separators == [","]
    return Numeral(whole or "0", fraction, plain=False, thousands_guess=guessed)
