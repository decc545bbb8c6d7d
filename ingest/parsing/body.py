"""The body: bytes, a content type and a content coding in, a decoded object (or the issues that
stop it) out.

Rules (every issue here is on field ``body``):

- A ``Content-Encoding`` other than ``identity`` (``gzip``, ``br``...): error
  ``unsupported_content_encoding``, before the bytes are looked at: they are not the body's
  text, and the API does not decompress (a small compressed body can expand past any limit).
- An empty or whitespace-only body: error ``empty_body``. Bytes that are not UTF-8: error
  ``invalid_encoding`` (a declared charset is not honoured: the API speaks UTF-8 only, as RFC 8259
  has JSON exchanged). A body declared in another charset (``charset=utf-16``) is refused so too
  when it is not UTF-8 or holds NUL bytes (UTF-16 or UTF-32 text of ASCII letters is valid UTF-8
  full of NULs), and the message names the charset declared. A leading UTF-8 byte order mark is
  dropped with warning ``byte_order_mark``.
- ``application/json``, ``text/json`` or any ``+json`` type: JSON. Invalid JSON (including
  nesting that exhausts the recursion limit, or nesting deeper than ``MAX_DEPTH``): error
  ``invalid_json``. JSON that is not an object: error ``not_an_object``.
- ``application/x-www-form-urlencoded``: form fields (``urllib.parse.parse_qsl``, blank values
  kept); ``metadata[key]=value`` fills the metadata object, one level deep: a key holding ``][``
  is nesting notation (``metadata[a][b]=1``), which form metadata does not have, so the whole
  name stays a field of its own, unknown, and is ignored with warning ``unknown_field`` rather
  than kept as a metadata key ``a][b``. A repeated key keeps every value it was given, for the
  rule on repeats (:mod:`ingest.parsing.fields`). A name or value whose percent-escapes are not
  UTF-8 (``K%F6ln``, Latin-1): error ``invalid_encoding``, as for a JSON body's bytes. A body
  that is a JSON object instead (what ``curl -d '{...}'`` sends, with this type by default) is
  read as JSON, with warning ``content_type``; one that starts with ``{`` but is not valid JSON
  stays form fields.
- No content type, or one that is not a ``type/subtype``: a body starting with ``{`` or ``[`` is
  read as JSON (its errors stand); any other body is read as form fields if it is well-formed
  ``key=value&...``. Either way: warning ``content_type``.
- ``multipart/*`` (``multipart/form-data``): a body that is a JSON object is read as JSON, with
  warning ``content_type`` (it is JSON under the wrong label); anything else is refused with
  error ``unsupported_content_type`` saying that multipart bodies are not accepted and what to
  send instead. A multipart body is never taken for form fields: its boundary lines read as one
  unknown field.
- Any other content type (``text/plain``...): a JSON object, else well-formed form fields, with
  warning ``content_type``; neither: error ``unsupported_content_type``.

Shortcuts (:mod:`ingest.parsing.shortcuts`):

- JSON is read by one decoder built at import with the hooks of :mod:`ingest.parsing.values`:
  what ``json.loads`` does with those hooks, less building a decoder per call. A text that starts
  with a second byte order mark still goes to ``json.loads``, which refuses it with its own message.
  A text that starts with ``{`` and ends with the object is read by the decoder's scanner alone.
- The common content types are looked up in a table the general rule filled.
- The depth walk is skipped when the text has at most ``MAX_DEPTH`` opening brackets in all (in
  strings or not): every level of nesting needs one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, auto
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

from engine.unchecked import unchecked
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.fields import FieldName, canonical_field
from ingest.parsing.issues import error, quote, warning
from ingest.parsing.values import MAX_DEPTH, JsonObject, JsonValue, json_int, json_object

BODY = "body"
_BYTE_ORDER_MARK = "\ufeff"
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+")
_BRACKETED = re.compile(r"(?P<name>[^\[\]]+)\[(?P<key>.*)\]", re.DOTALL)


class _Kind(Enum):
    JSON = auto()
    FORM = auto()
    UNDECLARED = auto()  # missing or malformed
    MULTIPART = auto()
    OTHER = auto()


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """The body's top-level object, or ``None`` when an error issue stopped the decoding."""

    fields: JsonObject | None
    issues: tuple[ValidationIssue, ...]


#: :class:`DecodedBody` built without a frozen dataclass's ``__init__`` (it has no check to skip),
#: for the decoded object every accepted body gives (about 1,300 instructions less).
_decoded_body = unchecked(DecodedBody)
#: The kinds :func:`decode_body` tests, read once (an Enum member read off its class costs about
#: 1,100 instructions, a module global about 50).
_JSON = _Kind.JSON
_FORM = _Kind.FORM


def _kind_of_media(content_type: str | None) -> _Kind:
    if content_type is None:
        return _Kind.UNDECLARED
    media = content_type.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media):
        return _Kind.UNDECLARED
    if media in {"application/json", "text/json"} or media.endswith("+json"):
        return _Kind.JSON
    if media == "application/x-www-form-urlencoded":
        return _Kind.FORM
    if media.startswith("multipart/"):
        return _Kind.MULTIPART
    return _Kind.OTHER


#: The content types clients send most, as the general rule reads them.
_COMMON_KINDS: dict[str | None, _Kind] = {
    content_type: _kind_of_media(content_type)
    for content_type in (
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/x-www-form-urlencoded",
    )
}


def _kind(content_type: str | None) -> _Kind:
    if shortcuts.ENABLED:
        known = _COMMON_KINDS.get(content_type)
        if known is not None:
            return known
    return _kind_of_media(content_type)


def _depth_exceeds(value: JsonValue, limit: int) -> bool:
    """Whether containers nest deeper than ``limit``; iterative, so depth cannot hurt it."""
    stack: list[tuple[JsonValue, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: list[JsonValue]
        if isinstance(item, JsonObject):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


#: The decoder ``json.loads`` builds on every call with these hooks. One can be shared, as json
#: shares its own default decoder: decoding keeps no state between calls.
_DECODER = json.JSONDecoder(
    object_pairs_hook=json_object, parse_int=json_int, parse_float=Decimal, parse_constant=float
)


#: The decoder's scanner: what ``JSONDecoder.decode`` calls once it has skipped whitespace.
_SCAN: Callable[[str, int], tuple[JsonValue, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _load(text: str) -> JsonValue:
    """The JSON value of ``text``; raises what ``json.loads`` raises."""
    if shortcuts.ENABLED and text.startswith("{"):
        # No whitespace before the object, so decode would scan from 0 as here, raising what the
        # scan raises (but StopIteration, a value missing inside, which decode words itself); an
        # object the scan ends the text with is decode's answer too. Anything after it goes to
        # decode, which takes whitespace or refuses the rest ("Extra data"). decode's two
        # whitespace searches cost about 6,000 instructions.
        try:
            scanned, end = _SCAN(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return scanned
    if shortcuts.ENABLED and not text.startswith(_BYTE_ORDER_MARK):
        # json.loads only refuses a leading byte order mark before it hands over to its decoder.
        value: JsonValue = _DECODER.decode(text)
        return value
    loaded: JsonValue = json.loads(
        text, object_pairs_hook=json_object, parse_int=json_int, parse_float=Decimal, parse_constant=float
    )
    return loaded


def _nests_too_deep(text: str, value: JsonValue) -> bool:
    # Every level of nesting opens with a bracket, so fewer brackets than levels cannot exceed.
    if shortcuts.ENABLED and text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    return _depth_exceeds(value, MAX_DEPTH)


def _json(text: str) -> DecodedBody:
    try:
        value = _load(text)
    except RecursionError:
        # CPython's decoder recurses once per nesting level; a hostile body reaches the limit.
        return DecodedBody(None, (error(BODY, "invalid_json", "the JSON nests too deeply to read", text),))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return DecodedBody(None, (error(BODY, "invalid_json", f"the body is not valid JSON: {exc}", text),))
    if _nests_too_deep(text, value):
        message = f"the JSON nests deeper than {MAX_DEPTH} levels"
        return DecodedBody(None, (error(BODY, "invalid_json", message, text),))
    if not isinstance(value, JsonObject):
        message = "the body must be a JSON object ({...}) of the request's fields"
        return DecodedBody(None, (error(BODY, "not_an_object", message, text),))
    return _decoded_body(fields=value, issues=())


def _is_form(text: str) -> bool:
    """Whether ``text`` is well-formed ``key=value&...`` (what a guess needs before trusting it)."""
    try:
        return bool(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return False


def _metadata_key(name: str) -> tuple[str, str] | None:
    """The field name and metadata key of a form name ``metadata[key]`` (any spelling of
    ``metadata``); ``None`` for any other name, nested keys (``metadata[a][b]``) included."""
    bracketed = _BRACKETED.fullmatch(name)
    if bracketed is None or canonical_field(bracketed["name"]) is not FieldName.METADATA:
        return None
    key = bracketed["key"]
    return None if "][" in key else (bracketed["name"], key)


def _form(text: str) -> DecodedBody:
    """Form fields as an object; ``metadata[key]=value`` pairs make the metadata object. A name or
    value whose percent-escapes are not UTF-8 stops it, as a JSON body's bytes do: read as U+FFFD,
    Latin-1's ``K%F6ln`` was kept mangled, and equal to ``K%FCln`` for an idempotent repeat."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return DecodedBody(None, (_not_utf8(text),))
    result = JsonObject()
    for key, value in pairs:
        entry = _metadata_key(key)
        if entry is None:
            result.put(key, value)
            continue
        name, metadata_key = entry
        metadata = result.get(name)
        if not isinstance(metadata, JsonObject):
            # A plain "metadata=..." before it is kept as an earlier value: the two conflict.
            metadata = JsonObject()
            result.put(name, metadata)
        metadata.put(metadata_key, value)
    return DecodedBody(result, ())


def _not_utf8(text: str) -> ValidationIssue:
    """The issue of a form whose percent-escapes are not UTF-8, naming the first such field."""
    for pair in text.split("&"):
        name, _, value = pair.partition("=")
        for part in (name, value):
            raw = unquote_to_bytes(part.replace("+", " "))
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = quote(unquote(name.replace("+", " "), errors="backslashreplace"))
                message = (
                    f"the form field {shown} is not UTF-8 text once percent-decoded: byte "
                    f"{raw[exc.start]:#04x} (send form fields in UTF-8: %C3%B6 for \u00f6)"
                )
                return error(BODY, "invalid_encoding", message, text)
    return error(BODY, "invalid_encoding", "the form fields are not UTF-8 text once percent-decoded", text)


#: Charsets whose text a UTF-8 reader reads as written.
_UTF8_READABLE = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def declared_charset(content_type: str | None) -> str | None:
    """The ``charset`` a content type declares, when it is one UTF-8 does not read as written
    (``utf-16``, ``iso-8859-1``); ``None`` without one, or for UTF-8 or ASCII."""
    if content_type is None or ";" not in content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').strip()
            return None if charset.lower() in _UTF8_READABLE else charset
    return None


def utf8_text(body: bytes, content_type: str | None) -> str | None:
    """``body`` as text, or ``None`` when it is not UTF-8 (:func:`not_utf8` says why): its bytes
    are not, or it is declared in another charset and holds NUL bytes, as UTF-16 text does."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text and declared_charset(content_type) is not None:
        return None
    return text


def not_utf8(body: bytes, content_type: str | None) -> str:
    """Why :func:`utf8_text` could not read ``body``, naming the charset declared: the bytes
    alone ("byte 0xff at position 0") left a client that sent ``charset=utf-16`` guessing."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"byte {body[exc.start]:#04x} at position {exc.start}"
    else:
        why = f"NUL byte at position {body.index(0)}"
    message = f"the body is not UTF-8 text: {why}"
    charset = declared_charset(content_type)
    if charset is None:
        return message
    return (
        f"{message}; it is declared charset={quote(charset)}, which the API does not read: send "
        "the body in UTF-8 (charset=utf-8, or no charset)"
    )


def _shown(content_type: str | None) -> str:
    return "no content type" if content_type is None else f"content type {quote(content_type)}"


def _read_as_json(decoded: DecodedBody, content_type: str | None) -> DecodedBody:
    note = warning(BODY, "content_type", f"{_shown(content_type)}: read the body as JSON", content_type)
    return DecodedBody(decoded.fields, (note, *decoded.issues))


def _undeclared_or_other(text: str, kind: _Kind, content_type: str | None) -> DecodedBody:
    shown = _shown(content_type)
    looks_like_json = text.lstrip()[:1] in {"{", "["}
    if looks_like_json:
        decoded = _json(text)
        if decoded.fields is not None or kind is _Kind.UNDECLARED:
            return _read_as_json(decoded, content_type)
    if kind is _Kind.MULTIPART:
        message = (
            f"{shown}: multipart bodies are not accepted; send the fields as JSON (application/json) "
            "or as form fields (application/x-www-form-urlencoded)"
        )
        return DecodedBody(None, (error(BODY, "unsupported_content_type", message, content_type),))
    if _is_form(text):
        note = warning(BODY, "content_type", f"{shown}: read the body as form fields", content_type)
        form = _form(text)
        return DecodedBody(form.fields, (note, *form.issues))
    message = f"{shown}, and the body is neither a JSON object nor form fields"
    return DecodedBody(None, (error(BODY, "unsupported_content_type", message, content_type),))


def _form_or_json_object(text: str, content_type: str | None) -> DecodedBody:
    # A form whose first key starts with "{" is no form anyone means: it is JSON sent with a
    # client's default content type. Only a JSON object is taken as JSON (its issues would
    # otherwise replace the form's).
    if text.lstrip()[:1] == "{":
        decoded = _json(text)
        if decoded.fields is not None:
            return _read_as_json(decoded, content_type)
    return _form(text)


def _codings(content_encoding: str) -> list[str]:
    """The content codings a ``Content-Encoding`` value applies (a comma-separated list, repeated
    header lines joined), less ``identity``, which changes nothing."""
    names = (name.strip() for name in content_encoding.split(","))
    return [name for name in names if name and name.lower() != "identity"]


def decode_body(body: bytes, content_type: str | None, content_encoding: str | None = None) -> DecodedBody:
    """The body's top-level object and the issues met reading it; never raises.

    ``content_encoding`` is the ``Content-Encoding`` header (``None`` when absent)."""
    codings = [] if content_encoding is None else _codings(content_encoding)
    if codings:
        shown = ", ".join(quote(name) for name in codings)
        message = (
            f"Content-Encoding {shown} is not supported: send the body uncompressed, without "
            "Content-Encoding (or with identity)"
        )
        return DecodedBody(None, (error(BODY, "unsupported_content_encoding", message, content_encoding),))
    if not body.strip():
        return DecodedBody(None, (error(BODY, "empty_body", "the body is empty", None),))
    text = utf8_text(body, content_type)
    if text is None:
        raw = body.decode("utf-8", errors="backslashreplace")
        return DecodedBody(None, (error(BODY, "invalid_encoding", not_utf8(body, content_type), raw),))
    notes: tuple[ValidationIssue, ...] = ()
    if text.startswith(_BYTE_ORDER_MARK):
        text = text[len(_BYTE_ORDER_MARK) :]
        notes = (warning(BODY, "byte_order_mark", "dropped the byte order mark before the body"),)
        if not text.strip():
            return DecodedBody(None, (*notes, error(BODY, "empty_body", "the body is empty", None)))
    kind = _kind(content_type)
    if kind is _JSON:
        decoded = _json(text)
    elif kind is _FORM:
        decoded = _form_or_json_object(text, content_type)
    else:
        decoded = _undeclared_or_other(text, kind, content_type)
    if not notes:
        return decoded
    return DecodedBody(decoded.fields, (*notes, *decoded.issues))
