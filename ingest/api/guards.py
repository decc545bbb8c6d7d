"""What every route shares around its handler: the dependencies a request passes before it (the
key, the names of its query parameters, a store that can show the records whole) and the handlers
that turn what it raises into a problem answer (RFC 9457), never a stack trace.

The parameter types the reads share (a time, a window's ends, a page size) are here too, so that a
route declares what it takes in one word and every route says it the same way; and the check that
a contract id is in the registry, which a query (``/v1/violations``) and a complaint share.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, get_args

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from pydantic_core.core_schema import ErrorType
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from engine.contracts import default_registry
from engine.types import RequestId
from ingest.api import store_gate
from ingest.api.auth import Principal
from ingest.api.front import known, route_path
from ingest.api.parts import Parts
from ingest.api.payments import new_id
from ingest.api.problems import ApiProblem, FieldError, problem_response
from ingest.api.schemas import digits_only, iso_only
from ingest.parsing.masking import mask_card_numbers

logger = logging.getLogger("payorch.api")


def request_id_of(request: Request) -> RequestId:
    """The id the front gave this request (a new one when it reached the router without)."""
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


#: The order ``Allow`` lists methods in, whichever route of a path was registered first.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed(request: Request) -> str:
    """``Allow`` of a 405: the methods of every route of the request's path, HEAD wherever GET is
    (Front answers it).

    Starlette names the methods of the first route whose path matched, so a path with a route
    per method (``POST`` and ``GET /v1/payments``) was said to take only the first one's.
    """
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in request.app.router.routes:
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(path):
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    ordered = [method for method in _METHOD_ORDER if method in methods]
    return ", ".join(ordered + sorted(methods.difference(_METHOD_ORDER)))


def install_error_handlers(app: FastAPI, root_path: str) -> None:
    """Every error a request meets is answered as a problem document under ``root_path``."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)  # noqa: S101 - registered for ApiProblem only
        return problem_response(exc, request_id_of(request), root_path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(request)
        if exc.status_code == 404:
            detail = _not_found_detail(request)
        elif exc.status_code == 405:
            # It said "This path does not take this method." alone: which method, and which the
            # path takes, were left to the Allow header, which a client library rarely shows.
            shown = mask_card_numbers(request.url.path)
            detail = f"{shown} does not take {request.method[:40]}; it takes {headers.get('Allow', 'none')}."
        else:
            detail = "The request could not be read."
        return problem_response(ApiProblem(code, detail, headers=headers), request_id_of(request), root_path)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = [_field_error(error) for error in exc.errors()]
        problem = ApiProblem("validation_failed", _invalid_detail(errors), errors=errors)
        return problem_response(problem, request_id_of(request), root_path)

    async def on_crash(request: Request, exc: Exception) -> Response:
        path = mask_card_numbers(request.url.path)
        logger.error("unhandled error on %s %s", request.method, path, exc_info=exc)
        problem = ApiProblem("internal_error", "Something went wrong on our side; nothing is shown here.")
        return problem_response(problem, request_id_of(request), root_path)

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_crash)


def _invalid_detail(errors: list[FieldError]) -> str:
    """A 422's ``detail`` for a parameter that does not fit, naming it and what it must be.

    It said "The request does not fit this endpoint." whatever was wrong, so a developer reading
    the detail (what a client library shows, what a log keeps) was not told which parameter.
    """
    named = [f"{error.field}: {error.message}" for error in errors[:3]]
    if len(errors) > 3:
        named.append(f"and {len(errors) - 3} more in errors")
    return f"The request does not fit this endpoint ({'; '.join(named)})."


#: FastAPI's wording for a body that is not an object: a form, text, a JSON array...
_NOT_AN_OBJECT = "model_attributes_type"

#: Every code pydantic itself gives an error (``value_error``, ``literal_error``, ...); a code
#: outside it is one of payorch's own validators' (``conflicting_fields``), kept as it is.
_PYDANTIC_CODES = frozenset(get_args(ErrorType))


def _at_least(ctx: Mapping[str, Any]) -> str:
    return f"must be at least {ctx.get('ge')}"


def _at_most(ctx: Mapping[str, Any]) -> str:
    return f"must be at most {ctx.get('le')}"


def _more_than(ctx: Mapping[str, Any]) -> str:
    return f"must be more than {ctx.get('gt')}"


def _less_than(ctx: Mapping[str, Any]) -> str:
    return f"must be less than {ctx.get('lt')}"


def _one_of(ctx: Mapping[str, Any]) -> str:
    return f"must be {ctx.get('expected')}"


def _longest(ctx: Mapping[str, Any]) -> str:
    return f"must be at most {ctx.get('max_length')} characters"


def _shortest(ctx: Mapping[str, Any]) -> str:
    least = ctx.get("min_length")
    return "must not be empty" if least == 1 else f"must be at least {least} characters"


def _matching(ctx: Mapping[str, Any]) -> str:
    return f"must match the pattern {ctx.get('pattern')}"


def _required(_: Mapping[str, Any]) -> str:
    return "is required"


def _no_field(_: Mapping[str, Any]) -> str:
    return "is not a field of this request"


#: Pydantic's codes as payorch's, with payorch's words: the ``errors[].code`` of a parameter or a
#: field that does not fit is one of a small set that payment issues use too (``missing``,
#: ``invalid_type``, ``out_of_range``, ``value_too_long``, ``unknown_field``, ``invalid_json``,
#: ``not_an_object``) or that names the fault the same way (``value_too_short``,
#: ``unknown_value``, ``invalid_format``); ``invalid`` for anything else. Pydantic's own codes
#: (``greater_than_equal``, ``literal_error``, ``string_too_long``) were passed on, where every
#: other issue carries payorch's: a client switching on codes met names no page of payorch gives.
_CODES: dict[str, tuple[str, Callable[[Mapping[str, Any]], str] | None]] = {
    "missing": ("missing", _required),
    "extra_forbidden": ("unknown_field", _no_field),
    "greater_than_equal": ("out_of_range", _at_least),
    "less_than_equal": ("out_of_range", _at_most),
    "greater_than": ("out_of_range", _more_than),
    "less_than": ("out_of_range", _less_than),
    "literal_error": ("unknown_value", _one_of),
    "enum": ("unknown_value", _one_of),
    "string_too_long": ("value_too_long", _longest),
    "string_too_short": ("value_too_short", _shortest),
    "string_pattern_mismatch": ("invalid_format", _matching),
    "value_error": ("invalid_format", None),  # payorch's own validators, with their own words
}


def _payorch_code(code: str, ctx: Mapping[str, Any], message: str) -> tuple[str, str]:
    """payorch's code and message for pydantic's ``code`` (its ``ctx`` and ``message``)."""
    if code not in _PYDANTIC_CODES:
        return code, message
    known = _CODES.get(code)
    if known is not None:
        ours, words = known
        return ours, message if words is None else words(ctx)
    said = _PYDANTIC_SUBJECT.sub("must", message, count=1)  # "Input should be a valid string"
    if code.endswith(("_type", "_parsing")):
        return "invalid_type", said
    return "invalid", said


#: How pydantic's messages begin; payorch's say what the field must be ("must be a valid string").
_PYDANTIC_SUBJECT = re.compile(r"^(?:Input|String|Value) should")


def _field_error(error: Mapping[str, Any]) -> FieldError:
    location = tuple(error.get("loc", ()))
    code = str(error.get("type", "invalid"))
    message = str(error.get("msg", "is invalid"))
    ctx = error.get("ctx") or {}
    raised = ctx.get("error")
    if code == "value_error" and isinstance(raised, ValueError):
        # payorch's own validators' words (``limit``, ``from``, ``received_at``), without the
        # "Value error, " pydantic puts before them: a message is what the field must be.
        message = str(raised)
    if location == ("body",) and code == _NOT_AN_OBJECT:
        message = "the body must be a JSON object, sent with Content-Type: application/json"
        return FieldError("body", "not_an_object", message)
    if code == "json_invalid":  # its location is ("body", offset): the whole body is at fault
        return FieldError("body", "invalid_json", f"is not valid JSON ({message.lower()})")
    code, message = _payorch_code(code, ctx, message)
    return FieldError(".".join(str(part) for part in location[1:]) or "body", code, message)


def check_contract(contract_id: str) -> None:
    """A 422 ``unknown_contract`` for an id the registry lacks: a typo names no contract, in a
    complaint as in a query (where it would otherwise read as "no violations")."""
    if contract_id not in default_registry():
        raise ApiProblem(
            "validation_failed",
            "contract_id names no known contract.",
            errors=[FieldError("contract_id", "unknown_contract", f"{contract_id!r} is not in the registry")],
        )


#: A time query parameter: ISO 8601 (a naive one is UTC), never a bare number.
IsoMoment = Annotated[datetime, BeforeValidator(iso_only)]
#: ``?merchant_id=`` of a list (complaints, payments): whose records it lists.
ListedMerchant = Annotated[
    str | None,
    Query(
        max_length=255,
        description="Only this merchant's (an admin key; empty: every merchant's). A merchant "
        "key lists its own only (another merchant's: an empty list).",
    ),
]
#: ``?from=`` and ``?to=`` of a list of received records (complaints, payments).
ReceivedFrom = Annotated[
    IsoMoment | None, Query(alias="from", description="Received at or after (ISO 8601; naive is UTC).")
]
ReceivedTo = Annotated[
    IsoMoment | None, Query(alias="to", description="Received before (ISO 8601; naive is UTC).")
]

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
        detail = f"This endpoint takes no such query parameter (it takes {expected})."
        if not known and request.method == "POST":
            detail = "This endpoint takes no query parameters: its fields are read from the body only."
        raise ApiProblem(
            "validation_failed",
            detail,
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
#: A body sent with any key (a complaint): the key first, then any query parameter is refused (a
#: field put in the query was ignored, and the complaint stored without it).
KEYED_BODY = [Depends(_principal), KNOWN_PARAMETERS]
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
