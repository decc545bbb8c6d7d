"""Every error the API answers, as an RFC 9457 ``application/problem+json`` document.

One table (:data:`PROBLEMS`) names each problem's code, status, title and meaning; handlers raise
:class:`ApiProblem` with a code and a specific detail. The document carries ``type`` (the URI
``/problems/<code>`` below the prefix a reverse proxy serves the API under, whose page,
:func:`problem_page`, says what the problem means), ``title``,
``status``, ``detail``, ``code`` (Stripe-style, e.g. ``idempotency_key_in_use``), the
``request_id``, and ``errors: [{field, code, message}]`` where fields are at fault. No stack trace,
exception text or internal path ever reaches a client, and a card number a client sent where it is
echoed (a query value, a field's name) is masked, as everywhere (PRODUCT.md section 5).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ingest.api.encoding import ProblemResponse
from ingest.codec.result_json import JsonObject
from ingest.parsing.masking import mask_card_numbers


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    title: str
    #: What the problem means and what to do, for the page its ``type`` URI names.
    meaning: str


PROBLEMS: Mapping[str, ProblemKind] = MappingProxyType(
    {
        "invalid_request": ProblemKind(
            400,
            "The request is malformed",
            "The request itself cannot be read: an Idempotency-Key that is not 1 to 255 printable ASCII "
            "characters, Authorization, Idempotency-Key or Content-Type sent twice with different values, "
            "a bad Content-Length, a body cut short. `detail` (and `errors`, when given) say which.",
        ),
        "unauthorized": ProblemKind(
            401,
            "A valid API key is required",
            "No API key was sent, or it is not one of this service's. Send `Authorization: Bearer <key>`.",
        ),
        "forbidden": ProblemKind(
            403,
            "This API key may not do that",
            "The key is valid but not for this: an admin endpoint with a merchant key, a payment with "
            "an admin key, or a body naming another merchant.",
        ),
        "not_found": ProblemKind(
            404,
            "No such resource",
            "No route has this path, or no resource of this id is visible to this key (another "
            "merchant's payment is not found either).",
        ),
        "method_not_allowed": ProblemKind(
            405,
            "Method not allowed",
            "The path exists but does not take this method; `Allow` lists those it takes.",
        ),
        "request_timeout": ProblemKind(
            408,
            "The request did not arrive in time",
            "The request line and headers, or the body, were not sent in full within 10 seconds. "
            "Nothing was done; send it again.",
        ),
        "idempotency_key_in_use": ProblemKind(
            409,
            "A request with this idempotency key is in progress",
            "An earlier request with this Idempotency-Key is still running. Retry after `Retry-After` "
            "seconds: the repeat then gets that request's answer.",
        ),
        "complaint_exists": ProblemKind(
            409,
            "A complaint with this complaint_id was filed with other content",
            "The first complaint is kept as it was. File a new complaint under a new complaint_id.",
        ),
        "length_required": ProblemKind(
            411,
            "The request body's length is not given",
            "A body must be sent with `Content-Length` (or `Transfer-Encoding: chunked`): without "
            "either, HTTP reads the body as empty (RFC 9112 section 6.3) and what follows the headers "
            "as the next request. Nothing was done, and the connection is closed; send it again with "
            "its length (every HTTP library does when given the body, not a stream to read until it "
            "ends).",
        ),
        "payload_too_large": ProblemKind(
            413, "The request body is too large", "Bodies are limited to 64 KiB. Nothing was done."
        ),
        "unsupported_media_type": ProblemKind(
            415, "Unsupported content type", "Send JSON (`application/json`) or form fields."
        ),
        "range_not_satisfiable": ProblemKind(
            416,
            "The requested range is not within the file",
            "No range of the `Range` header begins within the file (of the documentation's assets); "
            "`Content-Range` gives its size. Ask for a range within it, or for the whole file.",
        ),
        "validation_failed": ProblemKind(
            422,
            "The request cannot be processed",
            "The request was read but cannot be used; nothing was charged. `errors` lists every issue "
            "(`field`, `code`, `message`, `severity`); fix those of severity `error` and send it again.",
        ),
        "idempotency_key_reused": ProblemKind(
            422,
            "This idempotency key was used with a different request body",
            "A key stands for one request. Use a new key for a new payment; the first request's "
            "answer is kept under the key.",
        ),
        "uri_too_long": ProblemKind(
            414,
            "The request target is too long",
            "The path and query of a request are limited to 32 KiB. Nothing was done; send what a long "
            "query says in fewer bytes.",
        ),
        "rate_limited": ProblemKind(
            429,
            "Too many requests of this merchant",
            "The merchant is past one of its limits, so that one merchant cannot take the service from "
            "the others. A payment: it already has as many payments running as the config's "
            "`merchants[].max_in_flight` allows (500 unless set); nothing was charged, and an "
            "Idempotency-Key sent is free again. A complaint: it filed complaints faster than "
            "`merchants[].complaint_limits` allows (600 a minute and 10,000 a day unless set); it was "
            "not stored. Retry after `Retry-After` seconds (a complaint with the same complaint_id), "
            "or send fewer at once.",
        ),
        "headers_too_large": ProblemKind(
            431,
            "The request headers are too large",
            "The request line and header fields together are limited to 32 KiB. Nothing was done; "
            "send fewer or shorter headers.",
        ),
        "internal_error": ProblemKind(
            500,
            "Internal error",
            "A fault of the service. Quote `request_id` when you report it; look a payment up by its "
            "`payment_id`, when given, before paying again.",
        ),
        "method_not_implemented": ProblemKind(
            501,
            "The method is not implemented",
            "The request's method is a word the service's HTTP reader does not know as a method, so "
            "it takes it on no path. Nothing was done; use one that HTTP defines (a path's own "
            "methods are in the `Allow` of its 405).",
        ),
        "transfer_coding_not_supported": ProblemKind(
            501,
            "The body's transfer coding is not supported",
            "Transfer-Encoding may only be chunked: the body would otherwise be read still coded. "
            "Nothing was done; send the body as it is, with Content-Length or chunked.",
        ),
        "service_unavailable": ProblemKind(
            503,
            "The service is busy; retry later",
            "The service cannot take this request now: its event writer is behind, it is stopping, its "
            "disk refused to record the payment before it was sent to a processor, or (for the "
            "analytics reads and the report) it runs without its event store, or runs as many of "
            "them at once as it allows beside the payments. Nothing was charged; retry after "
            "`Retry-After` seconds.",
        ),
        "payment_interrupted": ProblemKind(
            503,
            "The service stopped before the payment's answer was ready; it may have been charged",
            "The next start finishes the payment: look it up by `payment_id`, or retry with the same "
            "Idempotency-Key to get its outcome. Do not pay again with a new key.",
        ),
        "http_version_not_supported": ProblemKind(
            505,
            "The HTTP version is not supported",
            "The service speaks HTTP/1.1 (and HTTP/1.0). Nothing was done; send the request as HTTP/1.1.",
        ),
    }
)


def unknown_method_detail(method: str) -> str:
    """What a 501 ``method_not_implemented`` says of ``method``, a client's token (masked, cut)."""
    shown = mask_card_numbers(method[:40])
    return f"The method {shown} is not implemented here, on any path; use one that HTTP defines."


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    message: str
    severity: str = "error"


class ApiProblem(Exception):  # noqa: N818 - it is an answer, not a fault of the service
    """Raised by handlers; the app turns it into a problem response."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: JsonObject | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.kind = PROBLEMS[code]
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_type(code: str, root_path: str) -> str:
    """The URI of ``code``'s page, below ``root_path``, the prefix a reverse proxy serves the API
    under and strips (``/payorch/problems/not_found``; ``""`` when served at the host's root)."""
    return f"{root_path}/problems/{code}"


def problem_document(
    code: str,
    detail: str,
    request_id: str,
    errors: Sequence[FieldError] = (),
    extra: JsonObject | None = None,
    *,
    root_path: str,
) -> JsonObject:
    kind = PROBLEMS[code]
    document: JsonObject = {
        "type": problem_type(code, root_path),
        "title": kind.title,
        "status": kind.status,
        "detail": mask_card_numbers(detail),
        "code": code,
        "request_id": request_id,
    }
    if errors:
        document["errors"] = [
            {
                "field": mask_card_numbers(e.field),
                "code": e.code,
                "message": mask_card_numbers(e.message),
                "severity": e.severity,
            }
            for e in errors
        ]
    if extra:
        document.update(extra)
    return document


def problem_page(code: str, root_path: str) -> str | None:
    """The HTML page a problem's ``type`` URI (``/problems/<code>``) names, its link to the docs
    below ``root_path``; ``None`` for no problem."""
    kind = PROBLEMS.get(code)
    if kind is None:
        return None
    title, meaning = html.escape(kind.title), html.escape(kind.meaning).replace("`", "")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<p>HTTP {kind.status}, <code>code: {code}</code></p>\n<p>{meaning}</p>\n"
        "<p>Errors are <code>application/problem+json</code> (RFC 9457); see "
        f'<a href="{html.escape(root_path)}/docs">the API docs</a>.</p></body></html>\n'
    )


def problem_response(problem: ApiProblem, request_id: str, root_path: str) -> ProblemResponse:
    document = problem_document(
        problem.code, problem.detail, request_id, problem.errors, problem.extra, root_path=root_path
    )
    return ProblemResponse(document, status_code=problem.kind.status, headers=problem.headers)
