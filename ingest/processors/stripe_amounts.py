"""Amounts as Stripe writes them, to and from payorch's ISO 4217 minor units.

payorch counts money in each currency's ISO 4217 minor units (``engine.money``). Stripe takes and
answers amounts in "the currency's smallest unit" too, with exceptions that its currencies page
documents (docs.stripe.com/currencies: zero-decimal currencies, three-decimal currencies and
special cases). For a charge, a refund or a void those are:

========================  ============  ===============  ===========================================
currency                  ISO exponent  Stripe exponent  Stripe's own rule
========================  ============  ===============  ===========================================
ISK, UGX                  0             2                kept two-decimal for backwards
                                                         compatibility: whole units only, so the
                                                         amount always ends in ``00`` (5000 ISK is
                                                         sent as 500000)
MGA                       2             0                zero-decimal at Stripe
BHD, JOD, KWD, OMR, TND   3             3                the last digit must be 0 (amounts are
                                                         rounded to the nearest ten)
========================  ============  ===============  ===========================================

Every other currency is sent as its ISO minor units. (Stripe's HUF and TWD special cases concern
payouts only: charges and refunds take two-decimal amounts, as ISO does.)

An amount Stripe cannot take exactly (1.235 KWD, 12.34 MGA) is refused here, before anything is
sent: rounding it would charge another amount than the one asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from engine.money import Currency
from ingest.processors.errors import MalformedProcessorResponseError, UnsupportedAmountError


@dataclass(frozen=True, slots=True)
class StripeUnits:
    """How Stripe writes one currency's amounts: with ``exponent`` decimals, in steps of ``step``."""

    exponent: int
    step: int = 1


_THREE_DECIMAL = StripeUnits(3, 10)
_WHOLE_UNITS_AS_TWO_DECIMAL = StripeUnits(2, 100)

#: The currencies whose Stripe amounts differ from their ISO 4217 minor units (see the module text).
SPECIAL_CURRENCIES = MappingProxyType(
    {
        "ISK": _WHOLE_UNITS_AS_TWO_DECIMAL,
        "UGX": _WHOLE_UNITS_AS_TWO_DECIMAL,
        "MGA": StripeUnits(0),
        "BHD": _THREE_DECIMAL,
        "JOD": _THREE_DECIMAL,
        "KWD": _THREE_DECIMAL,
        "OMR": _THREE_DECIMAL,
        "TND": _THREE_DECIMAL,
    }
)


def _power_of_ten(exponent: int) -> int:
    return int(10**exponent)


def stripe_units(currency: Currency) -> StripeUnits:
    return SPECIAL_CURRENCIES.get(currency.code) or StripeUnits(currency.exponent)


def to_stripe(minor: int, currency: Currency) -> int:
    """The Stripe amount for ``minor`` ISO minor units of ``currency``.

    Raises :class:`UnsupportedAmountError` when Stripe cannot take that amount exactly.
    """
    units = stripe_units(currency)
    shift = units.exponent - currency.exponent
    if shift >= 0:
        amount = minor * _power_of_ten(shift)
    else:
        amount, rest = divmod(minor, _power_of_ten(-shift))
        if rest:
            raise UnsupportedAmountError(currency.code, minor, f"Stripe takes {currency.code} in whole units")
    if amount % units.step:
        raise UnsupportedAmountError(
            currency.code, minor, f"Stripe takes {currency.code} in steps of {units.step} of its units"
        )
    return amount


def stripe_amount_refusal(minor: int, currency: Currency) -> str | None:
    """Why Stripe cannot take ``minor`` ISO minor units of ``currency`` exactly, or ``None``
    (the engine's ``AmountCheck`` of a Stripe processor)."""
    try:
        to_stripe(minor, currency)
    except UnsupportedAmountError as error:
        return error.problem
    return None


def to_stripe_cap(minor: int, currency: Currency) -> int:
    """The largest Stripe amount of ``currency`` that is at most ``minor`` ISO minor units (a limit,
    such as "refund up to", never an amount to send as it is)."""
    units = stripe_units(currency)
    shift = units.exponent - currency.exponent
    amount = minor * _power_of_ten(shift) if shift >= 0 else minor // _power_of_ten(-shift)
    return amount - amount % units.step


def from_stripe(amount: int, currency: Currency, what: str) -> int:
    """The ISO minor units of a Stripe ``amount`` of ``currency`` (``what`` names the field).

    Raises :class:`MalformedProcessorResponseError` when the amount is not a whole number of ISO
    minor units (an ISK amount that does not end in ``00``).
    """
    shift = stripe_units(currency).exponent - currency.exponent
    if shift <= 0:
        return amount * _power_of_ten(-shift)
    minor, rest = divmod(amount, _power_of_ten(shift))
    if rest:
        raise MalformedProcessorResponseError(
            what, f"{amount} is not a whole number of {currency.code} minor units at Stripe's scale"
        )
    return minor
