"""``create_app(settings)``: the API process's composition root.

Everything the process needs is built here, once per app and nothing at import: the records, the
engine with its processors (each wrapped for timing), the idempotency store, the metrics and the
payment desk. Routes are thin: authenticate, read, call, answer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.complaints import Complaint
from engine.config import MerchantConfig, PlatformConfig
from engine.contracts import default_registry
from engine.errors import DomainError
from engine.ledger import Ledger
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from engine.types import ContractId, MerchantId, PaymentId, RequestId
from ingest.api.auth import ApiKeys, Principal
from ingest.api.encoding import FastJSONResponse
from ingest.api.idempotency import MemoryIdempotencyStore
from ingest.api.metrics import CONTENT_TYPE, ApiMetrics
from ingest.api.payments import PaymentDesk, new_id
from ingest.api.problems import PROBLEMS, ApiProblem, FieldError, problem_document, problem_response
from ingest.api.schemas import (
    PAYMENT_REQUEST_BODY,
    ComplaintIn,
    ComplaintOut,
    CompositeResultOut,
    HealthOut,
    PaymentOut,
    ProblemOut,
    ViolationsOut,
)
from ingest.api.settings import Settings
from ingest.api.timing import TimedProcessor
from ingest.codec.result_json import utc_timestamp, violation_to_json
from ingest.engine_assembly import Engine, build_engine
from ingest.ledger_journal import FILE_NAME, FileLedgerJournal
from ingest.records import MemoryRecords, Records, ViolationQuery

logger = logging.getLogger("payorch.api")

IDEMPOTENCY_KEY_MAX = 255


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


@dataclass(slots=True)
class Parts:
    """What the routes of one app share."""

    settings: Settings
    config: PlatformConfig
    keys: ApiKeys
    records: Records
    engine: Engine
    desk: PaymentDesk
    metrics: ApiMetrics
    clock: SystemClock
    journal: FileLedgerJournal | None
    merchants: dict[str, MerchantConfig]
    draining: bool = False


def build_parts(settings: Settings) -> Parts:
    """Wire the process; raises a DomainError or IngestError for a config it cannot run."""
    config = settings.config
    clock = SystemClock()
    records = settings.records if settings.records is not None else MemoryRecords()
    journal = FileLedgerJournal(settings.data_dir / FILE_NAME) if settings.ledger_journal else None
    engine = build_engine(
        config,
        sink=records,
        clock=clock,
        sleeper=AsyncioSleeper(),
        random=SeededRandom(secrets.randbits(64)),
        environ=settings.environ,
        ledger=Ledger(journal),
        wrap=TimedProcessor,
    )
    metrics = ApiMetrics()
    idempotency = MemoryIdempotencyStore(settings.idempotency_ttl_s, clock.monotonic)
    desk = PaymentDesk(engine.service, records, idempotency, metrics, clock)
    return Parts(
        settings=settings,
        config=config,
        keys=ApiKeys(config),
        records=records,
        engine=engine,
        desk=desk,
        metrics=metrics,
        clock=clock,
        journal=journal,
        merchants={merchant.merchant_id: merchant for merchant in config.merchants},
    )


class RequestIdMiddleware:
    """Gives every HTTP request an id (``request.state.request_id``, header ``Request-Id``) and
    refuses a declared body over the limit before it is read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await _send_problem(
                        send_with_id, "invalid_request", "Content-Length is not a number.", request_id
                    )
                    return
                if int(value) > self.max_body_bytes:
                    detail = f"The body is {int(value)} bytes; the limit is {self.max_body_bytes}."
                    await _send_problem(send_with_id, "payload_too_large", detail, request_id)
                    return
        await self.app(scope, _limited(receive, self.max_body_bytes), send_with_id)


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises 413 once a (chunked) body passes the limit."""
    seen = 0

    async def receive_limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiProblem("payload_too_large", f"The body is over the limit of {limit} bytes.")
        return message

    return receive_limited


async def _send_problem(send: Send, code: str, detail: str, request_id: str) -> None:
    response = problem_response(ApiProblem(code, detail), request_id)
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


def create_app(settings: Settings) -> FastAPI:
    """The merchant API of PRODUCT.md section 4 over ``settings``."""
    parts = build_parts(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # What exists now (framework, config, currency tables) lives as long as the process: moved
        # out of the collector's sight, full collections scan only what payments create.
        gc.freeze()
        # A payment allocates a few hundred short-lived objects; the default young-generation
        # threshold (700) would run several collections per request. Fewer, larger young
        # collections cost less in all and bound the pauses a request can meet.
        gc.set_threshold(*settings.gc_thresholds)
        yield
        parts.draining = True
        left = await parts.desk.drain(settings.shutdown_grace_s)
        if left:
            logger.error(
                "shutdown: %d payments still in flight after %.0f s", left, settings.shutdown_grace_s
            )
        await parts.engine.aclose()
        if parts.journal is not None:
            parts.journal.close()

    app = FastAPI(
        title="payorch",
        version="0.1.0",
        description="Payment orchestration: split payments across methods and processors, with "
        "retries, fallback and compensation. Errors are application/problem+json (RFC 9457).",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.parts = parts
    _install_error_handlers(app)
    _install_routes(app, parts)
    app.add_middleware(RequestIdMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


def _request_id(request: Request) -> RequestId:
    return RequestId(getattr(request.state, "request_id", None) or new_id("req"))


def _install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)  # noqa: S101 - registered for ApiProblem only
        return problem_response(exc, _request_id(request))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        detail = {404: "No route matches this path.", 405: "This path does not take this method."}.get(
            exc.status_code, "The request could not be read."
        )
        headers = dict(exc.headers or {})
        return problem_response(ApiProblem(code, detail, headers=headers), _request_id(request))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = [
            FieldError(
                ".".join(str(part) for part in error.get("loc", ())[1:]) or "body",
                str(error.get("type", "invalid")),
                str(error.get("msg", "is invalid")),
            )
            for error in exc.errors()
        ]
        problem = ApiProblem("validation_failed", "The request does not fit this endpoint.", errors=errors)
        return problem_response(problem, _request_id(request))

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        problem = ApiProblem("internal_error", "Something went wrong on our side; nothing is shown here.")
        return problem_response(problem, _request_id(request))

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_crash)


_bearer = HTTPBearer(auto_error=False, description="An API key from the config file.")


async def _principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Principal:
    parts: Parts = request.app.state.parts
    found = None if credentials is None else parts.keys.authenticate(f"Bearer {credentials.credentials}")
    return _known(found)


def _known(found: Principal | None) -> Principal:
    if found is None:
        raise ApiProblem(
            "unauthorized",
            "Send Authorization: Bearer <API key>.",
            headers={"WWW-Authenticate": 'Bearer realm="payorch"'},
        )
    return found


Caller = Annotated[Principal, Depends(_principal)]


def _install_routes(app: FastAPI, parts: Parts) -> None:
    settings = parts.settings

    def merchant_of(caller: Principal) -> MerchantConfig:
        if caller.merchant_id is None:
            raise ApiProblem("forbidden", "Payments are made with a merchant's key, not an admin key.")
        return parts.merchants[caller.merchant_id]

    def admin_only(caller: Principal) -> None:
        if not caller.is_admin:
            raise ApiProblem("forbidden", "This endpoint needs an admin key.")

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
            "internal_error",
            "service_unavailable",
        ),
        # The key is read by hand on this route (FastAPI's dependency solving costs more than the
        # rest of the request's bookkeeping); the document still says it needs one.
        openapi_extra={**PAYMENT_REQUEST_BODY, "security": [{"HTTPBearer": []}]},
    )
    async def create_payment(request: Request) -> Response:
        """Orchestrate a payment. Any orchestrated outcome (succeeded, partially succeeded,
        failed) is 200 with a CompositeResult; 422 means nothing was charged."""
        merchant = merchant_of(_known(parts.keys.authenticate(request.headers.get("authorization"))))
        if parts.draining:
            raise ApiProblem(
                "service_unavailable", "The service is shutting down.", headers={"Retry-After": "1"}
            )
        key = request.headers.get("idempotency-key")
        if key is not None:
            _check_idempotency_key(key)
        body = await _read_body(request, settings.body_timeout_s)
        answer = await parts.desk.take(
            merchant, body, request.headers.get("content-type"), key, _request_id(request)
        )
        headers = {}
        if answer.replayed:
            headers["Idempotent-Replayed"] = "true"
        if answer.server_timing is not None:
            headers["Server-Timing"] = answer.server_timing
        return Response(
            answer.response.body,
            status_code=answer.response.status_code,
            media_type=answer.response.media_type,
            headers=headers,
        )

    @app.get(
        "/v1/payments/{payment_id}",
        summary="A payment and its events",
        operation_id="getPayment",
        response_model=PaymentOut,
        responses=_problems("unauthorized", "not_found", "validation_failed"),
    )
    async def get_payment(
        caller: Caller, payment_id: Annotated[str, Path(min_length=1, max_length=255)]
    ) -> Response:
        stored = await parts.records.payment(PaymentId(payment_id))
        if stored is None or not caller.may_see(stored.merchant_id):
            raise ApiProblem("not_found", f"No payment {payment_id!r} for this key.")
        return FastJSONResponse(stored.document)

    @app.post(
        "/v1/complaints",
        summary="File a merchant complaint",
        operation_id="createComplaint",
        status_code=201,
        response_model=ComplaintOut,
        responses={
            200: {"model": ComplaintOut, "description": "Already filed: the stored complaint"},
            **_problems(
                "invalid_request", "unauthorized", "forbidden", "payload_too_large", "validation_failed"
            ),
        },
    )
    async def create_complaint(caller: Caller, body: ComplaintIn) -> Response:
        """Store a complaint (PRODUCT.md section 9); the same complaint_id is stored once."""
        complaint = _complaint(caller, body, parts)
        first = await parts.records.record_complaint(complaint)
        stored = first or complaint
        return FastJSONResponse(_complaint_json(stored), status_code=201 if first is None else 200)

    @app.get(
        "/v1/violations",
        summary="Contract violations, newest first",
        operation_id="listViolations",
        response_model=ViolationsOut,
        responses=_problems("unauthorized", "forbidden", "validation_failed"),
    )
    async def list_violations(
        caller: Caller,
        contract_id: Annotated[str | None, Query(max_length=255)] = None,
        since: Annotated[datetime | None, Query(alias="from")] = None,
        until: Annotated[datetime | None, Query(alias="to")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        admin_only(caller)
        query = ViolationQuery(contract_id, _aware(since, "from"), _aware(until, "to"), limit)
        found = await parts.records.violations(query)
        return FastJSONResponse({"violations": [violation_to_json(v) for v in found]})

    @app.get("/healthz", summary="Liveness", response_model=HealthOut)
    async def healthz() -> Response:
        return FastJSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness: records open and not shutting down",
        response_model=HealthOut,
        responses=_problems("service_unavailable"),
    )
    async def readyz() -> Response:
        if parts.draining or not parts.records.healthy():
            raise ApiProblem("service_unavailable", "Not ready.", headers={"Retry-After": "1"})
        return FastJSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Metrics"}
        },
    )
    async def metrics() -> Response:
        return Response(parts.metrics.render(), media_type=CONTENT_TYPE)


def _check_idempotency_key(key: str) -> None:
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise ApiProblem(
            "invalid_request",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters.",
            errors=[
                FieldError(
                    "Idempotency-Key", "invalid_idempotency_key", "is empty, too long or not printable"
                )
            ],
        )


async def _read_body(request: Request, timeout_s: float) -> bytes:
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                chunks.append(chunk)
    except TimeoutError:
        raise ApiProblem("request_timeout", f"The body did not arrive within {timeout_s:.0f} s.") from None
    return b"".join(chunks)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _complaint(caller: Principal, body: ComplaintIn, parts: Parts) -> Complaint:
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
    if body.contract_id is not None and body.contract_id not in default_registry():
        raise ApiProblem(
            "validation_failed",
            "contract_id names no known contract.",
            errors=[
                FieldError("contract_id", "unknown_contract", f"{body.contract_id!r} is not in the registry")
            ],
        )
    received = _aware(body.received_at, "received_at") or parts.clock.now()
    try:
        return Complaint(
            complaint_id=body.complaint_id or new_id("cmp"),
            merchant_id=MerchantId(merchant_id),
            received_at=received.astimezone(UTC),
            category=body.category,
            description=body.description,
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


def _complaint_json(complaint: Complaint) -> dict[str, object]:
    return {
        "complaint_id": complaint.complaint_id,
        "merchant_id": complaint.merchant_id,
        "received_at": utc_timestamp("received_at", complaint.received_at),
        "category": complaint.category,
        "description": complaint.description,
        "payment_id": complaint.payment_id,
        "request_id": complaint.request_id,
        "contract_id": complaint.contract_id,
    }


__all__ = ["create_app", "problem_document"]
