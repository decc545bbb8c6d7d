"""Every error the API answers, as an RFC 9457 ``application/problem+json`` document.

One table (:data:`PROBLEMS`) names each problem's code, status and title; handlers raise
:class:`ApiProblem` with a code and a specific detail. The document carries ``type``, ``title``,
``status``, ``detail``, ``code`` (Stripe-style, e.g. ``idempotency_key_in_use``), the
``request_id``, and ``errors: [{field, code, message}]`` where fields are at fault. No stack trace,
exception text or internal path ever reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ingest.api.encoding import ProblemResponse
from ingest.codec.result_json import JsonObject


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    title: str


PROBLEMS: Mapping[str, ProblemKind] = MappingProxyType(
    {
        "invalid_request": ProblemKind(400, "The request is malformed"),
        "unauthorized": ProblemKind(401, "A valid API key is required"),
        "forbidden": ProblemKind(403, "This API key may not do that"),
        "not_found": ProblemKind(404, "No such resource"),
        "method_not_allowed": ProblemKind(405, "Method not allowed"),
        "request_timeout": ProblemKind(408, "The request body did not arrive in time"),
        "idempotency_key_in_use": ProblemKind(409, "A request with this idempotency key is in progress"),
        "complaint_exists": ProblemKind(
            409, "A complaint with this complaint_id was filed with other content"
        ),
        "payload_too_large": ProblemKind(413, "The request body is too large"),
        "unsupported_media_type": ProblemKind(415, "Unsupported content type"),
        "validation_failed": ProblemKind(422, "The request cannot be processed"),
        "idempotency_key_reused": ProblemKind(
            422, "This idempotency key was used with a different request body"
        ),
        "internal_error": ProblemKind(500, "Internal error"),
        "service_unavailable": ProblemKind(503, "The service is busy; retry later"),
        "payment_interrupted": ProblemKind(
            503, "The service stopped before the payment's answer was ready; it may have been charged"
        ),
    }
)


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


def problem_document(
    code: str,
    detail: str,
    request_id: str,
    errors: Sequence[FieldError] = (),
    extra: JsonObject | None = None,
) -> JsonObject:
    kind = PROBLEMS[code]
    document: JsonObject = {
        "type": f"/problems/{code}",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors:
        document["errors"] = [
            {"field": e.field, "code": e.code, "message": e.message, "severity": e.severity} for e in errors
        ]
    if extra:
        document.update(extra)
    return document


def problem_response(problem: ApiProblem, request_id: str) -> ProblemResponse:
    document = problem_document(problem.code, problem.detail, request_id, problem.errors, problem.extra)
    return ProblemResponse(document, status_code=problem.kind.status, headers=problem.headers)
