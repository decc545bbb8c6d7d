"""The command line's own argument types: each checks its syntax before a command runs, so that a
bad value is click's one-line usage error (exit 2) and never reaches what reads or writes.

- :class:`PathOption`: a path that must not be empty (click would make ``''`` the current folder).
- :class:`DuckDBPath`: a :class:`PathOption` that DuckDB opens or writes: no backslash.
- :class:`ServiceUrl`: an ``http(s)://host[:port][/path]`` URL of a running service.
- :class:`Moment`: an ISO 8601 date or time, as an aware UTC ``datetime`` (naive means UTC).
- :class:`RootPath`: the path prefix a reverse proxy serves the API under (``/payorch``).
- :class:`Integer`: a whole number within bounds (a port, seconds, a count).
- :class:`Host`: the name or address ``payorch serve`` listens on, an IPv6 one with or without
  brackets, and no port.
"""

from __future__ import annotations

import ipaddress
import string
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import click

from ingest.moments import parse_moment


class PathOption(click.Path):
    """``click.Path`` refusing an empty value: ``--data ''`` would mean the current folder, and
    ``--out ''`` replace files there."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str | bytes) and not value:
            folder = self.dir_okay and not self.file_okay
            self.fail(f"must not be empty{' (give . for the current folder)' if folder else ''}", param, ctx)
        return super().convert(value, param, ctx)


class DuckDBPath(PathOption):
    """A :class:`PathOption` that DuckDB opens or writes (a data folder, an export's folder),
    refusing a backslash: DuckDB reads one as a folder separator, here too (as on Windows): ``--out
    'a\\b'`` wrote ``a/b/events/...``, and ``--data 'a\\b'`` opened ``a/b/payorch.duckdb`` (another
    folder's database, when there is one) while payorch's own files went into ``a\\b``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        if "\\" in text:
            self.fail(
                f"'{text}' holds a backslash, which DuckDB reads as a folder separator (the files "
                "would go elsewhere): name the folder without one",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


class ServiceUrl(click.ParamType[str]):
    """The base URL of a running ``payorch serve``."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        problem = url_problem(text)
        if problem is not None:
            self.fail(f"{text!r} {problem}", param, ctx)
        return text


def url_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a service URL, or ``None``."""
    if any(character in string.whitespace or not character.isprintable() for character in text):
        return "must not hold spaces or control characters"
    try:
        parts = urlsplit(text)
    except ValueError as error:  # an unclosed "[" around an IPv6 host
        return f"is not a URL ({error})"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must start with http:// or https:// and a host"
    if not parts.hostname:
        return "has no host"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password (the key goes in --api-key)"
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        return "must not have a query or a fragment"
    return None


class RootPath(click.ParamType[str]):
    """The path a reverse proxy serves the API under, as the proxy strips it (``/payorch``): one
    leading slash, none trailing (``/payorch/`` is taken as ``/payorch``; ``/`` and ``""`` are no
    prefix)."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text:  # the default: served at the host's root
            return text
        if not text.startswith("/") or text.startswith("//"):
            self.fail(f"{text!r} must start with one / (as /payorch)", param, ctx)
        plain = (character not in "?#%\\" and character.isprintable() for character in text)
        if not all(plain) or any(character.isspace() for character in text):
            self.fail(f"{text!r} must be a plain path: no spaces, %, ?, # or control characters", param, ctx)
        if any(part in ("", ".", "..") for part in text.rstrip("/").split("/")[1:]):
            self.fail(f"{text!r} must not have an empty, . or .. segment", param, ctx)
        return text.rstrip("/")


class Moment(click.ParamType[datetime]):
    """A date or a time by the rule the API's ``from`` and ``to`` follow (``ingest.moments``): ISO
    8601's extended form, seconds, fractions and the offset (``Z`` or ``±HH:MM``) optional, a time
    without an offset UTC. The report's own window bounds read back."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        try:
            moment = parse_moment(text)
        except ValueError as error:
            self.fail(f"{text!r} is not an ISO 8601 date or time: it {error}", param, ctx)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            self.fail(f"{text!r} is outside the years 1 to 9999 in UTC", param, ctx)


class Integer(click.IntRange):
    """``click.IntRange`` named as what it takes, one whole number: click's own said ``--port
    abc`` "is not a valid integer range" and showed ``--port INTEGER RANGE`` in the help, as if a
    range (``1-5``) were asked for."""

    name = "integer"


class Host(click.ParamType[str]):
    """The host ``payorch serve`` listens on: a name or an address. An IPv6 address may come in the
    brackets a URL puts around it (``[::1]``, as the ``listening on http://[::1]:8000`` line shows
    it), which are taken off; a port is refused, naming ``--port``. Both were only "cannot resolve
    --host '[::1]': Name or service not known"."""

    name = "host"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        bracketed = text.startswith("[") and "]" in text
        if bracketed:
            address, _, rest = text[1:].partition("]")
            host, port = f"[{address}]", rest[1:] if rest.startswith(":") else None
        else:
            address, rest = text, ""
            host, port = text.partition(":")[0], text.partition(":")[2] if text.count(":") == 1 else None
        if port is not None:
            self.fail(f"{text!r} holds a port: give the host alone ({host}) and --port {port}", param, ctx)
        if bracketed and not rest and _is_ipv6(address):
            return address
        if "[" in text or "]" in text:
            self.fail(f"{text!r} is not a host: only an IPv6 address goes in brackets ([::1])", param, ctx)
        return text


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
