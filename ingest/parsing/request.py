"""The boundary parser: a merchant's payment request, however messy, to a strict context.

Contract (PRODUCT.md section 5):

- :func:`parse_payment_request` is total: for any bytes, content type and header it returns a
  :class:`ParsedRequest` and never raises.
- Every correction is a warning and every refusal an error :class:`ValidationIssue`, reported in
  a fixed order: the body, its field names, then ``merchant_id``, ``amount``, ``currency``,
  ``method``, ``metadata`` and ``idempotency_key``.
- A request with no error becomes a :class:`CoreRequestContext` carrying every warning; a request
  with an error gets none, and the API answers 422 (403 when ``merchant_mismatch``).
- No card number leaves the parser unmasked: not in metadata, not in any issue.

The rules of each part live in the module that reads it: ``body``, ``fields``, ``amount``,
``numerals``, ``currency``, ``method``, ``metadata``, ``identifiers``, ``masking``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import MerchantConfig
from engine.context import CoreRequestContext
from engine.errors import DomainError, InvalidFieldError
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import PaymentId, RequestId
from engine.validation import ValidationIssue
from ingest.parsing.amount import AmountReading, read_amount, settle
from ingest.parsing.body import decode_body
from ingest.parsing.currency import CurrencyReading, read_currency
from ingest.parsing.fields import FieldName, sort_fields
from ingest.parsing.identifiers import read_idempotency_key, read_merchant
from ingest.parsing.issues import error, quote
from ingest.parsing.metadata import MetadataReading, read_metadata
from ingest.parsing.method import MethodReading, read_method


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the parser made of a request.

    Invariant: ``context`` is ``None`` exactly when an issue is an error. The other fields are the
    best readings even of a refused request (for its ``rejected`` event): ``amount_cents`` is set
    whenever the amount is a positive whole number of minor units in range.
    """

    context: CoreRequestContext | None
    issues: tuple[ValidationIssue, ...]
    amount_cents: int | None
    currency: Currency | None
    method: PaymentMethod | None
    idempotency_key: str | None
    merchant_mismatch: bool

    def __post_init__(self) -> None:
        blocked = any(issue.blocks for issue in self.issues)
        if blocked == (self.context is not None):
            raise InvalidFieldError(
                "context", self.context, "must be present exactly when no issue is an error"
            )

    @property
    def accepted(self) -> bool:
        """Whether the request can be processed (no issue is an error)."""
        return self.context is not None


@dataclass(frozen=True, slots=True)
class _Readings:
    """Everything a context is built from, once no issue is an error."""

    amount_cents: int | None
    currency: Currency | None
    method: PaymentMethod | None
    idempotency_key: str | None
    metadata: Mapping[str, str]


def _build_context(
    readings: _Readings,
    issues: tuple[ValidationIssue, ...],
    merchant: MerchantConfig,
    request_id: RequestId,
    payment_id: PaymentId,
) -> CoreRequestContext | ValidationIssue:
    """The context, or the error issue that stands for a rule the readers failed to catch.

    Defence in depth: the readers make both failures unreachable for any body; the tests check it.
    """
    if readings.amount_cents is None or readings.currency is None:
        message = "the request has no amount or currency, yet no error says why"
        return error("body", "invalid_context", message)
    try:
        return CoreRequestContext(
            merchant_id=merchant.merchant_id,
            request_id=request_id,
            payment_id=payment_id,
            amount_cents=readings.amount_cents,
            currency=readings.currency,
            payment_method=readings.method,
            idempotency_key=readings.idempotency_key,
            metadata=readings.metadata,
            validation_errors=issues,
        )
    except DomainError as exc:
        message = f"the request breaks a rule of the payment context: {quote(exc.field)} {exc.reason}"
        return error(exc.field, "invalid_context", message, repr(exc.value))


def parse_payment_request(
    body: bytes,
    content_type: str | None,
    *,
    merchant: MerchantConfig,
    request_id: RequestId,
    payment_id: PaymentId,
    idempotency_key: str | None = None,
) -> ParsedRequest:
    """Parse a merchant's payment request for the authenticated ``merchant``.

    ``idempotency_key`` is the ``Idempotency-Key`` header, which wins over the body's key.
    """
    decoded = decode_body(body, content_type)
    if decoded.fields is None:
        key = read_idempotency_key(None, idempotency_key)
        return ParsedRequest(
            context=None,
            issues=(*decoded.issues, *key.issues),
            amount_cents=None,
            currency=None,
            method=None,
            idempotency_key=key.key,
            merchant_mismatch=False,
        )
    fields = sort_fields(decoded.fields)
    conflicting = fields.conflicting

    merchant_reading = read_merchant(
        conflicting.get(FieldName.MERCHANT_ID, (fields.get(FieldName.MERCHANT_ID),)), merchant
    )
    # A field given twice with different values is already an error: its reader is not run.
    amount = AmountReading()
    if FieldName.AMOUNT not in conflicting:
        amount = read_amount(fields.get(FieldName.AMOUNT))
    currency = CurrencyReading(None, given=True)
    if FieldName.CURRENCY not in conflicting:
        currency = read_currency(fields.get(FieldName.CURRENCY))
    settlement = settle(amount, currency, merchant)
    method = MethodReading(None)
    if FieldName.METHOD not in conflicting:
        method = read_method(fields.get(FieldName.METHOD))
    metadata = MetadataReading()
    if FieldName.METADATA not in conflicting:
        metadata = read_metadata(fields.get(FieldName.METADATA))
    key = read_idempotency_key(fields.get(FieldName.IDEMPOTENCY_KEY), idempotency_key)

    issues = (
        *decoded.issues,
        *fields.issues,
        *merchant_reading.issues,
        *settlement.amount_issues,
        *settlement.currency_issues,
        *method.issues,
        *metadata.issues,
        *key.issues,
    )
    readings = _Readings(
        settlement.amount_cents, settlement.currency, method.method, key.key, metadata.metadata
    )
    context: CoreRequestContext | None = None
    if not any(issue.blocks for issue in issues):
        built = _build_context(readings, issues, merchant, request_id, payment_id)
        if isinstance(built, CoreRequestContext):
            context = built
        else:
            issues = (*issues, built)
    return ParsedRequest(
        context=context,
        issues=issues,
        amount_cents=settlement.amount_cents,
        currency=settlement.currency,
        method=method.method,
        idempotency_key=key.key,
        merchant_mismatch=merchant_reading.mismatch,
    )
