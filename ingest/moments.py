"""The one rule for a moment written as text, wherever payorch reads one: the API's ``from`` and
``to`` and a complaint's ``received_at``, and the command line's ``--from`` and ``--to``.

A moment is an ISO 8601 date or date-time in the extended form RFC 3339 uses: ``2026-11-20``,
or ``2026-11-20T10:00``, with the minutes (ISO 8601's reduced precision), seconds, a fraction
(``.`` or ``,``, up to 9 digits, kept to the microsecond) and an offset (``Z`` or ``±HH:MM``)
optional; ``T`` may be a space, and ``T`` and ``Z`` lower case, as RFC 3339 allows. A time
without an offset is UTC. Other ISO 8601 forms (basic ``20261120``, week dates ``2026-W47-1``,
ordinal dates ``2026-324``, an offset ``+0100``) and a number (which could be read as a Unix time
in seconds or milliseconds) are refused: :func:`parse_moment` raises :class:`ValueError` with
:data:`MOMENT_RULE` in its message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

#: What a moment may look like, in words, for error messages and help texts.
MOMENT_RULE = (
    "an ISO 8601 date (2026-11-20) or date-time (2026-11-20T10:00:00Z, "
    "2026-11-20T10:00:00.5+01:00; minutes, seconds and offset optional, no offset means UTC)"
)

_MOMENT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?)(?P<offset>[Zz]|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)


def parse_moment(text: str) -> datetime:
    """``text`` as an aware ``datetime`` (see the module text), in its own offset: UTC when it
    has none. :class:`ValueError` saying the rule when ``text`` breaks it or names a day or a
    time that does not exist. (Turning it to UTC can overflow at the years 1 and 9999: the
    caller says so in its own words.)"""
    found = _MOMENT.fullmatch(text)
    if found is None:
        raise ValueError(f"must be {MOMENT_RULE}")
    date, time, offset = found.group("date", "time", "offset")
    iso = date if time is None else f"{date}T{time.replace(',', '.')}{(offset or '').upper()}"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"names a day or a time that does not exist; it must be {MOMENT_RULE}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
