"""Identifiers are checked by one rule, whichever way the check takes."""

from __future__ import annotations

import re
import sys
from types import FrameType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import InvalidIdentifierError
from engine.types import check_identifier

_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*")
_IDENTIFIER_LIKE = st.text(alphabet=st.sampled_from("aZ09_.:/-é \x00\ud800"), max_size=12) | st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_]{0,300}", fullmatch=True
)


@given(_IDENTIFIER_LIKE, st.sampled_from([255, 256, 40]))
def test_an_identifier_is_taken_exactly_when_the_pattern_takes_it(value: str, max_length: int) -> None:
    valid = bool(value) and len(value) <= max_length and _RULE.fullmatch(value) is not None
    if valid:
        assert check_identifier("id", value, max_length=max_length) == value
    else:
        with pytest.raises(InvalidIdentifierError) as raised:
            check_identifier("id", value, max_length=max_length)
        assert raised.value.field == "id"


def test_a_new_payment_id_is_checked_without_the_regular_expression() -> None:
    """A payment's two new ids are seen once each: the pattern's search cost 2,400 instructions."""
    searched: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in {"fullmatch", "match", "search"}:
            searched.append(arg.__name__)  # type: ignore[attr-defined]

    sys.setprofile(profile)
    try:
        check_identifier("payment_id", "pay_3fa2b9c01d4e5f6a7b8c9d0e")
    finally:
        sys.setprofile(None)
    assert searched == []
