"""The OpenAPI document, finished with what FastAPI cannot read off the routes.

- Errors are ``application/problem+json`` only: FastAPI files a response model under the route's
  own media type (``application/json``), which no error is ever sent as.
- A 400 on every route that reads an API key: ``Authorization`` given twice with different values.
- The refusals of the front door, which come before any route is chosen, on every route: 400
  (bytes the HTTP parser cannot read), 408 (the request head, or a body, not sent in time), 413 (a
  body, or its ``Content-Length``, over the limit), 414 (a request target over 32 KiB), 431 (a
  request head over 32 KiB; ``payorch.http_guard``), 501 (a transfer coding besides chunked) and
  505 (an HTTP version other than 1.0 and 1.1).
- The headers the service sends: ``Request-Id`` on every answer, ``WWW-Authenticate`` on a 401,
  ``Retry-After`` where a retry is invited (409, 429 and 503), on a payment's answer ``Server-Timing``,
  and on the answers an idempotency key keeps (a payment's 200 and 500) ``Idempotent-Replayed``.
- ``security: []`` on the public operations (``/healthz``, ``/readyz``, ``/metrics``, the problem
  pages), which read no key: an operation without ``security`` says nothing, and linters (Redocly's
  ``security-defined``) and readers cannot tell a public route from one whose key is undocumented.
- ``POST /v1/payments`` reads its headers by hand (see ingest.api.front), so its
  ``Idempotency-Key`` parameter is declared here.

The routes name the problems each may answer with :func:`problem_responses`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.context import MAX_IDEMPOTENCY_KEY_LENGTH
from ingest.api.problems import PROBLEMS
from ingest.api.schemas import ProblemOut
from ingest.parsing import KEY_PATTERN, KEY_RULE

PROBLEM_MEDIA_TYPE = "application/problem+json"
_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemOut"}
#: Answered whatever the path and method (ingest.api.front, payorch.http_guard).
FRONT_DOOR_PROBLEMS = (
    "invalid_request",
    "request_timeout",
    "payload_too_large",
    "uri_too_long",
    "headers_too_large",
    "transfer_coding_not_supported",
    "http_version_not_supported",
)


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


REQUEST_ID = _header("This request's id, also in the problem document and in every log line.")
WWW_AUTHENTICATE = _header("The scheme to authenticate with: `Bearer`.")
RETRY_AFTER = _header("Seconds to wait before retrying.", pattern="^[0-9]+$")
IDEMPOTENT_REPLAYED = _header(
    "`true` when this is the stored answer to an earlier request with the same key.", enum=["true"]
)
SERVER_TIMING = _header(
    "`orchestration`, `processor` and `commit` (the wait for the payment's records to be durable) "
    "durations in milliseconds (W3C Server Timing)."
)

IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes the request safe to repeat (Stripe's semantics): per merchant, kept at "
    "least 24 hours; a repeat with the same body replays the stored answer, with another body it "
    f"is 422. A key is {KEY_RULE}.",
    # Printable ASCII, not all spaces (ingest.parsing.KEY_RULE).
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
        "pattern": KEY_PATTERN,
    },
}


def problem_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
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


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's), with problem media types, headers and parameters filled in."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            payment = operation.get("operationId") == "createPayment"
            operation.setdefault("security", [])  # no key read: public, and said so
            responses = operation.setdefault("responses", {})
            if operation.get("security") and "400" not in responses:
                # Authorization repeated with different values (ingest.api.front), on any route
                # that reads a key.
                responses["400"] = {"description": "The request is malformed"}
            for code in FRONT_DOOR_PROBLEMS:
                kind = PROBLEMS[code]
                responses.setdefault(str(kind.status), {"description": kind.title})
            for status, response in responses.items():
                _finish_response(int(status), response, payment=payment)
    return document


def _finish_response(status: int, response: dict[str, Any], *, payment: bool) -> None:
    headers: dict[str, Any] = response.setdefault("headers", {})
    headers["Request-Id"] = REQUEST_ID
    if status >= 400:
        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}
    if status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    if status in (429, 503) or (payment and status == 409):
        headers["Retry-After"] = RETRY_AFTER
    if payment and status < 400:
        headers["Server-Timing"] = SERVER_TIMING
    if payment and (status < 400 or status == 500):
        # A key keeps a payment's 200 and its 500 (a fault after money may have moved).
        headers["Idempotent-Replayed"] = IDEMPOTENT_REPLAYED


def finished_openapi(make: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that finishes FastAPI's document once and then serves it as it is."""
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not done:
            done.append(finish(make()))
        return done[0]

    return openapi
