"""``GET /v1/complaints/{complaint_id}``: a complaint read back as it was stored, with the contract
it maps to; ``GET /v1/complaints``: a merchant's complaints (an admin's: every merchant's), a
page at a time.

A ``complaint_id`` is its merchant's own (two merchants may file the same one): a merchant key
reads its own merchant's complaint only (another merchant's is a 404, as for a payment), an admin
key any merchant's, naming the merchant (``?merchant_id=``) when more than one filed that id.

What a complaint maps to (PRODUCT.md section 9) is not stored: it is worked out as it is read,
from the violations recorded by then for its payment and request, by the report's rule
(``analytics.retrospective.map_complaints``). ``ingest`` and ``analytics`` are separate layers, so
the mapper is given to the app, as the report renderer is: ``payorch serve`` passes one; an app
made without one shows the mapping as ``null``.

The list is newest first by ``received_at`` (then merchant and id: ``complaint_order``) and is
walked as Stripe's lists are, ``starting_after`` the last ``complaint_id`` seen: each page begins
past that complaint's place, not at an offset, so complaints filed during the walk neither shift
the pages (one listed twice) nor hide one (one never listed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from engine.complaints import Complaint
from engine.contracts import ContractViolation
from ingest.api.auth import Principal
from ingest.api.list_pages import listed_merchant, unknown_cursor
from ingest.api.problems import ApiProblem, FieldError
from ingest.codec.result_json import issue_to_json, utc_timestamp
from ingest.parsing.masking import mask_card_numbers
from ingest.records import ComplaintQuery, Records, RecordsHistory, ViolationQuery


class ComplaintMapper(Protocol):
    def __call__(self, complaint: Complaint, violations: Sequence[ContractViolation]) -> tuple[str, str]:
        """The contract ``complaint`` maps to (``unmapped`` when none) and how (``explicit``,
        ``payment``, ``request``, ``category`` or ``unmapped``), through ``violations``: those
        recorded for its payment and its request."""
        ...


def complaint_json(complaint: Complaint) -> dict[str, object]:
    """A complaint as ``POST /v1/complaints`` answers it."""
    return {
        "complaint_id": complaint.complaint_id,
        "merchant_id": complaint.merchant_id,
        "received_at": utc_timestamp("received_at", complaint.received_at),
        "category": complaint.category,
        "description": complaint.description,
        "payment_id": complaint.payment_id,
        "request_id": complaint.request_id,
        "contract_id": complaint.contract_id,
        "validation_errors": [issue_to_json(issue) for issue in complaint.validation_errors],
    }


async def find_complaint(
    records: Records, caller: Principal, complaint_id: str, merchant_id: str | None
) -> Complaint:
    """The complaint ``caller`` may read under ``complaint_id`` (as kept); 404 when there is none
    (another merchant's included), 422 when an admin must name the merchant."""
    if caller.merchant_id is not None:
        if merchant_id not in (None, caller.merchant_id):
            raise _not_found(complaint_id)
        merchant_id = caller.merchant_id
    found = await records.complaints_named(complaint_id, merchant_id)
    if not found:
        raise _not_found(complaint_id)
    if len(found) > 1:
        merchants = ", ".join(complaint.merchant_id for complaint in found)
        raise ApiProblem(
            "validation_failed",
            "More than one merchant filed a complaint under this id: name the merchant.",
            errors=[FieldError("merchant_id", "ambiguous", f"is needed: {merchants} each filed one")],
        )
    return found[0]


async def complaint_page(
    records: Records,
    caller: Principal,
    query: ComplaintQuery,
    starting_after: str | None,
    *,
    head: bool = False,
) -> tuple[Sequence[Complaint], bool]:
    """The page of ``query`` that ``caller`` may read (``query.merchant_id``'s when given, a
    merchant key's own merchant's only), past the complaint ``starting_after`` (its id as kept),
    and whether more follow. 422 when ``starting_after`` names none of the listed merchants'.
    For a ``head`` request, only that check: no page is read (nothing, without a cursor)."""
    listed, merchant_id = listed_merchant(caller, query.merchant_id)
    if not listed:
        return [], False  # another merchant's complaints: as none
    after = None if starting_after is None else await _cursor(records, starting_after, merchant_id)
    if head:
        return [], False
    # One more than asked for: whether more follow is then known, not guessed from the length.
    found = await records.complaints_page(
        ComplaintQuery(merchant_id, query.since, query.until, query.limit + 1, after)
    )
    return found[: query.limit], len(found) > query.limit


async def _cursor(records: Records, complaint_id: str, merchant_id: str | None) -> Complaint:
    found = await records.complaints_named(complaint_id, merchant_id)
    if not found:
        raise unknown_cursor("complaint", complaint_id)
    if len(found) > 1:
        merchants = ", ".join(complaint.merchant_id for complaint in found)
        raise ApiProblem(
            "validation_failed",
            "More than one merchant filed a complaint under the id `starting_after` names: list one "
            "merchant's (`merchant_id`).",
            errors=[FieldError("starting_after", "ambiguous", f"names one of each of {merchants}")],
        )
    return found[0]


def _not_found(complaint_id: str) -> ApiProblem:
    return ApiProblem("not_found", f"No complaint {mask_card_numbers(complaint_id)!r} for this key.")


async def mapping(
    records: Records, mapper: ComplaintMapper | None, complaint: Complaint
) -> dict[str, object]:
    """``mapped_contract`` and ``mapped_by`` of ``complaint`` by the violations recorded so far
    for its payment and request (its own merchant's); both ``None`` without a mapper."""
    if mapper is None:
        return {"mapped_contract": None, "mapped_by": None}
    merchant, limit = complaint.merchant_id, RecordsHistory.LIMIT
    violations: list[ContractViolation] = []
    if complaint.payment_id is not None:
        query = ViolationQuery(limit=limit, payment_id=complaint.payment_id, merchant_id=merchant)
        violations.extend(await records.violations(query))
    if complaint.request_id is not None:
        query = ViolationQuery(limit=limit, request_id=complaint.request_id, merchant_id=merchant)
        # Each violation once: those of the payment too are in already.
        found = await records.violations(query)
        paid = complaint.payment_id
        violations.extend(v for v in found if paid is None or v.payment_id != paid)
    # Polars' first use in the process takes a while: off the event loop.
    contract, way = await asyncio.to_thread(mapper, complaint, violations)
    return {"mapped_contract": contract, "mapped_by": way}
