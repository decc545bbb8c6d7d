"""``store.memory_limit``: a size as DuckDB spells one, checked before any database is opened.

The value is a whole number and a unit with nothing between them, ``512MiB`` or ``2GB``: binary
units (KiB, MiB, GiB, TiB) count 1024s, decimal ones (KB, MB, GB, TB) 1000s, as in DuckDB. Two
forms DuckDB itself takes are refused, each for a reason a payments service cares about:

- a share (``50%``): DuckDB takes it of the host's memory, not of the container's (its cgroup
  limit), which is what a share is meant to protect; payorch's own default is a share of the
  memory the process may use, so a size is all the file needs to say;
- a space (``2 GB``) or a fraction (``1.5GiB``): DuckDB reads both, but rounds and reprints them
  (``2 GB`` shows as ``1.8 GiB``); one spelling keeps the file, the log and ``current_setting``
  saying the same thing.

Whatever is refused is named with the spelling to use instead.
"""

from __future__ import annotations

import re

from engine.errors import InvalidFieldError

FIELD = "store.memory_limit"
#: Bytes per unit, by the unit's name in upper case (``MiB`` and ``mib`` alike).
UNITS = {
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
#: A floor that keeps a slip (``16KiB`` meant as 16 MiB) from starving the store: DuckDB needs a few
#: blocks per thread, and below this it refuses commits rather than spill.
MIN_BYTES = 16 * 2**20
#: A ceiling whatever the machine (the file loader also refuses more than the machine has).
MAX_BYTES = 2**40
_EXAMPLE = "such as 512MiB or 2GiB"
_UNIT_NAMES = "KiB, MiB, GiB, TiB, KB, MB, GB or TB"
_SIZE = re.compile(r"(-?)(\d+)([A-Za-z]+)", re.ASCII)
_SPACED = re.compile(r"(-?\d+(?:\.\d+)?)\s+([A-Za-z]+)", re.ASCII)
_FRACTION = re.compile(r"(\d+)\.(\d+)([A-Za-z]+)", re.ASCII)


def memory_bytes(value: object) -> int:
    """The bytes ``value`` (the field as the file holds it) names, or :class:`InvalidFieldError`
    saying what to write instead."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidFieldError(FIELD, value, f"must be a size, {_EXAMPLE}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidFieldError(FIELD, value, f"must not be negative: a size {_EXAMPLE}")
        if value == 0:
            raise InvalidFieldError(FIELD, value, f"must be a size above 0, {_EXAMPLE}")
        raise InvalidFieldError(FIELD, value, f"needs a unit: {value}MiB, for instance")
    text = value.strip()
    match = _SIZE.fullmatch(text)
    if match is None or match.group(3).upper() not in UNITS:
        raise InvalidFieldError(FIELD, value, _misspelt(text))
    sign, number, unit = match.groups()
    size = int(number) * UNITS[unit.upper()]
    if sign:
        raise InvalidFieldError(FIELD, value, f"must not be negative: a size {_EXAMPLE}")
    if size < MIN_BYTES:
        raise InvalidFieldError(FIELD, value, "must be at least 16MiB (DuckDB cannot work in less)")
    if size > MAX_BYTES:
        raise InvalidFieldError(FIELD, value, "must be at most 1TiB")
    return size


def _misspelt(text: str) -> str:
    """Why ``text`` is not a size, and the spelling to use instead."""
    if text.endswith("%"):
        return (
            "is a share, not a size: give a size, "
            f"{_EXAMPLE} (DuckDB would take a share of the host's memory, not of the container's; "
            "without memory_limit payorch takes a quarter of the memory the process may use)"
        )
    spaced = _SPACED.fullmatch(text)
    if spaced is not None and spaced.group(2).upper() in UNITS:
        return f"has a space in it: write {spaced.group(1)}{spaced.group(2)}"
    fraction = _FRACTION.fullmatch(text)
    if fraction is not None and fraction.group(3).upper() in UNITS:
        return f"must be a whole number of its unit ({_EXAMPLE}): use a smaller unit"
    if text.lstrip("-").isdigit():
        return f"needs a unit: {text}MiB, for instance"
    return f"is not a size: write a whole number and a unit ({_UNIT_NAMES}) with no space, {_EXAMPLE}"


def duckdb_setting(size: int) -> str:
    """``size`` bytes as DuckDB's ``memory_limit`` takes it, to the byte."""
    return f"{size}B"
