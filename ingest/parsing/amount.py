"""The amount: minor or major units, separators, signs; and the currency it is counted in.

Rules (PRODUCT.md section 5; all issues on field ``amount`` unless said otherwise):

- A JSON integer, or a string of digits only, is minor units (``1250`` is 12.50 USD).
- A JSON number with a fraction or exponent, or a string with a decimal or thousands separator,
  a currency symbol or a code, is major units, converted with the currency's ISO 4217 exponent
  (``"12.50"`` USD is 1250, ``"1500"`` JPY 1500, ``"1.234"`` BHD 1234). Separators follow
  :mod:`ingest.parsing.numerals`; the ambiguous lone comma (``"1,234"``) is read as thousands
  with warning ``ambiguous_separator``.
- Decimals beyond the exponent: dropped with warning ``excess_precision`` when they are zeros
  (``"1500.00"`` JPY), error ``too_precise`` otherwise (``"12.345"`` USD).
- Errors: missing, null or blank ``missing``; boolean, array or object ``invalid_type``; text
  that is no amount ``invalid_amount`` (the message says why: no digits at all, a word that is no
  currency, a character that is no digit or separator); zero or negative ``not_positive``; NaN
  or infinite ``not_finite``, whether the JSON literal (``NaN``, ``Infinity``) or text naming one
  (``"NaN"``, ``"inf"``, ``"-Infinity"``, any case); more than the merchant's maximum
  ``over_maximum``. The maximum is never above 2**63-1 minor units, so an amount beyond that (a
  hundred digits, ``1e400``) is over it too, and is told so: the internal limit is never shown.
- A sign (``+``, ``-`` or the minus sign U+2212) may lead; a symbol or code may stand at either end
  (``"$12.50"``, ``"12.50 USD"``, ``"EUR 10,00"``, ``"-€5"``); surrounding whitespace is trimmed.
- The symbol or code is a currency too. With no ``currency`` field it becomes the currency
  (warning ``currency_from_amount`` on ``currency``; ``¥`` adds ``ambiguous_symbol``); when it
  disagrees with the ``currency`` field: error ``currency_mismatch``. With neither, the merchant's
  default currency is used (warning ``defaulted`` on ``currency``).

Shortcuts (:mod:`ingest.parsing.shortcuts`):

- A positive JSON integer is read directly to its digits; within the merchant's maximum (itself
  at most 2**63-1) it is settled directly too (:func:`settle_minor_units`).
- A string of ASCII digits with at most one ``.`` after the first digit (``"1250"``, ``"12.50"``)
  and nothing else, not zero, has no sign, no currency and no thousands separator: it is read
  directly, to what the numeral rules give it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from engine.config import MerchantConfig
from engine.money import MAX_MINOR_UNITS, Currency, Money
from engine.unchecked import unchecked
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.currency import SYMBOLS, AmountSign, CurrencyReading, amount_sign, defaulted
from ingest.parsing.fields import FieldName
from ingest.parsing.issues import error, quote, warning
from ingest.parsing.numerals import NumeralProblem, read_numeral
from ingest.parsing.values import JsonValue, LongNumber, as_text, kind_of

FIELD = FieldName.AMOUNT
_MAX_DIGITS = len(str(MAX_MINOR_UNITS))
_SIGNS = {"+": False, "-": True, "\u2212": True}
_PLAIN = re.compile(r"(?P<whole>[0-9]+)(?P<point>\.[0-9]*)?")
_DIGIT = re.compile(r"\d")  # any decimal digit: the numeral rules explain why one is not ASCII
#: Text that names no finite number, as Python's float() and Decimal() read it (lower-cased).
_NOT_FINITE = frozenset({"nan", "inf", "infinity"})


@dataclass(frozen=True, slots=True)
class AmountReading:
    """The amount before its currency is settled: ``minor_digits`` (minor units) or ``major``
    when it can still become an amount, else the ``issues`` that stopped it."""

    raw: str | None = None
    minor_digits: str | None = None
    major: Decimal | None = None
    sign: AmountSign | None = None
    thousands_guess: bool = False
    issues: tuple[ValidationIssue, ...] = ()


def _stop(code: str, message: str, raw: str | None, sign: AmountSign | None = None) -> AmountReading:
    return AmountReading(raw=raw, sign=sign, issues=(error(FIELD, code, message, raw),))


def _take_sign(text: str) -> tuple[bool, str]:
    if text[:1] in _SIGNS:
        return _SIGNS[text[0]], text[1:].lstrip()
    return False, text


def _take_currency(text: str, *, at_end: bool) -> tuple[str | None, str]:
    """A symbol or a three-letter word at one end of ``text``, and the rest."""
    end = text[-1:] if at_end else text[:1]
    if end in SYMBOLS:
        return end, (text[:-1] if at_end else text[1:]).strip()
    word = text[-3:] if at_end else text[:3]
    beyond = text[-4:-3] if at_end else text[3:4]
    # "NaN" and "inf" are three letters too, but name numbers: not_finite says more than "no currency".
    if (
        len(word) == 3
        and word.isascii()
        and word.isalpha()
        and not beyond.isalpha()
        and word.lower() not in _NOT_FINITE
    ):
        return word, (text[:-3] if at_end else text[3:]).strip()
    return None, text


def _read_signs(words: list[str], raw: str) -> AmountSign | AmountReading:
    """The currency written in the amount; two must agree (``"$12.50 USD"``)."""
    signs: list[AmountSign] = []
    for word in words:
        sign = amount_sign(word)
        if sign is None:
            return _stop(
                "invalid_amount", f"{quote(raw)} is not an amount: {quote(word)} is not a currency", raw
            )
        if not isinstance(sign, AmountSign):
            problem = sign.problem or "unknown_currency"
            return _stop(problem, f"{quote(raw)}: {quote(word)} {sign.detail}", raw)
        signs.append(sign)
    first, *others = signs
    for other in others:
        if not (first.agrees_with(other.currency) or other.agrees_with(first.currency)):
            message = f"{quote(raw)} names two currencies: {quote(first.text)} and {quote(other.text)}"
            return _stop("currency_mismatch", message, raw)
    # A code says more than a symbol: "$10 CAD" is Canadian dollars.
    return next((sign for sign in signs if sign.text not in SYMBOLS), first)


def _read_plain(raw: str) -> AmountReading | None:
    """``raw`` read directly when it is plain digits, with or without a decimal point."""
    plain = _PLAIN.fullmatch(raw)
    if plain is None or not raw.replace(".", "").strip("0"):
        return None  # other shapes, and zero (whose message the general path writes)
    if plain["point"] is None:
        return AmountReading(raw=raw, minor_digits=raw)
    # The numeral rules give whole "." fraction, which is raw itself.
    return AmountReading(raw=raw, major=Decimal(raw))


def _read_text(raw: str) -> AmountReading:
    if shortcuts.ENABLED and type(raw) is str:
        plain = _read_plain(raw)
        if plain is not None:
            return plain
    text = raw.strip()
    if not text:
        return _stop("missing", "the amount is blank", raw)
    negative, text = _take_sign(text)
    first, text = _take_currency(text, at_end=False)
    if first is not None and not negative:
        negative, text = _take_sign(text)
    last, text = _take_currency(text, at_end=True)
    # The number itself is looked at before any word beside it: "abc" is no amount before it is
    # no currency.
    if text.lower() in _NOT_FINITE:
        return _stop("not_finite", f"{quote(raw)} is not a finite number", raw)
    if _DIGIT.search(text) is None:
        return _stop("invalid_amount", f"{quote(raw)} is not an amount: there are no digits", raw)
    words = [word for word in (first, last) if word is not None]
    sign: AmountSign | None = None
    if words:
        found = _read_signs(words, raw)
        if isinstance(found, AmountReading):
            return found
        sign = found
    numeral = read_numeral(text)
    if isinstance(numeral, NumeralProblem):
        return _stop("invalid_amount", f"{quote(raw)} is not an amount: {numeral.reason}", raw, sign)
    digits = (numeral.whole + (numeral.fraction or "")).strip("0")
    if negative and digits:
        return _stop("not_positive", f"{quote(raw)} is negative", raw, sign)
    if not digits:
        return _stop("not_positive", f"{quote(raw)} is zero", raw, sign)
    if numeral.plain and sign is None:
        return AmountReading(raw=raw, minor_digits=numeral.whole)
    written = numeral.whole if numeral.fraction is None else f"{numeral.whole}.{numeral.fraction}"
    major = Decimal(written)
    return AmountReading(raw=raw, major=major, sign=sign, thousands_guess=numeral.thousands_guess)


def read_amount(value: JsonValue) -> AmountReading:
    """The ``amount`` field's value (``None`` when absent or null), before its currency is known."""
    if shortcuts.ENABLED and type(value) is int and value > 0:
        digits = str(value)  # what as_text gives an int, and the minor units it writes
        return AmountReading(raw=digits, minor_digits=digits)
    if value is None:
        return _stop("missing", "no amount given", None)
    raw = as_text(value)
    if isinstance(value, str):
        return _read_text(value)
    if isinstance(value, bool | list | dict):
        return _stop("invalid_type", f"the amount must be a number or a string, not {kind_of(value)}", raw)
    if isinstance(value, LongNumber):
        if value.negative:
            return _stop("not_positive", f"{quote(raw)} is negative", raw)
        # Too long to convert, but digits all the same: settling finds it over the maximum.
        return AmountReading(raw=raw, minor_digits=value.text)
    if isinstance(value, int):
        if value <= 0:
            return _stop("not_positive", f"{quote(raw)} is {'zero' if value == 0 else 'negative'}", raw)
        return AmountReading(raw=raw, minor_digits=str(value))
    major = Decimal(repr(value)) if isinstance(value, float) else value
    if not major.is_finite():
        return _stop("not_finite", f"{quote(raw)} is not a finite number", raw)
    if major <= 0:
        return _stop("not_positive", f"{quote(raw)} is {'zero' if major == 0 else 'negative'}", raw)
    return AmountReading(raw=raw, major=major)


@dataclass(frozen=True, slots=True)
class Settlement:
    """The amount in minor units and its currency, with the issues of both fields.

    ``amount_cents`` is the best reading: set whenever the amount is a positive whole number of
    minor units in range (even over the merchant's maximum), ``None`` otherwise.
    """

    amount_cents: int | None
    currency: Currency | None
    amount_issues: tuple[ValidationIssue, ...]
    currency_issues: tuple[ValidationIssue, ...]


#: :class:`Settlement` built without a frozen dataclass's ``__init__`` (it has no check to skip),
#: for :func:`settle_minor_units`, which most payments take.
_settlement = unchecked(Settlement)


#: A ``_Scaled`` problem: more minor units than any amount may have (2**63-1), so more than any
#: merchant's maximum.
_BEYOND_RANGE = "beyond_range"


@dataclass(frozen=True, slots=True)
class _Scaled:
    minor: int | None
    problem: str | None = None
    dropped_zeros: bool = False


def _from_digits(digits: str) -> _Scaled:
    significant = digits.lstrip("0") or "0"
    # Checking the length first keeps int() away from its 4300-digit limit.
    if len(significant) > _MAX_DIGITS:
        return _Scaled(None, _BEYOND_RANGE)
    minor = int(significant)
    return _Scaled(None, _BEYOND_RANGE) if minor > MAX_MINOR_UNITS else _Scaled(minor)


def _scale(major: Decimal, exponent: int) -> _Scaled:
    """``major`` in minor units of a currency with ``exponent``, without Decimal arithmetic (an
    exponent like ``1e999999999`` would overflow the context)."""
    _, digit_tuple, power = major.as_tuple()
    if not isinstance(power, int):  # NaN and infinities were refused before
        return _Scaled(None, "not_finite")
    digits = "".join(str(digit) for digit in digit_tuple)
    shift = power + exponent
    if shift >= 0:
        significant = digits.lstrip("0")
        if len(significant) + shift > _MAX_DIGITS:
            return _Scaled(None, _BEYOND_RANGE)
        return _from_digits(significant + "0" * shift)
    cut = -shift
    kept, dropped = (digits[:-cut], digits[-cut:]) if cut < len(digits) else ("", digits)
    whole = _from_digits(kept or "0")
    if whole.problem is not None:
        return whole
    if dropped.strip("0"):
        return _Scaled(None, "too_precise")
    return _Scaled(whole.minor, dropped_zeros=bool(dropped))


def _shown(reading: AmountReading, minor: int | None, currency: Currency | None) -> str:
    if minor is not None and currency is not None:
        return Money(minor, currency).format()
    return f"{reading.major} {currency.code if currency else ''}".strip()


def _convert(
    reading: AmountReading, currency: Currency | None, merchant: MerchantConfig
) -> tuple[int | None, list[ValidationIssue]]:
    raw = reading.raw
    issues: list[ValidationIssue] = []
    if reading.minor_digits is not None:
        scaled = _from_digits(reading.minor_digits)
    elif reading.major is not None and currency is not None:
        scaled = _scale(reading.major, currency.exponent)
    else:  # major units without a usable currency: the currency's own error explains why
        scaled = _Scaled(None)
    if reading.thousands_guess:
        message = (
            f"read {quote(raw or '')} as {_shown(reading, scaled.minor, currency)} "
            '(took "," as a thousands separator; it could also be a decimal comma)'
        )
        issues.append(warning(FIELD, "ambiguous_separator", message, raw))
    if scaled.problem == _BEYOND_RANGE:
        # Every merchant's maximum is within the range (config checks it): this is over it too.
        message = (
            f"{quote(raw or '')} is more than the merchant's maximum of {merchant.max_amount_cents} "
            "minor units"
        )
        issues.append(error(FIELD, "over_maximum", message, raw))
    elif scaled.problem == "too_precise" and currency is not None:
        message = f"{quote(raw or '')} has more decimals than {currency.code} has ({currency.exponent})"
        issues.append(error(FIELD, "too_precise", message, raw))
    minor = scaled.minor
    if minor is None:
        return minor, issues
    if scaled.dropped_zeros and currency is not None:
        message = (
            f"read {quote(raw or '')} as {Money(minor, currency).format()} ({currency.code} has "
            f"{currency.exponent} decimals; dropped the extra zeros)"
        )
        issues.append(warning(FIELD, "excess_precision", message, raw))
    if minor > merchant.max_amount_cents:
        message = f"{minor} minor units is more than the merchant's maximum of {merchant.max_amount_cents}"
        issues.append(error(FIELD, "over_maximum", message, raw))
    return minor, issues


def settle_minor_units(
    value: JsonValue, currency_reading: CurrencyReading, merchant: MerchantConfig
) -> Settlement | None:
    """Shortcut for the commonest amount, a JSON integer of minor units from 1 to the merchant's
    maximum: the settlement :func:`settle` gives it, without the steps that cannot apply to it (it
    has no sign, nothing to scale and no issue of its own). ``None`` for any other amount."""
    if not shortcuts.ENABLED or type(value) is not int or not 0 < value <= merchant.max_amount_cents:
        return None
    if currency_reading.given:
        return _settlement(
            amount_cents=value,
            currency=currency_reading.currency,
            amount_issues=(),
            currency_issues=currency_reading.issues,
        )
    default = merchant.default_currency
    return _settlement(
        amount_cents=value, currency=default, amount_issues=(), currency_issues=(defaulted(default),)
    )


def settle(
    reading: AmountReading,
    currency_reading: CurrencyReading,
    merchant: MerchantConfig,
    *,
    currency_conflicting: bool = False,
) -> Settlement:
    """Settle which currency the amount is in, then convert it to minor units."""
    amount_issues = list(reading.issues)
    currency_issues = list(currency_reading.issues)
    sign = reading.sign
    raw = reading.raw or ""
    live = not reading.issues
    currency: Currency | None
    if currency_conflicting:
        currency = None
    elif currency_reading.given:
        currency = currency_reading.currency
        if sign is not None and currency is not None and not sign.agrees_with(currency):
            if live:
                message = (
                    f"the amount {quote(raw)} is in {sign.currency.code} but the currency is {currency.code}"
                )
                amount_issues.append(error(FIELD, "currency_mismatch", message, raw))
            live = False
    elif sign is not None:
        currency = sign.currency
        message = f"no currency given; used {currency.code} from the amount {quote(raw)}"
        currency_issues.append(warning(FieldName.CURRENCY, "currency_from_amount", message, raw))
        if sign.ambiguous:
            message = f"{quote(sign.text)} is the sign of the yen and of the yuan; read it as {currency.code}"
            amount_issues.append(warning(FIELD, "ambiguous_symbol", message, raw))
    else:
        currency = merchant.default_currency
        currency_issues.append(defaulted(currency))
    minor: int | None = None
    if live:
        minor, issues = _convert(reading, currency, merchant)
        amount_issues.extend(issues)
    return Settlement(minor, currency, tuple(amount_issues), tuple(currency_issues))
