"""``create_app(settings)``: the API process's composition root.

Everything the process needs is built here, once per app and nothing at import: the records, the
engine with its processors (each wrapped for timing), the idempotency store, the metrics and the
payment desk. Routes are thin: authenticate, read, call, answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import duckdb
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response

from engine.complaints import Complaint
from engine.contracts import default_registry
from engine.errors import DomainError, PayorchError
from engine.types import ContractId, MerchantId, PaymentId, RequestId
from ingest.api import complaint_limits, store_gate
from ingest.api.analytics_reads import TableFormat, bounds, table_answer, table_responses, window_between
from ingest.api.auth import Principal
from ingest.api.complaint_reads import complaint_json, complaint_page, find_complaint, mapping
from ingest.api.docs import install_docs
from ingest.api.encoding import FastJSONResponse
from ingest.api.event_schemas import PaymentOut, RefusedPaymentOut
from ingest.api.front import Front, PaymentHeaders, known, payment_answer, route_path
from ingest.api.lifespan import start, stop
from ingest.api.metrics import CONTENT_TYPE
from ingest.api.openapi import IDEMPOTENCY_KEY_PARAMETER, finished_openapi
from ingest.api.parts import Parts, build_parts
from ingest.api.payments import STOPPED_RETRY_AFTER_S, new_id
from ingest.api.problems import (
    PROBLEMS,
    ApiProblem,
    FieldError,
    problem_document,
    problem_page,
    problem_response,
)
from ingest.api.reports import MEDIA_TYPES, ReportFormat, UnbuiltFormat, negotiated_format, report_answer
from ingest.api.schemas import (
    COMPLAINT_REQUEST_BODY,
    PAYMENT_REQUEST_BODY,
    AnalyticsComplaintsOut,
    AnalyticsEventsOut,
    AnalyticsViolationsOut,
    ComplaintIn,
    ComplaintOut,
    ComplaintReadOut,
    ComplaintsOut,
    CompositeResultOut,
    HealthOut,
    ProblemCode,
    ProblemOut,
    RetrospectiveOut,
    ViolationsOut,
    digits_only,
    iso_only,
)
from ingest.api.settings import Settings
from ingest.codec.result_json import JsonObject, violation_to_json
from ingest.parsing.masking import mask_card_numbers
from ingest.records import ComplaintQuery, ViolationQuery
from ingest.store import reads
from ingest.store.writer import StoreError

logger = logging.getLogger("payorch.api")


def _problems(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems a route may answer (a fault of ours, 500, on every route)."""
    entries: dict[int | str, dict[str, Any]] = {}
    for code in dict.fromkeys((*codes, "internal_error")):
        kind = PROBLEMS[code]
        entry = entries.setdefault(
            kind.status,
            {"model": ProblemOut, "content": {"application/problem+json": {}}, "description": ""},
        )
        entry["description"] = f"{entry['description']}; {kind.title}".lstrip("; ")
    return entries


def _payment_links() -> dict[int | str, dict[str, Any]]:
    """The 200 of ``createPayment`` links to ``getPayment`` by the payment id it returns."""
    link = {"operationId": "getPayment", "parameters": {"payment_id": "$response.body#/payment_id"}}
    return {200: {"description": "The payment's outcome", "links": {"GetPayment": link}}}


@dataclass(frozen=True, slots=True)
class AnalyticsTable:
    """One ``GET /v1/analytics/{name}`` route: what it reads and how OpenAPI describes it."""

    name: str
    operation_id: str
    summary: str
    description: str
    model: type[Any]
    source: reads.Input


ANALYTICS_TABLES = (
    AnalyticsTable(
        "events",
        "listAnalyticsEvents",
        "Domain events of a time window, for analytics",
        "The window's events, in the order they were written",
        AnalyticsEventsOut,
        reads.EVENTS,
    ),
    AnalyticsTable(
        "violations",
        "listAnalyticsViolations",
        "Contract violations of a time window, for analytics",
        "The window's violations, oldest first",
        AnalyticsViolationsOut,
        reads.VIOLATIONS,
    ),
    AnalyticsTable(
        "complaints",
        "listAnalyticsComplaints",
        "Complaints received in a time window, for analytics",
        "The window's complaints, oldest first",
        AnalyticsComplaintsOut,
        reads.COMPLAINTS,
    ),
)


def _add_analytics_route(
    app: FastAPI, parts: Parts, table: AnalyticsTable, problems: dict[int | str, dict[str, Any]]
) -> None:
    async def answer(since: Since = None, until: Until = None, output: Format = "json") -> Response:
        window = window_between(since, until, parts.clock.now())
        return await table_answer(parts.writer, table.source, window, output, parts.admin_reads)

    app.get(
        f"/v1/analytics/{table.name}",
        summary=table.summary,
        operation_id=table.operation_id,
        response_model=table.model,
        responses=table_responses(table.description) | problems,
        dependencies=ADMIN_ONLY,
    )(answer)


def create_app(settings: Settings) -> FastAPI:
    """The merchant API of PRODUCT.md section 4 over ``settings``."""
    parts = build_parts(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            running = await start(parts)
        except (PayorchError, duckdb.Error) as error:
            # The server says this line and stops (payorch serve: exit 2), not a traceback.
            if isinstance(error, duckdb.Error) and parts.writer is not None:
                parts.start_failure = f"crash recovery cannot read the database {parts.writer.path}: {error}"
            else:
                parts.start_failure = f"crash recovery at start failed: {error}"
            raise
        yield
        await stop(parts, running)

    app = FastAPI(
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
    _install_error_handlers(app, settings.root_path)
    _install_routes(app, parts)
    _install_complaint_routes(app, parts)
    install_docs(app)
    app.openapi = finished_openapi(app.openapi)  # type: ignore[method-assign]
    app.add_middleware(Front, parts=parts)
    return app


def _request_id(request: Request) -> RequestId:
    return RequestId(getattr(request.state, "request_id", None) or new_id("req"))


def _not_found_detail(request: Request) -> str:
    """404's detail; it names the path without its trailing slash when that one is a route, and
    the prefix of ``--root-path`` when a route follows it (a proxy that does not strip it: every
    request was a bare 404)."""
    path = route_path(request.scope)  # behind a proxy's prefix, the path its routes match
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(f"{root}/") and _is_route(request, path.removeprefix(root)):
        return (
            f"No route matches this path: it begins with {root}, the prefix the service is served "
            "under (payorch serve --root-path), which the reverse proxy must strip."
        )
    bare = path.rstrip("/")
    if bare and bare != path and _is_route(request, bare):
        shown = mask_card_numbers(request.url.path.rstrip("/"))  # as the client names it
        return f"No route matches this path; {shown} (without the trailing slash) is one."
    return "No route matches this path."


def _is_route(request: Request, path: str) -> bool:
    patterns = (getattr(route, "path_regex", None) for route in request.app.router.routes)
    return any(pattern is not None and pattern.match(path) for pattern in patterns)


def _install_error_handlers(app: FastAPI, root_path: str) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)  # noqa: S101 - registered for ApiProblem only
        return problem_response(exc, _request_id(request), root_path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        if exc.status_code == 404:
            detail = _not_found_detail(request)
        elif exc.status_code == 405:
            detail = "This path does not take this method."
        else:
            detail = "The request could not be read."
        headers = dict(exc.headers or {})
        allowed = headers.get("Allow", "").split(", ")
        if "GET" in allowed and "HEAD" not in allowed:
            headers["Allow"] = ", ".join([*allowed, "HEAD"])  # Front answers HEAD wherever GET is
        return problem_response(ApiProblem(code, detail, headers=headers), _request_id(request), root_path)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = [_field_error(error) for error in exc.errors()]
        problem = ApiProblem("validation_failed", "The request does not fit this endpoint.", errors=errors)
        return problem_response(problem, _request_id(request), root_path)

    async def on_crash(request: Request, exc: Exception) -> Response:
        path = mask_card_numbers(request.url.path)
        logger.error("unhandled error on %s %s", request.method, path, exc_info=exc)
        problem = ApiProblem("internal_error", "Something went wrong on our side; nothing is shown here.")
        return problem_response(problem, _request_id(request), root_path)

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_crash)


#: FastAPI's wording for a body that is not an object: a form, text, a JSON array...
_NOT_AN_OBJECT = "model_attributes_type"


def _field_error(error: Mapping[str, Any]) -> FieldError:
    location = tuple(error.get("loc", ()))
    code = str(error.get("type", "invalid"))
    message = str(error.get("msg", "is invalid"))
    if location == ("body",) and code == _NOT_AN_OBJECT:
        message = "the body must be a JSON object, sent with Content-Type: application/json"
    if code == "json_invalid":  # its location is ("body", offset): the whole body is at fault
        return FieldError("body", code, f"is not valid JSON ({message.lower()})")
    return FieldError(".".join(str(part) for part in location[1:]) or "body", code, message)


#: A time query parameter: ISO 8601 (a naive one is UTC), never a bare number.
IsoMoment = Annotated[datetime, BeforeValidator(iso_only)]

_bearer = HTTPBearer(auto_error=False, description="An API key from the config file.")


async def _principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Principal:
    parts: Parts = request.app.state.parts
    found = None if credentials is None else parts.keys.authenticate(f"Bearer {credentials.credentials}")
    return known(found, request.headers.get("authorization"))


Caller = Annotated[Principal, Depends(_principal)]


async def _admin(caller: Caller) -> None:
    # A dependency, so that a merchant key hears 403 before anything about its query is checked.
    if not caller.is_admin:
        raise ApiProblem("forbidden", "This endpoint needs an admin key.")


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route (with its dependencies) reads, by the name a client sends."""
    names = frozenset(param.alias for param in dependant.query_params)
    return names.union(*(_query_names(sub) for sub in dependant.dependencies))


async def _known_parameters(request: Request) -> None:
    # As Stripe answers "unknown parameter": a typo (`?contract=`, `?since=`) or a filter the
    # route lacks was ignored, and the whole unfiltered list read as the answer.
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    given = request.query_params
    unknown = [name for name in dict.fromkeys(given) if name not in known]
    if unknown:
        expected = ", ".join(f"`{name}`" for name in sorted(known)) or "none"
        raise ApiProblem(
            "validation_failed",
            f"This endpoint takes no such query parameter (it takes {expected}).",
            errors=[
                FieldError(
                    mask_card_numbers(name)[:100], "unknown_parameter", "is not a parameter of this endpoint"
                )
                for name in unknown[:20]
            ],
        )
    # A parameter given twice (`?limit=1&limit=2`) was read as its last value: which one the
    # client meant is a guess, as for a header given twice.
    repeated = [name for name in dict.fromkeys(given) if len(given.getlist(name)) > 1]
    if repeated:
        raise ApiProblem(
            "validation_failed",
            "A query parameter is given more than once; give each at most once.",
            errors=[FieldError(name, "repeated_parameter", "is given more than once") for name in repeated],
        )


async def _store_readable(request: Request) -> None:
    # After the key and the parameters' names: what a client can fix is said first.
    parts: Parts = request.app.state.parts
    store_gate.check_readable(parts.writer)


KNOWN_PARAMETERS = Depends(_known_parameters)
#: A read of the records: 503 while the store cannot show them whole (ingest.api.store_gate).
STORE_READABLE = Depends(_store_readable)
#: Admin reads: the key is checked before anything of the query (a merchant key hears 403).
ADMIN_ONLY = [Depends(_admin), KNOWN_PARAMETERS, STORE_READABLE]
#: Reads with any key: the key first, 401 before 422.
KEYED_READS = [Depends(_principal), KNOWN_PARAMETERS, STORE_READABLE]
Since = Annotated[
    IsoMoment | None,
    Query(
        alias="from", description="Start, inclusive (ISO 8601; naive is UTC). Default: 14 days before `to`."
    ),
]
Until = Annotated[
    IsoMoment | None, Query(alias="to", description="End, exclusive (ISO 8601; naive is UTC). Default: now.")
]
#: A list's page size: Query first (after the validator, its bounds were written as pydantic names
#: them, `ge` and `le`, which the OpenAPI document's readers do not know: `limit` read as unbounded).
Limit = Annotated[int, Query(ge=1, le=10_000), BeforeValidator(digits_only)]
Format = Annotated[
    TableFormat,
    Query(alias="format", description="`json` rows, or `arrow`: an Arrow IPC stream of the same columns."),
]


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
        | _problems(
            "invalid_request",
            "unauthorized",
            "forbidden",
            "request_timeout",
            "idempotency_key_in_use",
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
        failed) is 200 with a CompositeResult; 422 means nothing was charged."""
        # The front answers this route itself (see ingest.api.front); this is the same answer for
        # a request that reaches the router.
        request_headers = request.headers
        headers = PaymentHeaders(
            request_headers.get("authorization"),
            request_headers.get("idempotency-key"),
            request_headers.get("content-type"),
            ", ".join(request_headers.getlist("content-encoding")) or None,
        )
        answer = await payment_answer(parts, headers, request.receive, _request_id(request))
        response = Response(answer.body, status_code=answer.status)
        response.raw_headers = answer.headers
        return response

    @app.get(
        "/v1/payments/{payment_id}",
        summary="A payment and its events",
        operation_id="getPayment",
        description="A payment's result and its events; a request refused 422 (or 403) is shown under "
        "the `payment_id` its answer gave, with status `rejected` (nothing charged).",
        response_model=PaymentOut | RefusedPaymentOut,
        responses=_problems("unauthorized", "not_found", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def get_payment(
        caller: Caller, payment_id: Annotated[str, Path(min_length=1, max_length=255)]
    ) -> Response:
        stored = await parts.records.payment(PaymentId(payment_id))
        if stored is None or not caller.may_see(stored.merchant_id):
            raise ApiProblem("not_found", f"No payment {mask_card_numbers(payment_id)!r} for this key.")
        return FastJSONResponse(stored.document)

    @app.get(
        "/v1/violations",
        summary="Contract violations, newest first",
        operation_id="listViolations",
        response_model=ViolationsOut,
        responses=_problems("unauthorized", "forbidden", "validation_failed", "service_unavailable"),
        dependencies=ADMIN_ONLY,
    )
    async def list_violations(
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
    ) -> Response:
        """Newest first, at most `limit`; `has_more` says that the window holds older ones
        (narrow `to` or raise `limit` to read them). `payment_id`, `request_id` and `merchant_id`
        keep the violations that name them (an id nothing names: an empty list)."""
        if contract_id:
            _check_contract(contract_id)
        start, end = bounds(since, until)
        # One more than asked for: whether the list was cut is then known, not guessed from its length.
        query = ViolationQuery(
            contract_id or None,
            start,
            end,
            limit + 1,
            payment_id=payment_id or None,
            request_id=request_id or None,
            merchant_id=merchant_id or None,
        )
        found = await parts.records.violations(query)
        listed = [violation_to_json(v) for v in found[:limit]]
        return FastJSONResponse({"violations": listed, "has_more": len(found) > limit})

    analytics_problems = _problems("unauthorized", "forbidden", "validation_failed", "service_unavailable")

    for table in ANALYTICS_TABLES:
        _add_analytics_route(app, parts, table, analytics_problems)

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
            ReportFormat | UnbuiltFormat | None,
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
            parts.writer, parts.settings.report_renderer, window, output, parts.admin_reads
        )

    @app.get(
        "/problems/{code}",
        summary="What a problem type means",
        operation_id="getProblemType",
        response_class=HTMLResponse,
        responses={
            200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The page"},
            **_problems("not_found", "validation_failed"),
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
        responses=_problems("service_unavailable"),
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


#: How far a complaint's ``received_at`` may lie ahead of the service's clock (the merchant's
#: support desk keeps its own).
FUTURE_SLACK = timedelta(minutes=5)


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


def _install_complaint_routes(app: FastAPI, parts: Parts) -> None:
    """``POST /v1/complaints``, ``GET /v1/complaints`` and ``GET /v1/complaints/{complaint_id}``."""
    register_url_convertor("reference", _ReferenceConvertor())  # Starlette's table is global
    gate = complaint_limits.ComplaintGate(parts.clock.monotonic)

    @app.post(
        "/v1/complaints",
        summary="File a merchant complaint",
        operation_id="createComplaint",
        status_code=201,
        openapi_extra=COMPLAINT_REQUEST_BODY,
        response_model=ComplaintOut,
        responses={
            201: {
                "description": "Filed",
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
            **_problems(
                "invalid_request",
                "unauthorized",
                "forbidden",
                "complaint_exists",
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
        refused (429, `Retry-After`) and not stored; one filed before is answered as before. While
        the event writer is behind, or once the disk stopped it, a new complaint is refused (503,
        `Retry-After`) and not stored: file it again with the same complaint_id."""
        complaint = _complaint(caller, body, parts)
        received_given = body.received_at is not None
        # A writer behind or stopped takes no new complaint: 503 before anything is counted.
        first = await store_gate.admit_complaint(parts.records, complaint, parts.desk.shares)
        if first is None:
            merchant = parts.merchants[complaint.merchant_id]
            taken = await complaint_limits.admit(gate, parts.records, merchant, complaint)
            first = complaint  # not stored, until it is
            try:
                complaint = await _check_payment(parts, complaint, received_given=received_given)
                await _check_request(parts, complaint)
                first = await store_gate.record_complaint(parts.records, parts.desk.shares, complaint)
            except StoreError:  # its batch was rolled back: nothing of it is kept
                raise store_gate.unstored_complaint(parts.records) from None
            finally:
                if taken and first is not None:  # only a complaint stored counts against the limits
                    gate.give_back(merchant.merchant_id)
            if first is None:
                return FastJSONResponse(complaint_json(complaint), status_code=201)
        if not _same_complaint(first, complaint, received_given=received_given):
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
        responses=_problems("unauthorized", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def list_complaints(
        caller: Caller,
        merchant_id: Annotated[
            str | None,
            Query(
                max_length=255,
                description="Only this merchant's (an admin key; empty: every merchant's). A merchant "
                "key lists its own only (another merchant's: an empty list).",
            ),
        ] = None,
        since: Annotated[
            IsoMoment | None,
            Query(alias="from", description="Received at or after (ISO 8601; naive is UTC)."),
        ] = None,
        until: Annotated[
            IsoMoment | None, Query(alias="to", description="Received before (ISO 8601; naive is UTC).")
        ] = None,
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
        listed, more = await complaint_page(parts.records, caller, query, cursor)
        return FastJSONResponse(
            {"complaints": [complaint_json(complaint) for complaint in listed], "has_more": more}
        )

    @app.get(
        "/v1/complaints/{complaint_id:reference}",
        summary="A complaint and the contract it maps to",
        operation_id="getComplaint",
        response_model=ComplaintReadOut,
        responses=_problems("unauthorized", "not_found", "validation_failed", "service_unavailable"),
        dependencies=KEYED_READS,
    )
    async def get_complaint(
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
        mapped = await mapping(parts.records, parts.settings.complaint_mapper, complaint)
        return FastJSONResponse(complaint_json(complaint) | mapped)


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
#: not masked. A ``complaint_id`` is the merchant's own reference, kept masked (see _complaint).
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


def _same_complaint(first: Complaint, again: Complaint, *, received_given: bool) -> bool:
    """Whether ``again`` files ``first`` once more (a retry). Its ``received_at`` counts only
    when the body gave one: otherwise it is the time of the retry."""
    received = replace(again, received_at=first.received_at) if not received_given else again
    return received == first


def _complaint(caller: Principal, body: ComplaintIn, parts: Parts) -> Complaint:
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
        _check_contract(body.contract_id)
    now = parts.clock.now().astimezone(UTC)
    received = _received_at(body.received_at) or now
    if received > now + FUTURE_SLACK:
        # A complaint cannot be received later than it is filed; kept, it would stay out of every
        # report until its time came. Clocks may differ by a little: that much is let through.
        raise _received_at_problem(
            "in_the_future", "ahead of the service's clock", f"after now ({now.isoformat()})"
        )
    try:
        return Complaint(
            # A reference that holds what looks like a card number is kept masked, not refused.
            complaint_id=new_id("cmp")
            if body.complaint_id is None
            else parts.desk.keeper.identifier(body.complaint_id),
            merchant_id=MerchantId(merchant_id),
            received_at=received,
            category=body.category,
            # Free text from a merchant's support desk: a card number in it is kept masked only.
            description=mask_card_numbers(body.description),
            payment_id=None if body.payment_id is None else PaymentId(body.payment_id),
            request_id=None if body.request_id is None else RequestId(body.request_id),
            contract_id=None if body.contract_id is None else ContractId(body.contract_id),
        )
    except DomainError as exc:
        raise ApiProblem(
            "validation_failed",
            "The complaint is not well formed.",
            errors=[FieldError(exc.field, "invalid", exc.reason)],
        ) from None


def _check_contract(contract_id: str) -> None:
    """A 422 ``unknown_contract`` for an id the registry lacks: a typo names no contract, in a
    complaint as in a query (where it would otherwise read as "no violations")."""
    if contract_id not in default_registry():
        raise ApiProblem(
            "validation_failed",
            "contract_id names no known contract.",
            errors=[FieldError("contract_id", "unknown_contract", f"{contract_id!r} is not in the registry")],
        )


async def _check_payment(parts: Parts, complaint: Complaint, *, received_given: bool) -> Complaint:
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


async def _check_request(parts: Parts, complaint: Complaint) -> None:
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


__all__ = ["create_app", "problem_document"]
