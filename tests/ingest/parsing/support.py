"""What the parser's tests share: one merchant, one way to call the parser, and an independent
detector of card numbers left unmasked."""

from __future__ import annotations

import json
import re

from engine.config import MerchantConfig, RoutingRule
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.parsing import ParsedRequest, parse_payment_request
from ingest.parsing.masking import SEPARATORS

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_AMOUNT = 1_000_000_000

MERCHANT = MerchantConfig(
    merchant_id=MerchantId("m_acme"),
    api_keys=("key_acme",),
    default_currency=Currency("USD"),
    routing=(RoutingRule(PaymentMethod.CARD, (ProcessorId("sim_a"),)),),
    max_amount_cents=MAX_AMOUNT,
)


def encode(body: object) -> bytes:
    """Bytes as they are; text as UTF-8; anything else as JSON (UTF-8, non-ASCII kept)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def parse(
    body: object, content_type: str | None = JSON, header: str | None = None, *, encoding: str | None = None
) -> ParsedRequest:
    return parse_payment_request(
        encode(body),
        content_type,
        merchant=MERCHANT,
        request_id=RequestId("req_1"),
        payment_id=PaymentId("pay_1"),
        idempotency_key=header,
        content_encoding=encoding,
    )


def check_digit(partial: str) -> str:
    """The Luhn check digit that completes ``partial`` (written independently of the parser)."""
    doubled = [int(d) * 2 for d in partial[::-1][0::2]]
    kept = [int(d) for d in partial[::-1][1::2]]
    total = sum(d - 9 if d > 9 else d for d in doubled) + sum(kept)
    return str((10 - total % 10) % 10)


def luhn_number(length: int, prefix: str = "4") -> str:
    """A Luhn-valid number of ``length`` digits."""
    body = (prefix + "1234567890" * 2)[: length - 1]
    return body + check_digit(body)


def _luhn_ok(digits: str) -> bool:
    return check_digit(digits[:-1]) == digits[-1]


_RUN = re.compile(rf"\d+(?:[{SEPARATORS}]\d+)*")
_DOT = re.compile("[.\uff0e]")


def _runs(text: str) -> list[str]:
    """The digit runs of ``text``, a run with a single dot cut in two at it."""
    runs: list[str] = []
    for run in _RUN.findall(text):
        runs.extend(_DOT.split(run) if len(_DOT.findall(run)) == 1 else [run])
    return runs


def _never_issued(digits: str) -> bool:
    """No card has 13 or 14 digits under a first digit of 1, 2, 7, 8 or 9 (the masking's rule)."""
    return len(digits) <= 14 and int(digits[0]) in (1, 2, 7, 8, 9)


def unmasked_card_numbers(text: str) -> list[str]:
    """Every span of whole digit groups (groups split by single separators) that holds 13-19
    digits passing Luhn, but for 13 or 14 under 1, 2, 7, 8 or 9: what masking must have removed."""
    found: list[str] = []
    for run in _runs(text):
        groups = re.findall(r"\d+", run)
        for first in range(len(groups)):
            digits = ""
            for group in groups[first:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and _luhn_ok(digits) and not _never_issued(digits):
                    found.append(digits)
    return found
