"""The shapes the OpenAPI document describes.

Responses are serialized straight from the domain (``ingest.codec.result_json``) with orjson;
these models only *describe* them, and schemathesis checks in ``make test`` that every real
response fits. ``ComplaintIn`` is the one body FastAPI validates itself: complaints are a strict
intake, unlike payments, whose body the permissive parser reads (it is described by
:data:`PAYMENT_REQUEST_BODY`, not validated by FastAPI); what it corrects (a field name spelled
another way, spaces around an identifier) it says, as a payment's parser does
(``ingest.api.complaint_fields``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from engine.context import MAX_IDEMPOTENCY_KEY_LENGTH
from engine.decline_codes import DeclineCode
from engine.error_codes import ErrorCode
from engine.validation import ValidationIssue
from ingest.api import complaint_fields
from ingest.api.problems import PROBLEMS
from ingest.moments import MOMENT_RULE, parse_moment
from ingest.parsing import KEY_PATTERN, KEY_RULE

Method = Literal["card", "apple_pay", "google_pay", "paypal", "bank_transfer"]
Status = Literal["succeeded", "partially_succeeded", "failed"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]*$"
#: A complaint's category as filed: an identifier, or words with spaces between them.
CATEGORY_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.:/\- ]*[A-Za-z0-9_.:/\-])?$"
#: A moment the service writes: RFC 3339 in UTC (``2026-11-26T08:00:00.123456Z``), a ``date-time``
#: as the JSON Schemas say, so that generated clients read it as one.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
#: A problem's ``code``: one of the problem table's (``ingest.api.problems.PROBLEMS``), a closed
#: set, listed so that generated clients can switch on it (it was any string).
ProblemCode = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(PROBLEMS),
            "description": "What went wrong, Stripe-style; `type` names the page that explains it.",
        }
    ),
]


class ValidationIssueOut(BaseModel):
    field: str
    code: str
    message: str
    severity: Literal["warning", "error"]
    raw: str | None


class FailureDetailsOut(BaseModel):
    """What the processor itself said when it refused the attempt (Stripe's error object), masked
    of card numbers and API keys. Shown for the merchant to read; payorch decides nothing from it."""

    type: str | None = Field(
        default=None, max_length=100, description="The processor's error type (invalid_request_error)."
    )
    code: str | None = Field(
        default=None, max_length=100, description="The processor's error code (amount_too_small)."
    )
    decline_code: str | None = Field(
        default=None,
        max_length=100,
        description="The issuer's decline code as the processor gave it (any value, unlike the step's).",
    )
    param: str | None = Field(
        default=None, max_length=200, description="The request parameter the error is about (amount)."
    )
    message: str | None = Field(default=None, max_length=500, description="The processor's message.")


class StepResultOut(BaseModel):
    step_index: int = Field(ge=0)
    method: Method
    processor_id: str
    success: bool
    error_code: ErrorCode | None
    amount_processed: int = Field(ge=0)
    latency_ms: int = Field(ge=0)
    retryable: bool
    attempts: int = Field(ge=0)
    compensated: bool
    decline_code: DeclineCode | None = Field(
        default=None,
        description="Why the card was refused (Stripe's decline code: insufficient_funds, lost_card, "
        "expired_card, ...) when error_code is declined or invalid_card and the processor gave a "
        "reason; a reason outside this list is generic_decline. null otherwise.",
    )
    failure_details: FailureDetailsOut | None = Field(
        default=None,
        description="On a failed step, what the processor itself said of the refusal it ended on: "
        "why Stripe refused an invalid request (code amount_too_small, param amount, its message), "
        "a card error's message. null when it said nothing (a timeout, a simulated processor).",
    )


class CompositeResultOut(BaseModel):
    """The outcome of one payment (``payments.result.v1``)."""

    payment_id: str
    request_id: str
    merchant_id: str
    status: Status
    success: bool
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    total_amount: int = Field(ge=0)
    total_processed: int = Field(ge=0)
    remaining_amount: int = Field(ge=0)
    step_results: list[StepResultOut]
    final_error: ErrorCode | None
    validation_errors: list[ValidationIssueOut]


class ProblemErrorOut(BaseModel):
    field: str
    code: str
    message: str
    severity: Literal["warning", "error"]


class ProblemOut(BaseModel):
    """An RFC 9457 problem (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        json_schema_extra={"format": "uri-reference"},
        description="The page that says what the problem means and what to do: `/problems/{code}`, "
        "below the prefix a reverse proxy serves the API under (the document's `servers`).",
    )
    title: str
    status: int
    detail: str
    code: ProblemCode
    request_id: str
    errors: list[ProblemErrorOut] | None = None
    payment_id: str | None = Field(
        default=None,
        description="The payment a 500 or a 503 `payment_interrupted` is about: it may have been "
        "charged, so look it up (GET /v1/payments/{payment_id}) before paying again.",
    )


def iso_only(value: object) -> object:
    """A time field's input, read by payorch's one rule for moments (``ingest.moments``, the
    command line's too): an ISO 8601 / RFC 3339 date or date-time, never a number, which pydantic
    would read as a Unix time, in seconds or, past 2e10, milliseconds (``to=0.5`` is 1970).
    :class:`ValueError` otherwise."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be {MOMENT_RULE}, not a number")
    return parse_moment(value)


def digits_only(value: object) -> object:
    """A whole number given as text (a query parameter's ``limit``): decimal digits and nothing
    else. Pydantic reads ``" 1"``, ``"+1"``, ``"1.0"`` and ``"1_0"`` (ten) as numbers too, none of
    which a client means to send. :class:`ValueError` otherwise."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be a whole number written in the digits 0-9 alone")
    return value


_DIGITS = re.compile(r"[0-9]+")


class ComplaintIn(BaseModel):
    """A merchant complaint (PRODUCT.md section 9). A merchant key files for its own merchant
    (``merchant_id`` may be left out); an admin key must name the merchant."""

    model_config = ConfigDict(extra="forbid")

    complaint_id: str | None = Field(default=None, min_length=1, max_length=255, pattern=ID_PATTERN)
    merchant_id: str | None = Field(default=None, min_length=1, max_length=255, pattern=ID_PATTERN)
    received_at: Annotated[datetime | None, BeforeValidator(iso_only)] = None
    #: Spaces inside are taken (filed with ``_``, ``ingest.api.complaint_intake``): a support desk
    #: writes "Double charge".
    category: str = Field(min_length=1, max_length=255, pattern=CATEGORY_PATTERN)
    description: str = Field(default="", max_length=5000)
    payment_id: str | None = Field(default=None, min_length=1, max_length=255, pattern=ID_PATTERN)
    request_id: str | None = Field(default=None, min_length=1, max_length=255, pattern=ID_PATTERN)
    contract_id: str | None = Field(default=None, min_length=1, max_length=255)
    #: What was corrected in the body (``ingest.api.complaint_fields``): warnings only.
    _corrections: list[ValidationIssue] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _correct(cls, data: Any, handler: ModelWrapValidatorHandler[ComplaintIn]) -> ComplaintIn:
        """The body under its fields' own names, trimmed, its corrections kept as warnings."""
        if not isinstance(data, dict):
            return handler(data)
        fields, issues = complaint_fields.corrected(data)
        complaint = handler(fields)
        noted = complaint_fields.received_at_issue(fields.get("received_at"))
        complaint._corrections = [*issues, *([] if noted is None else [noted])]
        return complaint

    @property
    def corrections(self) -> list[ValidationIssue]:
        return self._corrections


class AnalyticsComplaintOut(BaseModel):
    """A complaint as the analytics inputs give it: without the corrections made as it was filed,
    which are the complaint's own reads' (``GET /v1/complaints``)."""

    complaint_id: str
    merchant_id: str
    received_at: Timestamp
    category: str
    description: str
    payment_id: str | None
    request_id: str | None
    contract_id: str | None


class ComplaintOut(AnalyticsComplaintOut):
    validation_errors: list[ValidationIssueOut] = Field(
        description="What was corrected in the complaint as filed (warnings, as a payment's: a field "
        "name spelled another way, spaces around an identifier, a received_at without an offset read "
        "as UTC, a card number masked); empty for a complaint filed as it is kept, and for one "
        "stored before they were kept."
    )


class ComplaintReadOut(ComplaintOut):
    """A complaint as stored, with the contract it maps to now (PRODUCT.md section 9)."""

    mapped_contract: str | None = Field(
        description="The contract the complaint maps to, as the retrospective report maps it: its "
        "`contract_id`, else its payment's or request's violations recorded so far, else its "
        "category through the taxonomy; `unmapped` when none does."
    )
    mapped_by: Literal["explicit", "payment", "request", "category", "unmapped"] | None = Field(
        description="How it was mapped: `explicit` (its own `contract_id`), `payment`, `request`, "
        "`category`, or `unmapped`."
    )


class ComplaintsOut(BaseModel):
    """A page of complaints, newest first (``GET /v1/complaints``)."""

    complaints: list[ComplaintOut]
    has_more: bool = Field(
        description="Whether more complaints follow the last one listed: list them with "
        "`starting_after` set to its `complaint_id`."
    )


class ViolationOut(BaseModel):
    contract_id: str
    request_id: str
    severity: Literal["critical", "major", "minor"]
    message: str
    owner: str
    timestamp: Timestamp
    payment_id: str | None
    merchant_id: str | None


class ListedViolationOut(ViolationOut):
    """A violation as ``GET /v1/violations`` lists it: with the ``seq`` it was recorded under."""

    seq: int = Field(
        ge=1,
        description="The order it was recorded in, which no two violations share (the analytics "
        "table's `seq`): the next page is `starting_after` the last one's.",
    )


class ViolationsOut(BaseModel):
    violations: list[ListedViolationOut]
    has_more: bool = Field(
        description="Whether more violations follow the last one listed (older, or of the same instant "
        "and recorded before it): list them with `starting_after` set to its `seq`."
    )


class AnalyticsEventOut(BaseModel):
    """One stored domain event's queryable columns (its JSON and protobuf forms stay in the store)."""

    seq: int = Field(ge=1)
    payment_id: str
    request_id: str
    merchant_id: str
    event_type: str
    timestamp: Timestamp
    step_index: int | None
    processor_id: str | None
    amount_cents: int | None
    error_code: ErrorCode | None
    decline_code: DeclineCode | None = Field(
        description="A StepFailed's decline code (null otherwise, and for events stored before it)."
    )
    accepted: bool | None = Field(
        description="A PaymentReceived's: false for a request refused (422 or 403); null for other events."
    )
    currency: str | None = Field(
        pattern=r"^[A-Z]{3}$",
        description="The payment's currency (ISO 4217), on each of its events: what amount_cents is in. "
        "Null for a refused request that gave none.",
    )
    method: Method | None = Field(
        description="The method asked for (PaymentReceived) or the step's (StepAttempted, StepSucceeded, "
        "StepFailed, CompensationIssued); null otherwise."
    )
    status: Status | Literal["rejected"] | None = Field(
        description="The payment's end, on its last event: PaymentCompleted, PaymentFailed, "
        "or a refused PaymentReceived (rejected); null otherwise."
    )
    attempt: int | None = Field(
        ge=0,
        description="StepAttempted's, StepSucceeded's and StepFailed's attempt (0: nothing was sent).",
    )
    latency_ms: int | None = Field(ge=0, description="StepSucceeded's and StepFailed's latency.")
    charged_cents: int | None = Field(
        ge=0,
        description="What the payment holds charged at its end, on its last event (PaymentCompleted, "
        "PaymentFailed: their total_processed), where amount_cents is the amount asked (total_amount); "
        "null otherwise. Summed per currency, the money the payments charged.",
    )
    failure_details: FailureDetailsOut | None = Field(
        description="A StepFailed's account of the refusal in the processor's own words (Stripe's "
        "type, code, decline_code, param and message, masked), as the step result's failure_details; "
        "null on every other event and when the processor said nothing usable (a timeout, a 5xx)."
    )


class AnalyticsEventsOut(BaseModel):
    """The events of a window in the order they were written; ``format=arrow`` gives the same
    columns as an Arrow IPC stream."""

    events: list[AnalyticsEventOut]


class AnalyticsViolationOut(ViolationOut):
    seq: int = Field(ge=1)


class AnalyticsViolationsOut(BaseModel):
    """The violations of a window, oldest first; ``format=arrow`` gives an Arrow IPC stream."""

    violations: list[AnalyticsViolationOut]


class AnalyticsComplaintsOut(BaseModel):
    """The complaints received in a window, oldest first; ``format=arrow`` gives an Arrow IPC stream."""

    complaints: list[AnalyticsComplaintOut]


class HealthOut(BaseModel):
    status: str


class ReportWindowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: Timestamp = Field(alias="from", description="Start, inclusive (RFC 3339, UTC)")
    to: Timestamp = Field(description="End, exclusive (RFC 3339, UTC)")


class ReportContractOut(BaseModel):
    id: str = Field(description="The contract id")
    count: int = Field(ge=0, description="Its violations in the window")
    external_reports: int = Field(ge=0, description="The window's complaints mapped to it")
    mismatch: bool
    severity: str | None = Field(default=None, description="Absent for an id the registry does not know")
    owner: str | None = Field(default=None, description="Absent for an id the registry does not know")


class ReportComplaintsOut(BaseModel):
    received: int = Field(ge=0)
    unmapped: int = Field(ge=0)


class MismatchRuleOut(BaseModel):
    min_ratio: float = Field(ge=0)
    min_reports: int = Field(ge=1)


class RetrospectiveOut(BaseModel):
    """The retrospective of a window (PRODUCT.md section 10); ``format=yaml`` gives the same
    document as YAML."""

    window: ReportWindowOut
    violations: list[ReportContractOut]
    complaints: ReportComplaintsOut
    mismatch_rule: MismatchRuleOut
    generated_at: Timestamp


_AMOUNT: dict[str, Any] = {
    "description": "Minor units as an integer or digits-only string (1250 = 12.50 USD); major units as a "
    "number or a string with a decimal separator, symbol or code ('12.50', '$12.50', '1.234,56 EUR').",
    "anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}],
}

_PAYMENT_REQUEST: dict[str, Any] = {
    "type": "object",
    "description": "A payment request. Field names match case- and separator-insensitively "
    "(merchantId, merchant-id); every correction is reported in validation_errors.",
    "properties": {
        "merchant_id": {"type": "string", "description": "Optional; must be the key's own merchant."},
        "amount": _AMOUNT,
        "currency": {
            "description": "ISO 4217 code, numeric code, symbol or English name; default: the merchant's.",
            "anyOf": [{"type": "string"}, {"type": "integer"}],
        },
        "method": {"type": "string", "description": "card, apple_pay, google_pay, paypal, bank_transfer"},
        "metadata": {
            "type": "object",
            "description": "At most 50 keys of up to 40 characters; values up to 500 characters.",
            "additionalProperties": True,
        },
        "idempotency_key": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
            "pattern": KEY_PATTERN,  # the header's: one rule for both
            "description": f"{KEY_RULE}, as the Idempotency-Key header; sent in both, the two must be "
            "equal (else 422 with a conflicting_idempotency_key issue).",
        },
    },
    "required": ["amount"],
    "additionalProperties": True,
}

#: What /docs puts in the body to try (Swagger UI's "Try it out"): a payment any sample merchant's
#: key makes. Without it, Swagger UI sent a body built from the types ("merchant_id": "string",
#: "amount": 0), which every key got back as 403 (another merchant) listing three errors.
PAYMENT_EXAMPLE: dict[str, Any] = {"amount": "100.00", "currency": "USD", "method": "card"}

PAYMENT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _PAYMENT_REQUEST,
                "example": {**PAYMENT_EXAMPLE, "metadata": {"order_id": "order-1001"}},
            },
            "application/x-www-form-urlencoded": {"schema": _PAYMENT_REQUEST, "example": PAYMENT_EXAMPLE},
        },
    }
}

#: A complaint a merchant key files as it is (no payment named, received now), for /docs.
COMPLAINT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "example": {
                    "complaint_id": "cmp-1001",
                    "category": "double_charge",
                    "description": "The customer says order-1001 was charged twice.",
                }
            }
        }
    }
}
