"""The complaint routes: ``POST /v1/complaints`` (filing, checked by ingest.api.complaint_intake
and held to the merchant's ``complaint_limits``), ``GET /v1/complaints`` and
``GET /v1/complaints/{complaint_id}`` (read by ingest.api.complaint_reads).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Path, Query, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from engine.complaints import Complaint
from ingest.api import complaint_limits, store_gate
from ingest.api.admin_reads import headers_only, is_head
from ingest.api.analytics_reads import bounds
from ingest.api.complaint_intake import check_payment, check_request, parsed_complaint, same_complaint
from ingest.api.complaint_reads import complaint_json, complaint_page, find_complaint, mapping
from ingest.api.encoding import FastJSONResponse
from ingest.api.guards import KEYED_BODY, KEYED_READS, Caller, Limit, ListedMerchant, ReceivedFrom, ReceivedTo
from ingest.api.openapi import problem_responses
from ingest.api.parts import Parts
from ingest.api.problems import ApiProblem
from ingest.api.schemas import (
    COMPLAINT_REQUEST_BODY,
    ComplaintIn,
    ComplaintOut,
    ComplaintReadOut,
    ComplaintsOut,
)
from ingest.records import ComplaintQuery
from ingest.store.writer import StoreError


class _ReferenceConvertor(Convertor[str]):
    """A merchant's own reference as a path parameter, its ``/`` included: a ``complaint_id`` may
    hold one (``zendesk/4711``), which the server sees decoded also when a client sends it as
    ``%2F``, and Starlette's segment matched no route. Not at either end, where a slash is the
    path's (a trailing one is the 404 that names the route without it)."""

    regex = "[^/](?:.*[^/])?"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def _location(root_path: str, complaint: Complaint, by_admin: bool) -> str:
    """A new complaint's ``Location``: the path that reads it back, below a proxy's prefix.

    A 201 without one names the request's own URI as what it created (RFC 9110 section 15.3.2),
    ``/v1/complaints``, which is the list. The id is sent encoded (a ``/`` as ``%2F``, which the
    read takes), as kept (a card number masked); an admin's names the merchant, since two
    merchants may file the same id.
    """
    path = f"{root_path}/v1/complaints/{quote(complaint.complaint_id, safe='')}"
    return f"{path}?merchant_id={quote(complaint.merchant_id, safe='')}" if by_admin else path


def install_complaint_routes(app: FastAPI, parts: Parts) -> None:
    """``POST /v1/complaints``, ``GET /v1/complaints`` and ``GET /v1/complaints/{complaint_id}``."""
    register_url_convertor("reference", _ReferenceConvertor())  # Starlette's table is global
    gate = complaint_limits.ComplaintGate(parts.clock.monotonic)

    async def store(
        complaint: Complaint, *, received_given: bool, by_merchant: bool
    ) -> tuple[Complaint, Complaint | None]:
        """Store a complaint the writer let in, held to its merchant's limits when its merchant's
        key filed it (an operator's admin key files on a merchant's behalf: see
        ingest.api.complaint_limits): the complaint as stored, and the one its merchant filed
        before under its id (``None``: none was)."""
        merchant = parts.merchants[complaint.merchant_id]
        taken = by_merchant and await complaint_limits.admit(gate, parts.records, merchant, complaint)
        first: Complaint | None = complaint  # not stored, until it is
        try:
            complaint = await check_payment(parts, complaint, received_given=received_given)
            await check_request(parts, complaint)
            first = await store_gate.record_complaint(parts.records, parts.desk.shares, complaint)
        except StoreError:  # its batch was rolled back: nothing of it is kept
            raise store_gate.unstored_complaint(parts.records) from None
        finally:
            if taken and first is not None:  # only a complaint stored counts against the limits
                gate.give_back(merchant.merchant_id)
        return complaint, first

    @app.post(
        "/v1/complaints",
        summary="File a merchant complaint",
        operation_id="createComplaint",
        status_code=201,
        openapi_extra=COMPLAINT_REQUEST_BODY,
        dependencies=KEYED_BODY,
        response_model=ComplaintOut,
        responses={
            201: {
                "description": "Filed",
                "headers": {
                    "Location": {
                        "description": "Where the complaint is read back: "
                        "`GET /v1/complaints/{complaint_id}`, with `merchant_id` when an admin filed it.",
                        "schema": {"type": "string", "format": "uri-reference"},
                    }
                },
                "links": {
                    "GetComplaint": {
                        "operationId": "getComplaint",
                        "parameters": {"complaint_id": "$response.body#/complaint_id"},
                    }
                },
            },
            200: {
                "model": ComplaintOut,
                "description": "Already filed with the same content: the stored complaint",
            },
            **problem_responses(
                "invalid_request",
                "unauthorized",
                "forbidden",
                "complaint_exists",
                "length_required",
                "payload_too_large",
                "validation_failed",
                "rate_limited",
                "service_unavailable",
            ),
        },
    )
    async def create_complaint(caller: Caller, body: ComplaintIn) -> Response:
        """Store a complaint (PRODUCT.md section 9). A complaint_id is the merchant's own: filed
        again with the same content it is stored once (200, the stored complaint); with other
        content it is refused (409). Past the merchant's `complaint_limits` a new complaint is
        refused (429, `Retry-After`) and not stored; one filed before is answered as before. An
        admin key's complaints (an operator filing on a merchant's behalf) use none of the
        merchant's limits and have none of their own. While
        the event writer is behind, or once the disk stopped it, a new complaint is refused (503,
        `Retry-After`) and not stored: file it again with the same complaint_id."""
        complaint = parsed_complaint(caller, body, parts)
        # Counted as a payment's are: what the parser corrected in this filing, stored or not.
        parts.metrics.count_issues(complaint.validation_errors, "complaint")
        received_given = body.received_at is not None
        # A writer behind or stopped takes no new complaint: 503 before anything is counted.
        admitted = await store_gate.admit_complaint(parts.records, complaint, parts.desk.shares)
        if isinstance(admitted, Complaint):  # filed before, and the writer is behind
            first = admitted
        else:
            try:
                complaint, filed = await store(
                    complaint, received_given=received_given, by_merchant=not caller.is_admin
                )
            finally:
                admitted.end()  # stored or refused: nothing more of it will come
            if filed is None:
                return FastJSONResponse(
                    complaint_json(complaint),
                    status_code=201,
                    headers={"Location": _location(parts.settings.root_path, complaint, caller.is_admin)},
                )
            first = filed
        if not same_complaint(first, complaint, received_given=received_given, parts=parts):
            raise ApiProblem(
                "complaint_exists",
                f"Complaint {first.complaint_id!r} was filed before with other content; it is kept as "
                "it was. File a new complaint under a new complaint_id.",
            )
        return FastJSONResponse(complaint_json(first), status_code=200)

    @app.get(
        "/v1/complaints",
        summary="Complaints, newest first",
        operation_id="listComplaints",
        response_model=ComplaintsOut,
        responses=problem_responses("unauthorized", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def list_complaints(
        request: Request,
        caller: Caller,
        merchant_id: ListedMerchant = None,
        since: ReceivedFrom = None,
        until: ReceivedTo = None,
        limit: Limit = 100,
        starting_after: Annotated[
            str | None,
            Query(
                max_length=255,
                description="The `complaint_id` of the last complaint of the page before: this "
                "page lists those after it (empty: from the newest).",
            ),
        ] = None,
    ) -> Response:
        """The complaints the key may read (a merchant's own; an admin's, every merchant's), as
        stored, newest first by `received_at` (then by `merchant_id` and `complaint_id`), at most
        `limit`. `has_more` says more follow: the next page is `starting_after` the last one's
        `complaint_id`, which walks them all once each while others are filed. The contract each
        maps to is in `GET /v1/complaints/{complaint_id}`."""
        start, end = bounds(since, until)
        query = ComplaintQuery(merchant_id or None, start, end, limit)
        cursor = parts.desk.keeper.identifier(starting_after) if starting_after else None
        head = is_head(request.scope)
        listed, more = await complaint_page(parts.records, caller, query, cursor, head=head)
        if head:
            return headers_only(FastJSONResponse.media_type)  # checked as the GET; no page read
        return FastJSONResponse(
            {"complaints": [complaint_json(complaint) for complaint in listed], "has_more": more}
        )

    @app.get(
        "/v1/complaints/{complaint_id:reference}",
        summary="A complaint and the contract it maps to",
        operation_id="getComplaint",
        response_model=ComplaintReadOut,
        responses=problem_responses("unauthorized", "not_found", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def get_complaint(
        request: Request,
        caller: Caller,
        complaint_id: Annotated[str, Path(min_length=1, max_length=255)],
        merchant_id: Annotated[
            str | None,
            Query(
                max_length=255,
                description="The merchant that filed it (complaint ids are each merchant's own): "
                "needed with an admin key when more than one merchant filed this id. A merchant key "
                "reads its own only.",
            ),
        ] = None,
    ) -> Response:
        """The complaint as it was stored (its `complaint_id` as filed, or as kept when it holds a
        card number), the caller's merchant's only (another merchant's is a 404), with the
        contract it maps to by the violations recorded so far (`mapped_contract`, `mapped_by`)."""
        kept = parts.desk.keeper.identifier(complaint_id)
        complaint = await find_complaint(parts.records, caller, kept, merchant_id or None)
        if is_head(request.scope):
            # Found tells the status; the mapping (the violations of its payment and request read,
            # the mapper run) is left out with the body.
            return headers_only(FastJSONResponse.media_type)
        mapped = await mapping(parts.records, parts.settings.complaint_mapper, complaint)
        return FastJSONResponse(complaint_json(complaint) | mapped)
