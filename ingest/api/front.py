"""The app's outermost layer: an id for every request, the body limit, and the payment route.

:class:`Front` gives every HTTP request its id (``scope["state"]["request_id"]``, response header
``Request-Id``) and, with telemetry on, its server span (named after the route, continuing a
``traceparent`` header's trace); it refuses a declared body over the limit before anything reads
it, and answers ``HEAD`` as ``GET`` without the body.

``POST /v1/payments`` is answered here, straight from ASGI, by :func:`payment_answer`. It is the
route merchants call for every payment, and FastAPI's handling of a request (routing, dependency
solving, the ``Request`` and ``Response`` objects, the body stream) cost about as much as
orchestrating the payment itself; for the same reason the app's class
(:class:`~ingest.api.application.PayorchAPI`) sends a payment here before FastAPI's own
middleware stack. The FastAPI route of the same path stays: it describes the
operation in the OpenAPI document, answers 405 for other methods, and serves the same
:func:`payment_answer` should a request reach it (an app mounted without the front).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Iterable
from types import CoroutineType
from typing import Any, NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.config import MerchantConfig
from engine.stepping import first_step
from engine.types import RequestId
from ingest.api.admin_reads import HEAD_KEY
from ingest.api.auth import Principal
from ingest.api.json_bodies import JSON_ROUTES, json_labelled, unreadable_body
from ingest.api.metrics import HTTP_METHODS
from ingest.api.parts import Parts
from ingest.api.payments import CUT_SHORT, new_id
from ingest.api.problems import ApiProblem, FieldError, problem_response
from ingest.observe.logs import SERVED_REQUEST
from ingest.observe.spans import URL_PATH
from ingest.parsing import KEY_RULE, idempotency_key_problem
from ingest.parsing.masking import mask_card_numbers

logger = logging.getLogger("payorch.api")

PAYMENTS_PATH = "/v1/payments"
#: Server span attributes (OpenTelemetry's HTTP semantic conventions).
HTTP_METHOD, HTTP_ROUTE, HTTP_STATUS = (
    "http.request.method",
    "http.route",
    "http.response.status_code",
)
HTTP_METHOD_ORIGINAL, OTHER_METHOD = "http.request.method_original", "_OTHER"
STATUS_KEY = "payorch.status"  # in scope["state"]: the status answered
REQUEST_ID = SERVED_REQUEST  # the server span's attribute: the id the answer gives (and log lines)


class _Route(NamedTuple):
    path: str


_PAYMENTS_ROUTE = _Route(PAYMENTS_PATH)


def route_template(route: object) -> str | None:
    """The path template of the route that took a request, as OpenAPI writes it: its parameters
    without their convertor (``{complaint_id:reference}`` is ``{complaint_id}``); ``None`` when
    no route did."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    template = _TEMPLATES.get(path)
    if template is None:
        template = _CONVERTOR.sub(r"{\1}", path)
        if len(_TEMPLATES) < _MAX_TEMPLATES:
            _TEMPLATES[path] = template
    return template


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
#: Each route path's template, made once: every request asks (its span's name, its metric's label),
#: and the substitution cost 1.75 µs a call, twice a payment. The paths are the app's routes',
#: few and fixed; the bound only keeps an app that made routes on the fly from growing it.
_TEMPLATES: dict[str, str] = {}
_MAX_TEMPLATES = 1024


def route_path(scope: Scope) -> str:
    """The path the app's routes match: the request's path without the prefix a reverse proxy serves
    the API under (``root_path``), which uvicorn puts in front of it (``/payorch/v1/payments``), as
    Starlette's router takes it off. ``scope["path"]`` made every request behind such a proxy miss
    the payment route here (a repeated ``Idempotency-Key`` was not refused) and the public ones."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


class PaymentHeaders(NamedTuple):
    """The request headers ``POST /v1/payments`` reads (``None`` when absent)."""

    authorization: str | None
    idempotency_key: str | None
    content_type: str | None
    #: Repeated lines joined with ", ": a list header is one list however it is split (RFC 9110
    #: section 5.3), and the parser must see every coding to refuse the body.
    content_encoding: str | None


class Answer(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]  # content-type and content-length included
    body: bytes


async def payment_answer(
    parts: Parts, headers: PaymentHeaders, receive: Receive, request_id: RequestId, query: bytes = b""
) -> Answer:
    """The answer to one ``POST /v1/payments``; raises :class:`ApiProblem` for a refusal.
    ``query`` is its query string, which refuses it when it holds a parameter (422).

    Orchestrated outcomes (succeeded, partially succeeded, failed) are 200 with a CompositeResult;
    a refusal charges nothing.
    """
    caller = known(parts.keys.authenticate(headers.authorization), headers.authorization)
    merchant = paying_merchant(parts, caller)
    if parts.draining:
        raise ApiProblem("service_unavailable", "The service is shutting down.", headers={"Retry-After": "1"})
    key = headers.idempotency_key
    if key is not None:
        check_idempotency_key(key)
    settings = parts.settings
    body = await read_body(receive, settings.max_body_bytes, settings.body_timeout_s)
    answer = await parts.desk.take(
        merchant,
        body,
        headers.content_type,
        key,
        request_id,
        content_encoding=headers.content_encoding,
        query=query,
    )
    response = answer.response
    raw = [
        (b"content-type", response.media_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
    ]
    if answer.replayed:
        raw.append((b"idempotent-replayed", b"true"))
    if answer.server_timing is not None:
        raw.append((b"server-timing", answer.server_timing.encode()))
    if answer.retry_after is not None:
        raw.append((b"retry-after", answer.retry_after.encode()))
    return Answer(response.status_code, raw, response.body)


def known(found: Principal | None, authorization: str | None) -> Principal:
    """The caller, or 401 with a ``WWW-Authenticate`` challenge and what was wrong with
    ``authorization`` (the header as sent; the key itself is never repeated)."""
    if found is None:
        raise ApiProblem(
            "unauthorized",
            _unknown_because(authorization),
            headers={"WWW-Authenticate": 'Bearer realm="payorch"'},
        )
    return found


def _unknown_because(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        return "No API key was sent. Send Authorization: Bearer <API key>."
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return "Authorization must use the Bearer scheme: Authorization: Bearer <API key>."
    if not key.strip():
        return "Authorization names no API key after Bearer."
    return "The API key is not one of this service's keys."


def paying_merchant(parts: Parts, caller: Principal) -> MerchantConfig:
    if caller.merchant_id is None:
        raise ApiProblem("forbidden", "Payments are made with a merchant's key, not an admin key.")
    return parts.merchants[caller.merchant_id]


def check_idempotency_key(key: str) -> None:
    """400 for a header that is no idempotency key, by the parser's rule for the body's key."""
    fault = idempotency_key_problem(_as_sent(key))
    if fault is not None:
        raise ApiProblem(
            "invalid_request",
            f"Idempotency-Key must be {KEY_RULE}.",
            errors=[FieldError("Idempotency-Key", "invalid_idempotency_key", fault)],
        )


def _as_sent(value: str) -> str:
    """A header's value as its client wrote it, for what the service tells it: the server reads a
    header's bytes as Latin-1 (one character each), and clients send UTF-8, whose ``é`` was told as
    ``Ã``; bytes that are not UTF-8 stay as read."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The whole request body: 413 once it passes ``limit`` bytes (a chunked body has no declared
    length), 408 when it has not all arrived within ``timeout_s``.

    A body that has already arrived (almost every one) is taken without a deadline: its
    ``receive`` answers without waiting, and no time can pass while nothing waits. The deadline
    starts at the first ``receive`` that has to wait.
    """
    chunks: list[bytes] = []
    seen = 0
    deadline: float | None = None
    while True:
        pending: Awaitable[Message] = receive()
        step: Any  # the message when answered, else what to await for it
        answered, step = first_step(pending) if type(pending) is CoroutineType else (False, pending)
        if answered:
            message: Message = step
        else:
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await step
            except TimeoutError:
                detail = f"The body did not arrive within {timeout_s:.0f} s."
                raise ApiProblem("request_timeout", detail) from None
        kind = message["type"]
        if kind == "http.disconnect":
            raise ApiProblem("invalid_request", "The client left before sending the whole body.")
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise ApiProblem("payload_too_large", f"The body is over the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def declared_length_problem(value: bytes, limit: int) -> ApiProblem | None:
    """The problem with a ``Content-Length`` header, if any: not a number (400), over the limit (413)."""
    if not value.isdigit():
        return ApiProblem("invalid_request", "Content-Length is not a number.")
    if int(value) > limit:
        return ApiProblem("payload_too_large", f"The body is {int(value)} bytes; the limit is {limit}.")
    return None


def transfer_coding_problem(value: bytes) -> ApiProblem | None:
    """501 for a ``Transfer-Encoding`` naming a coding besides chunked (RFC 9112 section 6.1):
    the HTTP parser undoes only chunked, and the app would read a gzipped body as it came."""
    for coding in value.split(b","):
        if coding.strip().lower() not in {b"chunked", b""}:
            return ApiProblem(
                "transfer_coding_not_supported", "Transfer-Encoding other than chunked is not supported."
            )
    return None


def check_headers(headers: Iterable[tuple[bytes, bytes]], limit: int, *, public: bool, bodied: bool) -> None:
    """Raise the problem with a request's headers, if any: a ``Content-Length`` or
    ``Transfer-Encoding`` refused, ``Authorization`` (unless the route is ``public``) or a body's
    ``Content-Type`` (when the request is ``bodied``) repeated with another value."""
    credential: bytes | None = None
    declared: bytes | None = None  # the body's Content-Type
    for name, value in headers:
        if name == b"content-length":
            problem = declared_length_problem(value, limit)
            if problem is not None:
                raise problem
        elif name == b"transfer-encoding":
            problem = transfer_coding_problem(value)
            if problem is not None:
                raise problem
        elif name == b"authorization" and not public:
            if credential is None:
                credential = value
            elif credential != value:
                raise _conflicting(name)
        elif name == b"content-type" and bodied:
            if declared is None:
                declared = value
            elif declared != value:
                raise _conflicting(name)


class Front:
    """ASGI middleware: request ids and the body limit for every request; ``POST /v1/payments``."""

    def __init__(self, app: ASGIApp, parts: Parts) -> None:
        self.app = app
        self.parts = parts
        self.limit = parts.settings.max_body_bytes
        self.root_path = parts.settings.root_path  # a proxy's prefix: problem type links name it
        self.spans = parts.telemetry.spans if parts.telemetry is not None else None
        self.metrics = parts.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = RequestId(new_id("req"))
        scope.setdefault("state", {})["request_id"] = request_id
        spans = self.spans
        if spans is None:
            try:
                await self._route(scope, receive, send, request_id)
            finally:
                self._count(scope, route_template(scope.get("route")))
            return
        method: str = scope["method"]
        # The request id every answer gives (body and Request-Id) finds the trace: an answer that
        # records no event (401, 404, 409, a replay) has no log line to lead there.
        attributes: dict[str, str | int] = {
            HTTP_METHOD: method,
            URL_PATH: scope["path"],
            REQUEST_ID: request_id,
        }
        if method not in HTTP_METHODS:
            # OpenTelemetry's HTTP conventions: a method the service does not know is ``_OTHER``
            # and names its span ``HTTP``; the client's token is kept in an attribute only, so
            # that span names stay few whatever methods clients send.
            attributes[HTTP_METHOD] = OTHER_METHOD
            attributes[HTTP_METHOD_ORIGINAL] = mask_card_numbers(method)  # a token can be any digits
            method = "HTTP"
        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                if traceparent is not None:
                    # Two headers: which one the caller meant is unknown; the trace restarts
                    # (W3C Trace Context's test suite, test_traceparent_duplicated).
                    traceparent = ""
                    break
                traceparent = value.decode("latin-1")
        # The span holds the request id for the log lines of records logged under it
        # (ingest.observe.logs.served_request), rather than a context variable of its own.
        record, span_token = spans.start_server(method, attributes, traceparent)
        try:
            await self._route(scope, receive, send, request_id)
        except BaseException:
            record.failed = True
            raise
        finally:
            path = route_template(scope.get("route"))
            if path is not None:
                record._name = f"{method} {path}"
                attributes[HTTP_ROUTE] = path
            status = scope["state"].get(STATUS_KEY)
            if isinstance(status, int):
                attributes[HTTP_STATUS] = status
                record.failed = record.failed or status >= 500
            spans.end_server(record, span_token)
            self._count(scope, path)

    def _count(self, scope: Scope, path: str | None) -> None:
        status = scope["state"].get(STATUS_KEY)
        self.metrics.count_response(
            scope["method"],
            path,
            status if isinstance(status, int) else None,
        )

    async def _route(self, scope: Scope, receive: Receive, send: Send, request_id: RequestId) -> None:
        if route_path(scope) == PAYMENTS_PATH and scope["method"] == "POST":
            scope["route"] = _PAYMENTS_ROUTE
            await self._payment(scope, receive, send, request_id)
            return
        header = (b"request-id", request_id.encode())
        state = scope["state"]
        head = scope["method"] == "HEAD"
        outer = scope
        if head:
            # HEAD is GET without the body (RFC 9110 section 9.3.2), on every GET route.
            scope = {**scope, "method": "GET"}
            state[HEAD_KEY] = True

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
                state[STATUS_KEY] = message["status"]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            public = route_path(scope) in _PUBLIC_PATHS  # no key read there: no key to doubt
            check_headers(scope["headers"], self.limit, public=public, bodied=scope["method"] != "GET")
            if scope["method"] != "GET":
                # The body is read here, under the same limit and deadline as a payment's:
                # FastAPI's own reading would turn a 413 into a 400 and wait for ever.
                timeout_s = self.parts.settings.body_timeout_s
                body = await read_body(receive, self.limit, timeout_s)
                if (scope["method"], route_path(scope)) in JSON_ROUTES:
                    self._check_json_body(scope["headers"], body)
                    labelled = json_labelled(scope["headers"], body)
                    if labelled is not None:
                        scope = {**scope, "headers": labelled}
                receive = _replaying(body, receive)
        except ApiProblem as problem:
            answer = _problem_answer(problem, request_id, self.root_path)
            state[STATUS_KEY] = answer.status
            await _send(send, answer, request_id, head=head)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, in the request's context: Starlette's last handler runs outside this
            # middleware, where the request's id and span are gone (its line had neither, its 500
            # had no Request-Id and counted as code "none"), and then hands the error on to the
            # server, which logs it a second time.
            path = mask_card_numbers(outer["path"])
            logger.exception("unhandled error on %s %s", outer["method"], path)
            if STATUS_KEY in state:
                raise  # the answer had begun: only closing the connection can end it
            fault = ApiProblem("internal_error", "Something went wrong on our side; nothing is shown here.")
            answer = _problem_answer(fault, request_id, self.root_path)
            state[STATUS_KEY] = answer.status
            await _send(send, answer, request_id, head=head)
        finally:
            route = scope.get("route") or _plain_route(scope)
            if route is not None:
                # The route the GET copy took names the HEAD's span and metric label too.
                outer["route"] = route

    def _check_json_body(self, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> None:
        """Raise the 422 for a body FastAPI cannot read as JSON (:mod:`ingest.api.json_bodies`),
        once the key is known (a 401 first, as for every other refusal of the route)."""
        authorization: str | None = None
        coding: str | None = None
        content_type: str | None = None
        for name, value in headers:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-encoding":  # a list header: every line counts
                coding = value.decode("latin-1") if coding is None else f"{coding}, {value.decode('latin-1')}"
        problem = unreadable_body(body, coding, content_type)
        if problem is not None:
            known(self.parts.keys.authenticate(authorization), authorization)
            raise problem

    async def _payment(self, scope: Scope, receive: Receive, send: Send, request_id: RequestId) -> None:
        authorization = idempotency_key = content_type = content_encoding = None
        length: bytes | None = None
        twice: bytes | None = None
        coded: ApiProblem | None = None  # a transfer coding the parser did not undo
        for name, value in scope["headers"]:
            # The first of a repeated header counts, as for Starlette's ``Headers.get``; a key, a
            # credential or a content type repeated with another value is refused (below).
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
                elif authorization != value.decode("latin-1"):
                    twice = name
            elif name == b"idempotency-key":
                if idempotency_key is None:
                    idempotency_key = value.decode("latin-1")
                elif idempotency_key != value.decode("latin-1"):
                    twice = name
            elif name == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1")
                elif content_type != value.decode("latin-1"):
                    twice = name
            elif name == b"content-encoding":  # a list header: every line counts
                coding = value.decode("latin-1")
                content_encoding = coding if content_encoding is None else f"{content_encoding}, {coding}"
            elif name == b"content-length" and length is None:
                length = value
            elif name == b"transfer-encoding" and coded is None:
                coded = transfer_coding_problem(value)
        try:
            if twice is not None:
                raise _conflicting(twice)
            if coded is not None:
                raise coded
            problem = None if length is None else declared_length_problem(length, self.limit)
            if problem is not None:
                raise problem
            headers = PaymentHeaders(authorization, idempotency_key, content_type, content_encoding)
            answer = await payment_answer(
                self.parts, headers, receive, request_id, scope.get("query_string", b"")
            )
        except asyncio.CancelledError:
            # The server is stopping without waiting for this payment (a second Ctrl-C): say so
            # as a problem, not the server's bare 500, before the cancellation goes on.
            scope["state"][STATUS_KEY] = 503
            with contextlib.suppress(Exception):
                await _send(send, _cut_short(request_id, self.root_path), request_id)
            raise
        except ApiProblem as problem:
            answer = _problem_answer(problem, request_id, self.root_path)
        except Exception:
            logger.exception("unhandled error on POST %s", PAYMENTS_PATH)
            fault = ApiProblem("internal_error", "Something went wrong on our side; nothing is shown here.")
            answer = _problem_answer(fault, request_id, self.root_path)
        scope["state"][STATUS_KEY] = answer.status
        await _send(send, answer, request_id)


def _cut_short(request_id: RequestId, root_path: str) -> Answer:
    cut = CUT_SHORT.get()
    detail = "The service stopped before this payment's answer was ready; it may have been charged."
    extra: dict[str, object] = {}
    if cut is not None:
        extra["payment_id"] = cut.payment_id
        detail += (
            f" It is payment {cut.payment_id}: GET {root_path}/v1/payments/{cut.payment_id} shows its "
            "outcome once the service is back (a payment it does not know was never charged)."
        )
    if cut is None or cut.keyed:
        detail += " A retry with the same Idempotency-Key then gets the outcome, and charges nothing more."
    else:
        detail += " Look it up before paying again: this request had no Idempotency-Key."
    problem = ApiProblem("payment_interrupted", detail, headers={"Retry-After": "5"}, extra=extra)
    return _problem_answer(problem, request_id, root_path)


#: Routes anyone may call: they read no key, so a repeated Authorization header means nothing there.
_PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"})


def _plain_route(scope: Scope) -> object | None:
    """The plain Starlette route that took a request (FastAPI's ``/docs``, ``/openapi.json``),
    which, unlike FastAPI's own routes, leaves only its endpoint in the scope; ``None`` if none."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    routes: list[object] = getattr(scope.get("router"), "routes", [])
    return next((route for route in routes if getattr(route, "endpoint", None) is endpoint), None)


def _conflicting(name: bytes) -> ApiProblem:
    shown = name.decode("latin-1").title()
    return ApiProblem(
        "invalid_request",
        f"{shown} is given more than once, with different values; send it once.",
        errors=[FieldError(shown, "conflicting_headers", "is repeated with different values")],
    )


def _problem_answer(problem: ApiProblem, request_id: str, root_path: str) -> Answer:
    response = problem_response(problem, request_id, root_path)
    return Answer(response.status_code, response.raw_headers, bytes(response.body))


async def _send(send: Send, answer: Answer, request_id: str, *, head: bool = False) -> None:
    """Send ``answer``; for ``HEAD``, its headers (``Content-Length`` included) without the body."""
    headers = [*answer.headers, (b"request-id", request_id.encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` (already read) as one message, then waits on the client."""
    given = False

    async def receive_replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_replayed
