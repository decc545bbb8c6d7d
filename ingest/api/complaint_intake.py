"""What a filed complaint must be before it is stored (PRODUCT.md section 9): the body of
``POST /v1/complaints`` turned into a :class:`Complaint` of the caller's merchant, and checked
against the records (the payment and the request it names are that merchant's, and it was not
received before its payment). Each refusal is a 422 that names the field, never echoing a card
number.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.complaints import Complaint, taxonomy, taxonomy_category
from engine.errors import DomainError
from engine.types import ContractId, MerchantId, PaymentId, RequestId
from engine.validation import ValidationIssue
from ingest.api.auth import Principal
from ingest.api.guards import check_contract
from ingest.api.parts import Parts
from ingest.api.payments import new_id
from ingest.api.problems import ApiProblem, FieldError
from ingest.api.schemas import ComplaintIn
from ingest.codec.result_json import JsonObject
from ingest.parsing.issues import quote, warning
from ingest.parsing.masking import mask_card_numbers

#: How far a complaint's ``received_at`` may lie ahead of the service's clock (the merchant's
#: support desk keeps its own).
FUTURE_SLACK = timedelta(minutes=5)


def _received_at(value: datetime | None) -> datetime | None:
    """A complaint's ``received_at`` in UTC (a naive one is UTC); 422 when UTC has no such time
    (``0001-01-01T00:00:00+01:00``), as for the time parameters of the reads."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ApiProblem(
            "validation_failed",
            "`received_at` is outside the years 1 to 9999 in UTC.",
            errors=[FieldError("received_at", "out_of_range", "is outside the years 1 to 9999 in UTC")],
        ) from None


#: The complaint's fields that name something of the service: a card number in one is refused,
#: not masked. A ``complaint_id`` is the merchant's own reference, kept masked (see parsed_complaint).
_NAMING_FIELDS = ("merchant_id", "category", "payment_id", "request_id", "contract_id")


#: An id this service issued (``pay_``/``req_`` + 24 hex digits): never a card number, even where
#: its digits happen to pass Luhn (ids issued before ``new_id`` avoided that may).
_ISSUED_ID = re.compile(r"(?:pay|req)_[0-9a-f]{24}")


def _refuse_card_numbers(body: ComplaintIn) -> None:
    """422 for a card number where an identifier or a category belongs, without echoing it."""
    errors = [
        FieldError(name, "card_number", "looks like a card number, which is neither stored nor shown")
        for name in _NAMING_FIELDS
        if (value := getattr(body, name)) is not None
        and mask_card_numbers(value) != value
        and not _ISSUED_ID.fullmatch(value)
    ]
    if errors:
        raise ApiProblem(
            "validation_failed", "A card number cannot be an identifier or a category.", errors=errors
        )


def _refuse_unreadable_id(complaint_id: str | None) -> None:
    """422 for a ``complaint_id`` no client reads back at ``/v1/complaints/{complaint_id}`` (its
    pattern takes ``/`` for references such as ``zendesk/4711``): a trailing ``/`` is the path's
    (a 404), clients drop ``.`` and ``..`` segments (httpx, browsers, curl) and proxies merge
    ``//``. Such an id was filed (201) and given out, and the complaint never seen again."""
    if complaint_id is None or "/" not in complaint_id:
        return
    segments = complaint_id.split("/")
    if all(segment not in ("", ".", "..") for segment in segments):
        return
    raise ApiProblem(
        "validation_failed",
        "This complaint_id could not be read back at its path.",
        errors=[
            FieldError(
                "complaint_id",
                "unreadable",
                "ends in '/', or holds '//' or a '.' or '..' part between slashes, which clients and "
                "proxies change in the path of GET /v1/complaints/{complaint_id}: drop or replace them",
            )
        ],
    )


def same_complaint(first: Complaint, again: Complaint, *, received_given: bool, parts: Parts) -> bool:
    """Whether ``again`` files ``first`` once more (a retry). Its ``received_at`` counts only
    when the body gave one: otherwise it is the time of the retry. A category stored as spelled
    (before categories were filed as the taxonomy writes them) is the one it names."""
    received = replace(again, received_at=first.received_at) if not received_given else again
    if _category(first.category, parts)[0] == again.category:
        received = replace(received, category=first.category)
    return first.same_content(received)


def _category(given: str, parts: Parts) -> tuple[str, ValidationIssue | None]:
    """The category a complaint is filed under, and the warning when it is not ``given``: the
    taxonomy's (the defaults and the config's) that ``given`` names in another case, with other
    separators or in the plural, as a payment's method is read; else ``given`` with ``_`` for its
    spaces (a category is an identifier); else ``given``. Another spelling was kept as given and
    left the merchant's own reads and every export apart from the category it maps as; a plural
    mapped to nothing, and spaces were refused."""
    taken = taxonomy_category(given, taxonomy(parts.config.complaint_taxonomy))
    if taken is None:
        taken = "_".join(given.split())
        if taken == given:
            return given, None
        message = (
            f"read the category {quote(given)} as {taken} (spaces as _), which the taxonomy does not name"
        )
    else:
        if taken == given:
            return given, None
        message = f"read the category {quote(given)} as {taken}, the taxonomy's"
    return taken, warning("category", "normalized", message, raw=given)


def parsed_complaint(caller: Principal, body: ComplaintIn, parts: Parts) -> Complaint:
    _refuse_card_numbers(body)
    _refuse_unreadable_id(body.complaint_id)
    merchant_id = body.merchant_id
    if caller.merchant_id is not None:
        if merchant_id is not None and merchant_id != caller.merchant_id:
            raise ApiProblem("forbidden", "A merchant key files complaints for its own merchant only.")
        merchant_id = caller.merchant_id
    if merchant_id is None:
        raise ApiProblem(
            "validation_failed",
            "An admin key must name the merchant.",
            errors=[FieldError("merchant_id", "missing", "is required with an admin key")],
        )
    if all(merchant.merchant_id != merchant_id for merchant in parts.config.merchants):
        raise ApiProblem(
            "validation_failed",
            "merchant_id names no merchant of this service.",
            errors=[
                FieldError("merchant_id", "unknown_merchant", f"no merchant {merchant_id!r} is configured")
            ],
        )
    if body.contract_id is not None:
        check_contract(body.contract_id)
    now = parts.clock.now().astimezone(UTC)
    received = _received_at(body.received_at) or now
    if received > now + FUTURE_SLACK:
        # A complaint cannot be received later than it is filed; kept, it would stay out of every
        # report until its time came. Clocks may differ by a little: that much is let through.
        raise _received_at_problem(
            "in_the_future", "ahead of the service's clock", f"after now ({now.isoformat()})"
        )
    # A reference that holds what looks like a card number is kept masked, not refused.
    complaint_id = (
        new_id("cmp") if body.complaint_id is None else parts.desk.keeper.identifier(body.complaint_id)
    )
    # Free text from a merchant's support desk: a card number in it is kept masked only.
    description = mask_card_numbers(body.description)
    issues = [*body.corrections]
    category, noted = _category(body.category, parts)
    if noted is not None:
        issues.append(noted)
    if complaint_id != body.complaint_id and body.complaint_id is not None:
        issues.append(_masking_note("complaint_id", "complaint_id (kept with a tag)", complaint_id))
    if description != body.description:
        issues.append(_masking_note("description", "description", description))
    try:
        return Complaint(
            complaint_id=complaint_id,
            merchant_id=MerchantId(merchant_id),
            received_at=received,
            category=category,
            description=description,
            payment_id=None if body.payment_id is None else PaymentId(body.payment_id),
            request_id=None if body.request_id is None else RequestId(body.request_id),
            contract_id=None if body.contract_id is None else ContractId(body.contract_id),
            validation_errors=tuple(issues),
        )
    except DomainError as exc:
        raise ApiProblem(
            "validation_failed",
            "The complaint is not well formed.",
            errors=[FieldError(exc.field, "invalid", exc.reason)],
        ) from None


def _masking_note(field: str, what: str, masked: str) -> ValidationIssue:
    """The warning for a card number kept masked, as a payment's metadata words it."""
    message = f"masked a card number in the {what}: only its first six and last four digits are kept"
    return warning(field, "card_number_masked", message, masked)


async def check_payment(parts: Parts, complaint: Complaint, *, received_given: bool) -> Complaint:
    """422 when the complaint names a payment that is not its merchant's (another merchant's
    payment gets the same answer as an unknown one: a key learns nothing of other merchants).
    A complaint filed without ``received_at`` is received now, but never before its payment."""
    if complaint.payment_id is None:
        return complaint
    stored = await parts.records.payment(complaint.payment_id)
    if stored is None or stored.merchant_id != complaint.merchant_id:
        raise ApiProblem(
            "validation_failed",
            "payment_id names no payment of this merchant.",
            errors=[
                FieldError(
                    "payment_id", "unknown_payment", f"no payment {complaint.payment_id!r} for this merchant"
                )
            ],
        )
    received = _payment_received_at(stored.document)
    if received is not None and not received_given and complaint.received_at < received:
        # The service's clock was stepped back since the payment (or ran ahead then): the
        # merchant gave no time to correct, and the report must count it where its payment is.
        return replace(complaint, received_at=received)
    if received is not None and complaint.received_at < received - FUTURE_SLACK:
        # No complaint about a payment comes before it: the date is wrong, and kept it would count
        # in the report of a window the payment is not in. Clocks may differ by a little.
        raise _received_at_problem(
            "before_payment",
            "before the payment it names was received",
            f"before payment {complaint.payment_id!r} was received ({received.isoformat()})",
        )
    return complaint


def _received_at_problem(code: str, beyond: str, beyond_when: str) -> ApiProblem:
    """422 for a complaint's ``received_at`` more than :data:`FUTURE_SLACK` ``beyond`` a time."""
    slack_minutes = int(FUTURE_SLACK.total_seconds()) // 60
    return ApiProblem(
        "validation_failed",
        f"`received_at` is more than {slack_minutes} minutes {beyond}.",
        errors=[FieldError("received_at", code, f"is more than {slack_minutes} minutes {beyond_when}")],
    )


def _payment_received_at(document: JsonObject) -> datetime | None:
    """When a stored payment was received: its first event's (``PaymentReceived``) time."""
    events = document.get("events")
    if not isinstance(events, list) or not events or not isinstance(events[0], dict):
        return None
    timestamp = events[0].get("timestamp")
    return datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else None


async def check_request(parts: Parts, complaint: Complaint) -> None:
    """422 when the complaint names a request that is not its merchant's, as for a payment: a
    request id of another merchant and one never issued get the same answer; and when it names a
    payment too, of which the request is not one (the request id was silently ignored)."""
    if complaint.request_id is None:
        return
    payments = await parts.records.request_payments(complaint.merchant_id, complaint.request_id)
    if payments is None:
        raise ApiProblem(
            "validation_failed",
            "request_id names no request of this merchant.",
            errors=[
                FieldError(
                    "request_id", "unknown_request", f"no request {complaint.request_id!r} for this merchant"
                )
            ],
        )
    if complaint.payment_id is None:
        return
    # A request recorded with no payment (a reused idempotency key) may be about any of them.
    if payments and complaint.payment_id not in payments:
        message = f"request {complaint.request_id!r} is not one of payment {complaint.payment_id!r}"
        raise ApiProblem(
            "validation_failed",
            "payment_id and request_id name two different payments.",
            errors=[
                FieldError("payment_id", "request_mismatch", message),
                FieldError("request_id", "request_mismatch", message),
            ],
        )
