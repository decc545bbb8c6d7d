import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import CurrencyMismatchError, DomainError, InvalidAmountError, UnknownCurrencyError
from engine.money import MAX_MINOR_UNITS, Currency, Money

USD = Currency("USD")
EUR = Currency("EUR")

currencies = st.sampled_from(Currency.all_codes()).map(Currency)
minor_units = st.integers(min_value=0, max_value=MAX_MINOR_UNITS // 3)
any_minor_units = st.integers(min_value=0, max_value=MAX_MINOR_UNITS)


@pytest.mark.parametrize(
    ("code", "exponent", "numeric"),
    [("USD", 2, 840), ("EUR", 2, 978), ("JPY", 0, 392), ("BHD", 3, 48), ("KWD", 3, 414), ("CLF", 4, 990)],
)
def test_currency_knows_its_iso_4217_exponent_and_numeric_code(
    code: str, exponent: int, numeric: int
) -> None:
    currency = Currency(code)
    assert currency.exponent == exponent
    assert currency.numeric == numeric
    assert Currency.from_numeric(numeric) == currency


def test_every_active_currency_has_an_exponent() -> None:
    codes = Currency.all_codes()
    assert len(codes) > 150
    assert {"USD", "EUR", "GBP", "JPY", "CHF", "BHD", "ISK", "KRW"} <= set(codes)
    for code in codes:
        assert Currency(code).exponent in {0, 2, 3, 4}


@pytest.mark.parametrize("code", ["XAU", "XDR", "XTS", "usd", "US", "", "DEM", 840, None])
def test_currency_refuses_codes_that_are_not_payable(code: object) -> None:
    with pytest.raises(UnknownCurrencyError) as raised:
        Currency(code)  # type: ignore[arg-type]
    assert raised.value.field == "currency"
    assert repr(code) in str(raised.value)


@pytest.mark.parametrize("numeric", [0, 999, 959, -1])
def test_currency_from_unknown_numeric_code_names_the_value(numeric: int) -> None:
    with pytest.raises(UnknownCurrencyError, match=str(numeric)):
        Currency.from_numeric(numeric)


@pytest.mark.parametrize(
    ("minor", "reason"),
    [
        (-1, "negative"),
        (1.5, "integer"),
        (True, "integer"),
        ("100", "integer"),
        (MAX_MINOR_UNITS + 1, "at most"),
    ],
)
def test_money_refuses_invalid_amounts(minor: object, reason: str) -> None:
    with pytest.raises(InvalidAmountError, match=reason) as raised:
        Money(minor, USD)  # type: ignore[arg-type]
    assert raised.value.field == "amount"
    assert raised.value.value == minor


def test_money_refuses_a_currency_that_is_not_a_currency() -> None:
    with pytest.raises(UnknownCurrencyError):
        Money(100, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minor", "code", "text"),
    [
        (1250, "USD", "12.50 USD"),
        (5, "USD", "0.05 USD"),
        (1500, "JPY", "1500 JPY"),
        (1234, "BHD", "1.234 BHD"),
    ],
)
def test_money_formats_in_major_units_with_the_currency_exponent(minor: int, code: str, text: str) -> None:
    assert Money(minor, Currency(code)).format() == text


def test_arithmetic_across_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatchError):
        _ = Money(1, USD) + Money(1, EUR)
    with pytest.raises(CurrencyMismatchError):
        _ = Money(1, USD) < Money(1, EUR)


def test_subtraction_below_zero_is_refused() -> None:
    with pytest.raises(InvalidAmountError, match="negative"):
        _ = Money(100, USD) - Money(101, USD)


@given(currencies, minor_units, minor_units)
def test_addition_is_commutative_and_keeps_the_currency(currency: Currency, a: int, b: int) -> None:
    left, right = Money(a, currency), Money(b, currency)
    assert left + right == right + left
    assert (left + right).minor == a + b
    assert (left + right).currency == currency


@given(currencies, minor_units, minor_units, minor_units)
def test_addition_is_associative(currency: Currency, a: int, b: int, c: int) -> None:
    x, y, z = Money(a, currency), Money(b, currency), Money(c, currency)
    assert (x + y) + z == x + (y + z)


@given(currencies, minor_units, minor_units)
def test_subtraction_undoes_addition(currency: Currency, a: int, b: int) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y) - y == x
    assert x - Money.zero(currency) == x


@given(currencies, minor_units, minor_units)
def test_ordering_agrees_with_minor_units_and_min_picks_the_smaller(
    currency: Currency, a: int, b: int
) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x < y) == (a < b)
    assert (x <= y) == (a <= b)
    assert (x > y) == (a > b)
    assert (x >= y) == (a >= b)
    assert x.min(y).minor == min(a, b)


@given(currencies, minor_units)
def test_formatting_round_trips_through_major_units(currency: Currency, minor: int) -> None:
    text, code = Money(minor, currency).format().split(" ")
    assert code == currency.code
    whole, _, fraction = text.partition(".")
    assert len(fraction) == currency.exponent
    assert int(whole + fraction) == minor


def test_every_domain_error_names_its_field_and_value() -> None:
    error = InvalidAmountError("amount_cents", -5, "must not be negative")
    assert isinstance(error, DomainError)
    assert str(error) == "amount_cents=-5: must not be negative"


@given(currencies, any_minor_units, any_minor_units)
def test_addition_never_overflows_silently(currency: Currency, a: int, b: int) -> None:
    if a + b > MAX_MINOR_UNITS:
        with pytest.raises(InvalidAmountError, match="at most"):
            _ = Money(a, currency) + Money(b, currency)
    else:
        assert (Money(a, currency) + Money(b, currency)).minor == a + b
