"""The context's constructor checks its invariants as the plain dataclass did, for every value.

:class:`CoreRequestContext` checks each field inline for the values the parser gives, and calls
the general check only for anything else. ``_Reference`` below is the constructor as it was
written before that: a frozen dataclass whose ``__post_init__`` calls each check, with the
checks copied as they were. For any values, valid or not, both must build equal contexts or raise
the same error (class, field, value and message).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import FrameType, MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.context import CoreRequestContext
from engine.errors import DomainError, InvalidAmountError, InvalidFieldError, InvalidIdentifierError
from engine.methods import PaymentMethod
from engine.money import MAX_MINOR_UNITS, Currency
from engine.types import MerchantId, PaymentId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from tests.engine.test_context import context

# The checks as they were, copied so that a later change to engine.types cannot move both sides.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*")


def _check_identifier(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidIdentifierError(name, value, "must be a string")
    if not value:
        raise InvalidIdentifierError(name, value, "must not be empty")
    if len(value) > 255:
        raise InvalidIdentifierError(name, value, "must be at most 255 characters")
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidIdentifierError(
            name, value, "may hold only letters, digits and _ . : / - and start with a letter or digit"
        )


def _check_text(name: str, value: object, *, max_length: int, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidIdentifierError(name, value, "must be a string")
    if not value and not allow_empty:
        raise InvalidIdentifierError(name, value, "must not be empty")
    if len(value) > max_length:
        raise InvalidIdentifierError(name, value, f"must be at most {max_length} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidIdentifierError(
                name, value, "must be valid Unicode text (no lone surrogates)"
            ) from None


def _check_minor_units(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmountError(name, value, "must be an integer number of minor units")
    if value < 0:
        raise InvalidAmountError(name, value, "must not be negative")
    if value > MAX_MINOR_UNITS:
        raise InvalidAmountError(name, value, f"must be at most {MAX_MINOR_UNITS}")


def _frozen_metadata(metadata: Any) -> Mapping[str, str]:
    if not isinstance(metadata, Mapping):
        raise InvalidFieldError("metadata", metadata, "must be a mapping of strings to strings")
    if len(metadata) > 50:
        raise InvalidFieldError("metadata", f"{len(metadata)} keys", "must have at most 50 keys")
    for key, value in metadata.items():
        _check_text("metadata key", key, max_length=40)
        _check_text(f"metadata.{key}", value, max_length=500, allow_empty=True)
    return MappingProxyType(dict(metadata))


@dataclass(frozen=True, slots=True)
class _Reference:
    merchant_id: Any
    request_id: Any
    payment_id: Any
    amount_cents: Any
    currency: Any
    payment_method: Any = None
    idempotency_key: Any = None
    metadata: Any = field(default_factory=dict, hash=False)
    validation_errors: Any = ()

    def __post_init__(self) -> None:
        _check_identifier("merchant_id", self.merchant_id)
        _check_identifier("request_id", self.request_id)
        _check_identifier("payment_id", self.payment_id)
        _check_minor_units("amount_cents", self.amount_cents)
        if self.amount_cents == 0:
            raise InvalidAmountError("amount_cents", self.amount_cents, "must be positive")
        if not isinstance(self.currency, Currency):
            raise InvalidFieldError("currency", self.currency, "must be a Currency")
        if self.payment_method is not None and not isinstance(self.payment_method, PaymentMethod):
            raise InvalidFieldError("payment_method", self.payment_method, "must be a PaymentMethod")
        if self.idempotency_key is not None:
            _check_text("idempotency_key", self.idempotency_key, max_length=255)
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))
        if not isinstance(self.validation_errors, list | tuple):
            raise InvalidFieldError("validation_errors", self.validation_errors, "must be a list")
        issues = tuple(self.validation_errors)
        for issue in issues:
            if not isinstance(issue, ValidationIssue):
                raise InvalidFieldError("validation_errors", issue, "must hold ValidationIssues")
            if issue.blocks:
                raise InvalidFieldError(
                    "validation_errors", issue.code, "a request with an error issue cannot be processed"
                )
        object.__setattr__(self, "validation_errors", issues)


class _Text(str):
    """A ``str`` subclass: the inline checks take plain ``str`` only, the general ones any."""


class _Count(int):
    """An ``int`` subclass (not a bool): a valid amount the inline check hands to the general one."""


WARNING = ValidationIssue("currency", "defaulted", "currency missing: USD used", IssueSeverity.WARNING)
ERROR = ValidationIssue("amount", "not_a_number", "amount is not a number", IssueSeverity.ERROR, "abc")

_valid_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,40}", fullmatch=True)
_ids = st.one_of(
    _valid_ids,
    _valid_ids.map(_Text),
    st.sampled_from(
        ["m_acme", "pay_0123456789abcdef01234567", "", " ", "_x", "a b", "é", "a" * 255, "a" * 256]
    ),
    st.text(max_size=8),
    st.none(),
    st.integers(),
)
_amounts = st.one_of(
    st.integers(min_value=-3, max_value=10**6),
    st.sampled_from([0, 1, MAX_MINOR_UNITS, MAX_MINOR_UNITS + 1, -(2**70), True, False, 12.5, 100.0, "100"]),
    st.integers(min_value=0, max_value=10**4).map(_Count),
    st.none(),
)
_currencies = st.sampled_from([Currency("USD"), Currency("JPY"), "USD", None, 840])
_methods = st.one_of(st.none(), st.sampled_from(PaymentMethod), st.sampled_from(["card", 1, Currency("USD")]))
_keys = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=250, max_size=260),
    st.sampled_from(["", "k", "lg-abc-1", "k\ud800", "ké", "k" * 255, "k" * 256, b"k", 7]),
    st.text(min_size=1, max_size=5).map(_Text),
)
_metadata_text = st.one_of(
    st.text(max_size=6), st.sampled_from(["x" * 40, "x" * 41, "x" * 500, "x" * 501, "\ud800"])
)
_metadata: st.SearchStrategy[object] = st.one_of(
    st.dictionaries(_metadata_text, st.one_of(_metadata_text, st.integers(), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.just(""), min_size=49, max_size=53),
    st.dictionaries(_metadata_text, _metadata_text, max_size=3).map(MappingProxyType),
    st.sampled_from([{}, None, [], [("a", "b")], "ab", MappingProxyType({})]),
)
_issues: st.SearchStrategy[object] = st.one_of(
    st.lists(st.sampled_from([WARNING, ERROR, "oops", None]), max_size=3),
    st.lists(st.sampled_from([WARNING, ERROR]), max_size=3).map(tuple),
    st.sampled_from(["oops", None, (), [], {WARNING}, (WARNING, WARNING)]),
)

_MISSING = object()
_OPTIONAL = {
    "payment_method": _methods,
    "idempotency_key": _keys,
    "metadata": _metadata,
    "validation_errors": _issues,
}


@st.composite
def _arguments(draw: st.DrawFn) -> dict[str, object]:
    values: dict[str, object] = {
        "merchant_id": draw(_ids),
        "request_id": draw(_ids),
        "payment_id": draw(_ids),
        "amount_cents": draw(_amounts),
        "currency": draw(_currencies),
    }
    for name, values_of in _OPTIONAL.items():
        value = draw(st.one_of(st.just(_MISSING), values_of))
        if value is not _MISSING:
            values[name] = value
    return values


def _outcome(build: Any, arguments: dict[str, object]) -> tuple[str, object]:
    try:
        built = build(**arguments)
    except DomainError as exc:
        return "raised", (type(exc), str(exc), exc.field, repr(exc.value), exc.reason)
    values = {}
    for each in fields(built):
        value = getattr(built, each.name)
        if each.name == "metadata":
            assert type(value) is MappingProxyType
            value = dict(value)
        values[each.name] = (type(value), value)
    return "built", values


@settings(max_examples=600, deadline=None)
@given(_arguments())
def test_the_context_checks_every_value_as_the_dataclass_did(arguments: dict[str, object]) -> None:
    assert _outcome(CoreRequestContext, arguments) == _outcome(_Reference, arguments)


@settings(max_examples=100, deadline=None)
@given(_arguments())
def test_a_context_built_by_position_is_the_one_built_by_name(arguments: dict[str, object]) -> None:
    names = [each.name for each in fields(CoreRequestContext)]
    given_names = [name for name in names if name in arguments]
    if given_names != names[: len(given_names)]:  # an argument left out before one given
        return

    def by_position(**values: object) -> CoreRequestContext:
        return CoreRequestContext(*(values[name] for name in given_names))  # type: ignore[arg-type]

    assert _outcome(by_position, arguments) == _outcome(CoreRequestContext, arguments)


def test_a_context_stays_a_frozen_value() -> None:
    ctx = context(metadata={"order": "42"}, validation_errors=[WARNING])
    with pytest.raises(AttributeError):
        ctx.amount_cents = 1  # type: ignore[misc]
    assert ctx == context(metadata={"order": "42"}, validation_errors=(WARNING,))
    assert hash(ctx) == hash(context(metadata={"other": "x"}, validation_errors=(WARNING,)))
    assert ctx.validation_errors == (WARNING,)
    assert replace(ctx, amount_cents=5).amount_cents == 5
    with pytest.raises(InvalidAmountError, match="must be positive"):
        replace(ctx, amount_cents=0)
    assert context().metadata == {}
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'currency'"):
        CoreRequestContext(MerchantId("m"), RequestId("r"), PaymentId("p"), 1)  # type: ignore[call-arg]


def _calls_made(build: Any) -> Iterator[str]:
    seen: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            seen.append(frame.f_code.co_name)
        elif event == "c_call":
            seen.append(getattr(arg, "__name__", repr(arg)))

    sys.setprofile(profile)
    try:
        build()
    finally:
        sys.setprofile(None)
    return iter(seen)


def test_the_parsers_common_values_are_checked_inline() -> None:
    """What the parser gives for most requests (plain ids, an int amount, a plain key, no metadata,
    a tuple of warnings) takes no general check and no ``object.__setattr__`` a field: that is
    where the dataclass's own constructor spent about 37,000 instructions."""
    usd, merchant = Currency("USD"), MerchantId("m_acme")
    request, payment = RequestId("r_1"), PaymentId("p_1")
    called = set(
        _calls_made(
            lambda: CoreRequestContext(merchant, request, payment, 10_000, usd, None, "k1", {}, (WARNING,))
        )
    )
    general = {"check_minor_units", "check_text", "check_sequence", "_frozen_metadata", "__post_init__"}
    assert not called & general
    assert "__setattr__" not in called
