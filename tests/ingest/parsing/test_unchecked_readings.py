"""The readings the parser builds without a frozen dataclass's ``__init__`` (``engine.unchecked``)
on its common path: the same values as the checked constructors, the request's invariant still
checked under ``RECHECK`` (which ``tests/conftest.py`` turns on), and the shared readings of an
absent field left as they were by every parse."""

from __future__ import annotations

import pytest

from engine.errors import InvalidFieldError
from engine.money import Currency
from engine.validation import IssueSeverity, ValidationIssue
from ingest.parsing import ParsedRequest
from ingest.parsing.identifiers import KeyReading, read_idempotency_key
from ingest.parsing.metadata import MetadataReading, read_metadata
from ingest.parsing.request import _parsed_request
from tests.ingest.parsing.support import parse

REFUSAL = ValidationIssue("amount", "invalid_amount", "no amount", IssueSeverity.ERROR)


def test_the_unchecked_request_still_checks_its_invariant_under_recheck() -> None:
    with pytest.raises(InvalidFieldError, match="must be present exactly when no issue is an error"):
        _parsed_request(
            context=None,
            issues=(),
            amount_cents=None,
            currency=None,
            method=None,
            idempotency_key=None,
            merchant_mismatch=False,
        )
    with pytest.raises(InvalidFieldError):
        _parsed_request(
            context=parse({"amount": 100, "currency": "EUR"}).context,
            issues=(REFUSAL,),
            amount_cents=100,
            currency=Currency("EUR"),
            method=None,
            idempotency_key=None,
            merchant_mismatch=False,
        )


def test_a_parse_gives_what_the_checked_constructors_give() -> None:
    result = parse({"amount": 1250, "currency": "EUR", "metadata": {"order": "A-1"}})
    assert type(result) is ParsedRequest
    checked = ParsedRequest(
        context=result.context,
        issues=result.issues,
        amount_cents=1250,
        currency=Currency("EUR"),
        method=None,
        idempotency_key=None,
        merchant_mismatch=False,
    )
    assert result == checked
    assert read_idempotency_key(None, "k-1") == KeyReading("k-1")
    assert read_idempotency_key(None, None) == KeyReading(None)


def test_the_shared_reading_of_no_metadata_stays_empty() -> None:
    first = parse({"amount": 100, "currency": "EUR"})
    parse({"amount": 100, "currency": "EUR", "metadata": {"order": "A-1"}})
    second = parse({"amount": 100, "currency": "EUR"})
    assert read_metadata(None) == MetadataReading()
    assert read_metadata(None).metadata == {}
    for result in (first, second):
        assert result.context is not None
        assert dict(result.context.metadata) == {}
