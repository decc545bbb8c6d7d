"""Currencies (ISO 4217, from the ``iso4217`` data package) and money in integer minor units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

import iso4217

from engine.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError

#: The largest amount any wire format of payorch can carry (a signed 64-bit integer).
MAX_MINOR_UNITS = 2**63 - 1


@dataclass(frozen=True, slots=True)
class _CurrencyData:
    code: str
    numeric: int
    exponent: int
    name: str


@cache
def _active_currencies() -> Mapping[str, _CurrencyData]:
    """Every ISO 4217 currency that has minor units; funds and metals (exponent N.A.) are left out."""
    table: dict[str, _CurrencyData] = {}
    for entry in iso4217.Currency:
        if entry.exponent is None or entry.number is None:
            continue
        table[entry.code] = _CurrencyData(entry.code, entry.number, entry.exponent, entry.currency_name)
    return MappingProxyType(table)


@cache
def _by_numeric() -> Mapping[int, str]:
    return MappingProxyType({data.numeric: code for code, data in _active_currencies().items()})


@dataclass(frozen=True, slots=True)
class Currency:
    """An active ISO 4217 currency, identified by its alphabetic code (``USD``).

    The exponent is the number of minor-unit digits: 2 for USD, 0 for JPY, 3 for BHD.
    """

    code: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or self.code not in _active_currencies():
            raise UnknownCurrencyError(
                "currency", self.code, "is not an active ISO 4217 alphabetic code with minor units"
            )

    @classmethod
    def from_numeric(cls, numeric: int) -> Currency:
        """The currency with ISO 4217 numeric code ``numeric`` (840 is USD)."""
        code = _by_numeric().get(numeric) if isinstance(numeric, int) else None
        if code is None:
            raise UnknownCurrencyError("currency", numeric, "is not an active ISO 4217 numeric code")
        return cls(code)

    @staticmethod
    def all_codes() -> tuple[str, ...]:
        """Every active currency code, sorted."""
        return tuple(sorted(_active_currencies()))

    @property
    def _data(self) -> _CurrencyData:
        return _active_currencies()[self.code]

    @property
    def exponent(self) -> int:
        return self._data.exponent

    @property
    def numeric(self) -> int:
        return self._data.numeric

    @property
    def name(self) -> str:
        return self._data.name

    def __str__(self) -> str:
        return self.code


def check_minor_units(field: str, value: object) -> int:
    """Return ``value`` when it is a non-negative integer amount of minor units in range."""
    if type(value) is int and 0 <= value <= MAX_MINOR_UNITS:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmountError(field, value, "must be an integer number of minor units")
    if value < 0:
        raise InvalidAmountError(field, value, "must not be negative")
    if value > MAX_MINOR_UNITS:
        raise InvalidAmountError(field, value, f"must be at most {MAX_MINOR_UNITS}")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """A non-negative amount in integer minor units of one currency (1999 USD is $19.99)."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        check_minor_units("amount", self.minor)
        if not isinstance(self.currency, Currency):
            raise UnknownCurrencyError("currency", self.currency, "must be a Currency")

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(0, currency)

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise InvalidAmountError("amount", other, "must be Money")
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                "currency", other.currency.code, f"cannot be combined with {self.currency.code}"
            )

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        """The difference; an amount can never go below zero."""
        self._same_currency(other)
        if other.minor > self.minor:
            raise InvalidAmountError(
                "amount", self.minor - other.minor, "subtraction would make the amount negative"
            )
        return Money(self.minor - other.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor >= other.minor

    def min(self, other: Money) -> Money:
        """The smaller of two amounts in the same currency."""
        return self if self <= other else other

    @property
    def is_zero(self) -> bool:
        return self.minor == 0

    def format(self) -> str:
        """The amount in major units with the currency's exponent (``12.50 USD``, ``1500 JPY``)."""
        exponent = self.currency.exponent
        if exponent == 0:
            return f"{self.minor} {self.currency.code}"
        whole, fraction = divmod(self.minor, 10**exponent)
        return f"{whole}.{fraction:0{exponent}d} {self.currency.code}"

    def __str__(self) -> str:
        return self.format()
