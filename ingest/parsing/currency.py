"""Currencies as merchants write them: codes, numeric codes, symbols and English names.

Rules for the ``currency`` field (ISO 4217 data from the ``iso4217`` package):

- The alphabetic code in any case, surrounding whitespace trimmed: ``" usd "`` is USD. Anything
  but the exact code (``USD``) adds warning ``normalized``.
- The numeric code as text or a JSON integer (``"840"``, ``840``, ``"036"``): warning ``normalized``.
- A symbol: ``$`` USD, ``€`` EUR, ``£`` GBP, ``₹`` INR, ``₩`` KRW, ``₪`` ILS, ``₺`` TRY, ``₴`` UAH,
  ``₦`` NGN, ``₫`` VND, ``₱`` PHP: warning ``normalized``. ``¥`` is the yen's and the yuan's:
  JPY with warning ``ambiguous_symbol``.
- The ISO English name in any case (``"US Dollar"``, ``"euro"``, also a plural ``"euros"``):
  warning ``normalized``. A name two currencies share: error ``ambiguous_currency``.
- Missing, null or blank: the merchant's default currency, warning ``defaulted``.
- A fund, metal or other code without minor units (``XAU``, ``XDR``, ``959``): error
  ``unsupported_currency``. Anything else unrecognised: error ``unknown_currency``; a value of
  the wrong JSON type (boolean, fraction, array, object): error ``invalid_type``.

Inside an amount only symbols and alphabetic codes are read (:func:`amount_sign`). A symbol
agrees with every currency that writes it: ``$`` with the dollars and pesos, ``£`` with the
pounds, ``¥`` with JPY and CNY; a code agrees only with itself.

Shortcut (:mod:`ingest.parsing.shortcuts`): a short string (``"USD"``, ``"usd"``, ``"euro"``) is
answered with the reading the general path gave it, from a bounded cache: readings are immutable
and most requests repeat the same few spellings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from types import MappingProxyType

import iso4217

from engine.money import Currency
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.fields import FieldName
from ingest.parsing.issues import error, quote, warning
from ingest.parsing.values import JsonValue, LongNumber, as_text, kind_of

FIELD = FieldName.CURRENCY
#: Readings of strings up to this long are cached (see the shortcut above).
_CACHED_LENGTH = 32

#: symbol -> (the currency it means alone, the words in the names of the currencies it agrees with)
_SYMBOLS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "$": ("USD", ("Dollar", "Peso")),
        "€": ("EUR", ()),
        "£": ("GBP", ("Pound",)),
        "¥": ("JPY", ("Yen", "Yuan Renminbi")),
        "₹": ("INR", ()),
        "₩": ("KRW", ()),
        "₪": ("ILS", ()),
        "₺": ("TRY", ()),
        "₴": ("UAH", ()),
        "₦": ("NGN", ()),
        "₫": ("VND", ()),
        "₱": ("PHP", ()),
    }
)
AMBIGUOUS_SYMBOLS = frozenset({"¥"})
SYMBOLS = frozenset(_SYMBOLS)


@dataclass(frozen=True, slots=True)
class _Entry:
    code: str
    name: str


@cache
def _entries() -> Mapping[str, _Entry]:
    return MappingProxyType({item.code: _Entry(item.code, item.currency_name) for item in iso4217.Currency})


@cache
def _numeric() -> Mapping[int, str]:
    return MappingProxyType({item.number: item.code for item in iso4217.Currency})


def _name_key(name: str) -> str:
    return " ".join(name.replace("\u2019", "'").casefold().split())


@cache
def _names() -> Mapping[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for entry in _entries().values():
        table.setdefault(_name_key(entry.name), []).append(entry.code)
    return MappingProxyType({name: tuple(sorted(codes)) for name, codes in table.items()})


@cache
def _active() -> frozenset[str]:
    return frozenset(Currency.all_codes())


@dataclass(frozen=True, slots=True)
class CurrencyMatch:
    """What a piece of text names: a currency, or why it names none (``problem`` is the code)."""

    currency: Currency | None
    how: str = "code"
    problem: str | None = None
    detail: str = ""

    @property
    def ambiguous(self) -> bool:
        return self.how == "ambiguous symbol"


def _by_code(code: str, how: str) -> CurrencyMatch:
    if code in _active():
        return CurrencyMatch(Currency(code), how)
    entry = _entries().get(code)
    if entry is not None:
        detail = f"is {code} ({entry.name}), which payments cannot be made in"
        return CurrencyMatch(None, how, "unsupported_currency", detail)
    return CurrencyMatch(None, how, "unknown_currency", "is not an ISO 4217 currency")


def match_alpha_code(text: str) -> CurrencyMatch | None:
    """Three ASCII letters as an alphabetic code; ``None`` for text of another shape or a
    three-letter word that is no code at all."""
    if len(text) != 3 or not (text.isascii() and text.isalpha()):
        return None
    code = text.upper()
    if code not in _entries():
        return None
    return _by_code(code, "code")


def match_numeric(number: int) -> CurrencyMatch:
    code = _numeric().get(number)
    if code is None:
        return CurrencyMatch(None, "numeric code", "unknown_currency", "is not an ISO 4217 numeric code")
    return _by_code(code, "numeric code")


def match_symbol(text: str) -> CurrencyMatch | None:
    known = _SYMBOLS.get(text)
    if known is None:
        return None
    how = "ambiguous symbol" if text in AMBIGUOUS_SYMBOLS else "symbol"
    return CurrencyMatch(Currency(known[0]), how)


def match_name(text: str) -> CurrencyMatch | None:
    key = _name_key(text)
    codes = _names().get(key)
    if codes is None and key.endswith("s"):
        codes = _names().get(key[:-1])
    if codes is None:
        return None
    if len(codes) > 1:
        return CurrencyMatch(None, "name", "ambiguous_currency", f"names {' and '.join(codes)}")
    return _by_code(codes[0], "name")


def match_text(text: str) -> CurrencyMatch:
    """The currency ``text`` (already trimmed, not blank) names, however it is written."""
    alpha = match_alpha_code(text)
    if alpha is not None:
        return alpha
    if text.isascii() and text.isdigit() and len(text) <= 3:
        return match_numeric(int(text))
    return (
        match_symbol(text)
        or match_name(text)
        or CurrencyMatch(None, "code", "unknown_currency", "is not an ISO 4217 currency")
    )


@dataclass(frozen=True, slots=True)
class AmountSign:
    """A symbol or code written in an amount (``"$12.50"``, ``"12.50 EUR"``) and what it means."""

    text: str
    currency: Currency
    ambiguous: bool = False

    def agrees_with(self, currency: Currency) -> bool:
        """Whether the sign fits ``currency``: ``$`` fits the Canadian dollar and the Mexican peso."""
        if self.currency == currency:
            return True
        known = _SYMBOLS.get(self.text)
        return known is not None and any(word in currency.name for word in known[1])


def amount_sign(text: str) -> AmountSign | CurrencyMatch | None:
    """A symbol or an alphabetic code written in an amount: what it means, the problem with it
    (a :class:`CurrencyMatch` without a currency), or ``None`` when it is neither."""
    found = match_symbol(text) or match_alpha_code(text)
    if found is None or found.currency is None:
        return found
    return AmountSign(text, found.currency, found.ambiguous)


@dataclass(frozen=True, slots=True)
class CurrencyReading:
    """The ``currency`` field: ``given`` is false when it was missing, null or blank."""

    currency: Currency | None
    given: bool
    issues: tuple[ValidationIssue, ...] = ()


def _from_match(match: CurrencyMatch, raw: str, exact: bool) -> CurrencyReading:
    if match.currency is None:
        problem = match.problem or "unknown_currency"
        return CurrencyReading(None, True, (error(FIELD, problem, f"{quote(raw)} {match.detail}", raw),))
    code = match.currency.code
    if match.ambiguous:
        message = f"{quote(raw)} is the sign of the yen and of the yuan; read it as {code}"
        return CurrencyReading(match.currency, True, (warning(FIELD, "ambiguous_symbol", message, raw),))
    if exact:
        return CurrencyReading(match.currency, True)
    message = f"read the {match.how} {quote(raw)} as {code} ({match.currency.name})"
    return CurrencyReading(match.currency, True, (warning(FIELD, "normalized", message, raw),))


def read_currency(value: JsonValue) -> CurrencyReading:
    """The ``currency`` field's value (``None`` when absent) as a currency; defaults are applied by
    the caller, which also knows the amount's sign."""
    if shortcuts.ENABLED and type(value) is str and len(value) <= _CACHED_LENGTH:
        return _cached_reading(value)
    return _read_currency(value)


@lru_cache(maxsize=256)
def _cached_reading(text: str) -> CurrencyReading:
    return _read_currency(text)


def _read_currency(value: JsonValue) -> CurrencyReading:
    """The general path of :func:`read_currency`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return CurrencyReading(None, False)
    if isinstance(value, str):
        text = value.strip()
        return _from_match(match_text(text), value, exact=value == text and text in _active())
    if isinstance(value, int) and not isinstance(value, bool):
        return _from_match(match_numeric(value), as_text(value), exact=False)
    if isinstance(value, LongNumber):
        raw = as_text(value)
        message = f"{quote(raw)} is not an ISO 4217 numeric code"
        return CurrencyReading(None, True, (error(FIELD, "unknown_currency", message, raw),))
    raw = as_text(value)
    message = f"the currency must be a code, a symbol or a name, not {kind_of(value)}"
    return CurrencyReading(None, True, (error(FIELD, "invalid_type", message, raw),))


def defaulted(default: Currency) -> ValidationIssue:
    message = f"no currency given; used the merchant's default {default.code}"
    return warning(FIELD, "defaulted", message)
