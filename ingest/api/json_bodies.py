"""What a JSON route of FastAPI's (``POST /v1/complaints``) refuses before FastAPI reads its body,
and the label it reads a JSON object under.

FastAPI decodes a JSON body itself, and answers a body it cannot decode (not UTF-8, gzipped) with
a bare 400 that says only that the request could not be read; a ``Content-Encoding`` it ignores,
so that a body labelled gzip but sent plain was taken. These bodies are refused as
``POST /v1/payments`` refuses them (:mod:`ingest.parsing.body`): 422 ``validation_failed`` with the
reason as a ``body`` issue, ``unsupported_content_encoding`` or ``invalid_encoding``.

FastAPI reads a body as JSON only under ``application/json`` (or ``+json``): a complaint sent
without a ``Content-Type`` (or as ``text/plain``, or as curl's default form type) was 422 "the body
must be a JSON object", where a payment sent so is taken (PRODUCT.md section 5: a JSON object is
read as JSON whatever its label). :func:`json_labelled` gives such a body the label FastAPI reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest.api.problems import ApiProblem, FieldError
from ingest.parsing.body import not_utf8, utf8_text

#: The routes whose body FastAPI reads as JSON: (method, path).
JSON_ROUTES = frozenset({("POST", "/v1/complaints")})


def unreadable_body(
    body: bytes, content_encoding: str | None, content_type: str | None = None
) -> ApiProblem | None:
    """The 422 for a body a JSON route cannot read, or ``None``. ``content_encoding`` is the
    ``Content-Encoding`` header, its repeated lines joined with ", " (``None`` when absent);
    ``content_type`` the ``Content-Type``, whose charset the refusal names."""
    codings = [name.strip() for name in (content_encoding or "").split(",")]
    coded = [name for name in codings if name and name.lower() != "identity"]
    if coded:
        shown = ", ".join(f'"{name}"' for name in coded)
        message = (
            f"Content-Encoding {shown} is not supported: send the body uncompressed, without "
            "Content-Encoding (or with identity)"
        )
        return _unreadable("unsupported_content_encoding", message)
    if utf8_text(body, content_type) is None:
        return _unreadable("invalid_encoding", not_utf8(body, content_type))
    return None


def _unreadable(code: str, message: str) -> ApiProblem:
    return ApiProblem(
        "validation_failed",
        "The body cannot be read; nothing was stored.",
        errors=[FieldError("body", code, message)],
    )


_JSON_LABEL = (b"content-type", b"application/json")
_BYTE_ORDER_MARK = b"\xef\xbb\xbf"  # UTF-8's, which FastAPI's JSON reading drops


def json_labelled(headers: Sequence[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]] | None:
    """``headers`` with ``Content-Type: application/json`` for a body that is a JSON object (it
    begins with ``{``; FastAPI says what is wrong with it if it is not one) under a label FastAPI
    does not read as JSON: none, ``text/plain``, a form type; ``None`` to keep them as they are."""
    if not body.lstrip().removeprefix(_BYTE_ORDER_MARK).lstrip().startswith(b"{"):
        return None
    declared = next((value for name, value in headers if name == b"content-type"), None)
    if declared is not None:
        media = declared.split(b";", 1)[0].strip().lower()
        if media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json")):
            return None
    return [*(header for header in headers if header[0] != b"content-type"), _JSON_LABEL]
