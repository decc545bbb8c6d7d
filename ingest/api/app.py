"""``create_app(settings)``: the API process's composition root.

Everything the process needs is built here, once per app and nothing at import: the records, the
engine with its processors, the idempotency store, the metrics and the payment desk. Routes are
thin: authenticate, read, call, answer.

The payment, violation, report and health routes are here; the payments list is in
ingest.api.payment_reads, the complaint routes in
ingest.api.complaint_routes, the analytics tables' in ingest.api.analytics_reads, and what every
route shares (the key, the query's names, the error handlers) in ingest.api.guards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

import duckdb
from fastapi import FastAPI, Path, Query, Request
from starlette.responses import HTMLResponse, Response

from engine.errors import PayorchError
from engine.types import PaymentId
from ingest.api.admin_reads import headers_only, is_head
from ingest.api.analytics_reads import ANALYTICS_TABLES, add_analytics_route, bounds, window_between
from ingest.api.application import PayorchAPI
from ingest.api.complaint_routes import install_complaint_routes
from ingest.api.docs import install_docs
from ingest.api.encoding import FastJSONResponse
from ingest.api.event_schemas import PaymentOut, ProcessingPaymentOut, RefusedPaymentOut
from ingest.api.front import Front, PaymentHeaders, payment_answer
from ingest.api.guards import (
    ADMIN_ONLY,
    KEYED_READS,
    Caller,
    IsoMoment,
    Limit,
    Until,
    check_contract,
    install_error_handlers,
    request_id_of,
)
from ingest.api.lifespan import start, stop
from ingest.api.list_pages import violation_after
from ingest.api.metrics import CONTENT_TYPE
from ingest.api.openapi import IDEMPOTENCY_KEY_PARAMETER, finished_openapi, problem_responses
from ingest.api.parts import Parts, build_parts
from ingest.api.payment_reads import install_payment_list, shown
from ingest.api.payments import STOPPED_RETRY_AFTER_S
from ingest.api.problems import ApiProblem, problem_document, problem_page
from ingest.api.reports import MEDIA_TYPES, AskedFormat, negotiated_format, report_answer
from ingest.api.schemas import (
    PAYMENT_REQUEST_BODY,
    CompositeResultOut,
    HealthOut,
    ProblemCode,
    RetrospectiveOut,
    ViolationsOut,
)
from ingest.api.settings import Settings
from ingest.codec.result_json import violation_to_json
from ingest.parsing.masking import mask_card_numbers
from ingest.records import ViolationQuery
from ingest.store.ownership import DataFolderMovedError


def _payment_links() -> dict[int | str, dict[str, Any]]:
    """The 200 of ``createPayment`` links to ``getPayment`` by the payment id it returns."""
    link = {"operationId": "getPayment", "parameters": {"payment_id": "$response.body#/payment_id"}}
    return {200: {"description": "The payment's outcome", "links": {"GetPayment": link}}}


def create_app(settings: Settings) -> FastAPI:
    """The merchant API of PRODUCT.md section 4 over ``settings``."""
    parts = build_parts(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            running = await start(parts)
        except (PayorchError, duckdb.Error) as error:
            # The server says this line and stops (payorch serve: exit 2), not a traceback.
            if isinstance(error, DataFolderMovedError):
                parts.start_failure = str(error)  # says itself what was found and what to do
            elif isinstance(error, duckdb.Error) and parts.writer is not None:
                parts.start_failure = f"crash recovery cannot read the database {parts.writer.path}: {error}"
            else:
                parts.start_failure = f"crash recovery at start failed: {error}"
            raise
        yield
        await stop(parts, running)

    app = PayorchAPI(
        title="payorch",
        version="0.1.0",
        description="Payment orchestration: split payments across methods and processors, with "
        "retries, fallback and compensation. Errors are application/problem+json (RFC 9457).",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        # FastAPI's own OpenTelemetry hooks look up the global providers on every request; payorch
        # does its own observing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # A path with a slash too many is a 404 that says so, not a redirect: a client that does
        # not follow it would see an empty 307, one that does would send the body twice.
        redirect_slashes=False,
        # Served by install_docs: FastAPI's pages load their scripts from CDNs.
        docs_url=None,
        redoc_url=None,
    )
    app.state.parts = parts
    install_error_handlers(app, settings.root_path)
    _install_routes(app, parts)
    install_payment_list(app, parts)
    install_complaint_routes(app, parts)
    install_docs(app)
    app.openapi = finished_openapi(app.openapi)  # type: ignore[method-assign]
    app.add_middleware(Front, parts=parts)
    return app


#: The report's 200 answer also comes as YAML: the same document as the route's JSON model.
_YAML_REPORT: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPES["yaml"]: {"schema": {"$ref": "#/components/schemas/RetrospectiveOut"}}}}
}


def _install_routes(app: FastAPI, parts: Parts) -> None:
    @app.post(
        "/v1/payments",
        summary="Make a payment",
        operation_id="createPayment",
        response_model=CompositeResultOut,
        responses=_payment_links()
        | problem_responses(
            "invalid_request",
            "unauthorized",
            "forbidden",
            "request_timeout",
            "idempotency_key_in_use",
            "length_required",
            "payload_too_large",
            "validation_failed",
            "idempotency_key_reused",
            "rate_limited",
            "internal_error",
            "service_unavailable",
            "payment_interrupted",
        ),
        # The key is read by hand on this route (FastAPI's dependency solving costs more than the
        # rest of the request's bookkeeping); the document still says it needs one.
        openapi_extra={
            **PAYMENT_REQUEST_BODY,
            "security": [{"HTTPBearer": []}],
            "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        },
    )
    async def create_payment(request: Request) -> Response:
        """Orchestrate a payment. Any orchestrated outcome (succeeded, partially succeeded,
        failed) is 200 with a CompositeResult; 422 means nothing was charged. The fields are
        read from the body only: a query parameter is 422 `unknown_parameter`."""
        # The front answers this route itself (see ingest.api.front); this is the same answer for
        # a request that reaches the router.
        request_headers = request.headers
        headers = PaymentHeaders(
            request_headers.get("authorization"),
            request_headers.get("idempotency-key"),
            request_headers.get("content-type"),
            ", ".join(request_headers.getlist("content-encoding")) or None,
        )
        query: bytes = request.scope.get("query_string", b"")
        answer = await payment_answer(parts, headers, request.receive, request_id_of(request), query)
        response = Response(answer.body, status_code=answer.status)
        response.raw_headers = answer.headers
        return response

    @app.get(
        "/v1/payments/{payment_id}",
        summary="A payment and its events",
        operation_id="getPayment",
        description="A payment's result and its events; a request refused 422 (or 403) is shown under "
        "the `payment_id` its answer gave, with status `rejected` (nothing charged); a payment with no "
        "result yet (still running, or cut short by a crash and not settled yet: see `interrupted`) "
        "as `GET /v1/payments` lists it, with status `processing`: it may have charged, so do not "
        "pay again, look it up later.",
        response_model=PaymentOut | RefusedPaymentOut | ProcessingPaymentOut,
        responses=problem_responses("unauthorized", "not_found", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def get_payment(
        request: Request, caller: Caller, payment_id: Annotated[str, Path(min_length=1, max_length=255)]
    ) -> Response:
        stored = None
        if is_head(request.scope):
            # Whose it is tells the status; its events and document, read and built for a body
            # thrown away, are left unread (no Content-Length then: RFC 9110 section 9.3.2).
            merchant_id = await parts.records.payment_merchant(payment_id)
        else:
            stored = await parts.records.payment(PaymentId(payment_id))
            merchant_id = None if stored is None else stored.merchant_id
        if merchant_id is None or not caller.may_see(merchant_id):
            raise ApiProblem("not_found", f"No payment {mask_card_numbers(payment_id)!r} for this key.")
        if stored is None:  # a HEAD
            return headers_only(FastJSONResponse.media_type)
        return FastJSONResponse(shown(stored, parts.recovery))

    @app.get(
        "/v1/violations",
        summary="Contract violations, newest first",
        operation_id="listViolations",
        response_model=ViolationsOut,
        responses=problem_responses("unauthorized", "forbidden", "validation_failed", "service_unavailable"),
        dependencies=ADMIN_ONLY,
    )
    async def list_violations(
        request: Request,
        contract_id: Annotated[
            str | None,
            Query(
                max_length=255,
                description="Only this contract's (422 `unknown_contract` for an id not in the registry); "
                "empty: every contract.",
            ),
        ] = None,
        since: Annotated[
            IsoMoment | None, Query(alias="from", description="Inclusive (ISO 8601; naive is UTC).")
        ] = None,
        until: Annotated[
            IsoMoment | None, Query(alias="to", description="Exclusive (ISO 8601; naive is UTC).")
        ] = None,
        limit: Limit = 1000,
        payment_id: Annotated[
            str | None, Query(max_length=255, description="Only this payment's; empty: every payment.")
        ] = None,
        request_id: Annotated[
            str | None,
            Query(
                max_length=255, description="Only this request's (its `Request-Id`); empty: every request."
            ),
        ] = None,
        merchant_id: Annotated[
            str | None, Query(max_length=255, description="Only this merchant's; empty: every merchant.")
        ] = None,
        starting_after: Annotated[
            str | None,
            Query(
                max_length=255,
                pattern="^[0-9]*$",
                description="The `seq` of the last violation of the page before: this page lists "
                "those after it (empty: from the newest).",
            ),
        ] = None,
    ) -> Response:
        """Newest first (by `timestamp`, then by `seq`), at most `limit`, each with the `seq` it
        was recorded under. `has_more` says more follow: the next page is `starting_after` the
        last one's `seq`, which walks them all once each, also when many share a timestamp and
        while others are recorded. `payment_id`, `request_id` and `merchant_id` keep the
        violations that name them (an id nothing names: an empty list)."""
        if contract_id:
            check_contract(contract_id)
        start, end = bounds(since, until)
        after = await violation_after(parts.records, starting_after or None)
        if is_head(request.scope):
            return headers_only(FastJSONResponse.media_type)  # checked as the GET; no page read
        # One more than asked for: whether the list was cut is then known, not guessed from its length.
        query = ViolationQuery(
            contract_id or None,
            start,
            end,
            limit + 1,
            payment_id=payment_id or None,
            request_id=request_id or None,
            merchant_id=merchant_id or None,
            after=after,
        )
        found = await parts.records.violations_page(query)
        listed = [violation_to_json(v.violation) | {"seq": v.seq} for v in found[:limit]]
        return FastJSONResponse({"violations": listed, "has_more": len(found) > limit})

    analytics_problems = problem_responses(
        "unauthorized", "forbidden", "validation_failed", "service_unavailable"
    )

    for table in ANALYTICS_TABLES:
        add_analytics_route(app, parts, table, analytics_problems)

    @app.get(
        "/v1/reports/retrospective",
        summary="The retrospective report of a time window",
        operation_id="getRetrospective",
        response_model=RetrospectiveOut,
        responses=_YAML_REPORT | analytics_problems,
        dependencies=ADMIN_ONLY,
    )
    async def retrospective(
        request: Request,
        since: Annotated[
            IsoMoment | None,
            Query(
                alias="from",
                description="Start, inclusive (ISO 8601; naive is UTC). Default: `reports.every_days` "
                "days before `to`.",
            ),
        ] = None,
        until: Until = None,
        output: Annotated[
            AskedFormat | None,
            Query(
                alias="format",
                description="`yaml` or `json`: the same document. Absent: `json` when the `Accept` "
                "header prefers `application/json` to `application/yaml`, else `yaml`. `md` and "
                "`html` are not built yet (422 `not_built`).",
            ),
        ] = None,
    ) -> Response:
        """Per contract, the window's violations against the merchant complaints mapped to it,
        and whether the two disagree enough to escalate (the config's `reports.mismatch` rule)."""
        span = timedelta(days=parts.config.reports.every_days)
        window = window_between(since, until, parts.clock.now(), span)
        if output is None:
            output = negotiated_format(request.headers.get("accept"))
        return await report_answer(
            parts.writer,
            parts.settings.report_renderer,
            window,
            output,
            parts.admin_reads,
            head=is_head(request.scope),
        )

    @app.get(
        "/problems/{code}",
        summary="What a problem type means",
        operation_id="getProblemType",
        response_class=HTMLResponse,
        responses={
            200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The page"},
            **problem_responses("not_found", "validation_failed"),
        },
    )
    async def problem_type(code: Annotated[ProblemCode, Path(max_length=64)]) -> Response:
        """The page an error's `type` URI names: its title, status, meaning and what to do."""
        page = problem_page(code, parts.settings.root_path)
        if page is None:
            raise ApiProblem("not_found", "No problem type has this name.")
        return HTMLResponse(page)

    @app.get("/healthz", summary="Liveness", operation_id="getHealth", response_model=HealthOut)
    async def healthz() -> Response:
        return FastJSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness: records open and not shutting down",
        operation_id="getReadiness",
        response_model=HealthOut,
        responses=problem_responses("service_unavailable"),
    )
    async def readyz() -> Response:
        # Why, in the detail: an operator looking at a failing probe learns whether to wait for a
        # restart or to make room on the disk (no path or error text: the route is public).
        writer = parts.writer
        if writer is not None and writer.failure is not None:
            raise ApiProblem(
                "service_unavailable",
                "Not ready: the service's disk refused to record, and the service is stopping.",
                headers={"Retry-After": STOPPED_RETRY_AFTER_S},
            )
        if parts.draining or not parts.records.healthy():
            raise ApiProblem(
                "service_unavailable", "Not ready: the service is stopping.", headers={"Retry-After": "1"}
            )
        return FastJSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        operation_id="getMetrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Metrics"}
        },
    )
    async def metrics() -> Response:
        return Response(parts.metrics.render(), media_type=CONTENT_TYPE)


__all__ = ["create_app", "problem_document"]
