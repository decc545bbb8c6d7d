"""``GET /v1/payments``: a merchant's payments (an admin's: every merchant's), newest first, a
page at a time, each as ``GET /v1/payments/{payment_id}`` shows it.

A payment sent without an ``Idempotency-Key`` whose answer was lost (a timeout, a dropped
connection) could not be found again: only its id, which the lost answer held, named it, and
the natural retry charged twice. Stripe lets an integration list its charges for this; so does
this list. A payment whose result is not recorded yet (still running, or cut short by a crash)
is listed too, with status ``processing`` and its events so far: it is the one most likely to be
looked for, and "missing" would read as "never charged".

A payment this start's crash recovery left unsettled (a later start settles it) is one of
those: its ``interrupted`` says why it waits, here and in ``GET /v1/payments/{payment_id}``.

The order is the time each payment was received (its ``PaymentReceived``), then its id
(:class:`~ingest.records.PaymentPlace`): a payment keeps its place when it ends, and one received
during a walk neither shifts the pages nor hides another. Scoping, the cursor and its 422 are
the complaints list's (ingest.api.list_pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from starlette.responses import Response

from ingest.api.admin_reads import headers_only, is_head
from ingest.api.analytics_reads import bounds
from ingest.api.auth import Principal
from ingest.api.encoding import FastJSONResponse
from ingest.api.event_schemas import PaymentsOut
from ingest.api.guards import KEYED_READS, Caller, Limit, ListedMerchant, ReceivedFrom, ReceivedTo
from ingest.api.list_pages import listed_merchant, unknown_cursor
from ingest.api.openapi import problem_responses
from ingest.api.parts import Parts
from ingest.codec.result_json import PROCESSING, JsonObject
from ingest.records import PaymentQuery, Records, StoredPayment
from ingest.store.recovery import RecoveryReport

#: The statuses a payment is listed under: its result's, ``rejected`` for a refused request, and
#: ``processing`` while it has no result.
ListedStatus = Literal["succeeded", "partially_succeeded", "failed", "rejected", "processing"]


def shown(stored: StoredPayment, recovery: object | None) -> JsonObject:
    """The document of ``stored`` as the reads answer it: one crash recovery left unsettled at
    this start (``recovery``, its report) says why in ``interrupted``, since only a later start
    settles it and polling it meanwhile is no use."""
    document = stored.document
    if isinstance(recovery, RecoveryReport) and recovery.left_payments and document["status"] == PROCESSING:
        why = recovery.why_left(str(document["payment_id"]))
        if why is not None:
            document["interrupted"] = why
    return document


async def payment_page(
    records: Records,
    caller: Principal,
    query: PaymentQuery,
    starting_after: str | None,
    *,
    head: bool = False,
) -> tuple[Sequence[StoredPayment], bool]:
    """The page of ``query`` that ``caller`` may read (``query.merchant_id``'s when given, a
    merchant key's own merchant's only), past the payment ``starting_after``, and whether more
    follow. 422 when ``starting_after`` names none of the listed merchants' payments. For a
    ``head`` request, only that check: no page is read."""
    listed, merchant_id = listed_merchant(caller, query.merchant_id)
    if not listed:
        return [], False  # another merchant's payments: as none
    after = None
    if starting_after is not None:
        after = await records.payment_place(starting_after, merchant_id)
        if after is None:
            raise unknown_cursor("payment", starting_after)
    if head:
        return [], False
    # One more than asked for: whether more follow is then known, not guessed from the length.
    found = await records.payments_page(
        PaymentQuery(merchant_id, query.since, query.until, query.status, query.limit + 1, after)
    )
    return found[: query.limit], len(found) > query.limit


def install_payment_list(app: FastAPI, parts: Parts) -> None:
    """``GET /v1/payments`` (and its ``HEAD``)."""

    @app.get(
        "/v1/payments",
        summary="Payments, newest first",
        operation_id="listPayments",
        response_model=PaymentsOut,
        responses=problem_responses("unauthorized", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def list_payments(
        request: Request,
        caller: Caller,
        merchant_id: ListedMerchant = None,
        since: ReceivedFrom = None,
        until: ReceivedTo = None,
        status: Annotated[
            ListedStatus | None,
            Query(
                description="Only payments of this status now; `processing`: no result recorded yet "
                "(running, or cut short by a crash and settled by the next start)."
            ),
        ] = None,
        limit: Limit = 100,
        starting_after: Annotated[
            str | None,
            Query(
                max_length=255,
                description="The `payment_id` of the last payment of the page before: this page "
                "lists those after it (empty: from the newest).",
            ),
        ] = None,
    ) -> Response:
        """The payments the key may read (a merchant's own; an admin's, every merchant's), newest
        first by the time each was received (then by `payment_id`), at most `limit`, each as
        `GET /v1/payments/{payment_id}` shows it; a payment with no result recorded yet is listed
        with status `processing` and its events so far. `has_more` says more follow: the next
        page is `starting_after` the last one's `payment_id`, which walks them all once each
        while others are received."""
        start, end = bounds(since, until)
        query = PaymentQuery(merchant_id or None, start, end, status, limit)
        head = is_head(request.scope)
        listed, more = await payment_page(parts.records, caller, query, starting_after or None, head=head)
        if head:
            return headers_only(FastJSONResponse.media_type)  # checked as the GET; no page read
        documents = [shown(stored, parts.recovery) for stored in listed]
        return FastJSONResponse({"payments": documents, "has_more": more})
