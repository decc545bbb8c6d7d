"""One mapping of the configuration file, read key by key, and how a problem in it is named: the
field's path as the file spells it (once), the value where it may be shown, and types in YAML's
words (``null``, not ``NoneType``)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from engine.errors import DomainError
from engine.types import check_identifier
from ingest.errors import ConfigFileError

T = TypeVar("T")


class Section:
    """One mapping of the file, read key by key with the path of every field."""

    def __init__(self, source: str, path: str, value: object, allowed: set[str]) -> None:
        if not isinstance(value, Mapping):
            raise ConfigFileError(source, path or "(top level)", f"must be a mapping, not {_kind(value)}")
        unknown = sorted((key for key in value if key not in allowed), key=str)
        if unknown:
            raise ConfigFileError(
                source,
                key_path(path, unknown[0]),
                f"is not a known field (known: {', '.join(sorted(allowed))})",
            )
        self.source = source
        self.path = path
        self.value: Mapping[str, Any] = value

    def field(self, name: str) -> str:
        return _join(self.path, name)

    def has(self, name: str) -> bool:
        return self.value.get(name) is not None

    def get(self, name: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        raw = self.value.get(name)
        if raw is None:
            return default
        return self.typed(name, raw, kind)

    def require(self, name: str, kind: type[T] | tuple[type, ...]) -> T:
        if not self.has(name):
            raise ConfigFileError(self.source, self.field(name), "is required")
        return self.typed(name, self.value[name], kind)

    def typed(self, name: str, raw: object, kind: type[T] | tuple[type, ...]) -> T:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(raw, bool) and bool not in kinds:
            raise ConfigFileError(self.source, self.field(name), f"must be {_names(kinds)}, not a boolean")
        if not isinstance(raw, kinds):
            problem = f"must be {_names(kinds)}, not {_kind(raw)}"
            if isinstance(raw, str) and (int in kinds or float in kinds):
                problem += _number_as_text(raw)
            raise ConfigFileError(self.source, self.field(name), problem)
        return raw  # type: ignore[return-value]

    def strings(self, name: str, *, required: bool = False) -> tuple[str, ...]:
        items = self.require(name, list) if required else self.get(name, list, [])
        for position, item in enumerate(items):
            if not isinstance(item, str):
                raise ConfigFileError(
                    self.source, f"{self.field(name)}[{position}]", f"must be a string, not {_kind(item)}"
                )
        return tuple(items)

    def keys(self, name: str, *, required: bool = False) -> tuple[str, ...]:
        """API keys: strings, each checked here so that a problem names its position (the key
        itself is a secret and is never shown)."""
        keys = self.strings(name, required=required)
        for position, key in enumerate(keys):
            try:
                check_identifier(name, key)
            except DomainError as error:
                raise ConfigFileError(self.source, f"{self.field(name)}[{position}]", error.reason) from None
        return keys

    def section(self, name: str, allowed: set[str]) -> Section:
        # Only a missing key or an explicit null means the defaults: ``retry: 0`` is a mistake.
        raw = self.value.get(name)
        return Section(self.source, self.field(name), {} if raw is None else raw, allowed)

    def build(self, name: str, make: Callable[[], T], aliases: Mapping[str, str] | None = None) -> T:
        """Run a domain constructor, turning its error into one that names this file and the field
        as the file spells it (``aliases`` turn the domain's ``merchants['m_acme']`` into the
        file's ``merchants[0]``)."""
        try:
            return make()
        except DomainError as error:
            field = error.field
            for domain_name, file_name in (aliases or {}).items():
                if field == domain_name or field.startswith((f"{domain_name}.", f"{domain_name}[")):
                    field = file_name + field[len(domain_name) :]
                    break
            path = _within(self.field(name), field)
            secret = "api_keys" in path.rpartition(".")[2]
            raise ConfigFileError(
                self.source, path, error.reason, value=None if secret else shown(error.value)
            ) from error


#: Text that reads as a number: quoted, or with an exponent YAML 1.1 does not take as one.
_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)


def _number_as_text(raw: str) -> str:
    """Why a number the file holds is a string, and what to write instead (empty for other text).
    PyYAML (YAML 1.1) reads an exponent only after a dot and with its sign (``1.0e+3``): ``1e3``,
    ``1.5e3`` and ``1e+3`` are strings, which a number field refused without saying why."""
    if not _NUMBER.fullmatch(raw):
        return ""
    number = f"{float(raw.replace('_', '')):.15g}"
    if "e" in raw.lower():
        return (
            f": YAML 1.1 reads {raw!r} as text (an exponent needs a dot and a sign, 1.0e+3): write {number}"
        )
    return f": {raw!r} is quoted text: write {number} without quotes"


#: A key shown in a field path as it is written: a name of letters, digits and underscores.
_NAME = re.compile(r"\w+", re.ASCII)


def key_path(path: str, key: object) -> str:
    """The path of the file's own ``key`` under ``path``: a name as written (``store.batch``), any
    other key quoted (``complaint_taxonomy['slow ']``, ``store[1]``), so that no key can break the
    message's line, hide in it (a right-to-left mark) or pass for a path of its own."""
    if isinstance(key, str) and _NAME.fullmatch(key):
        return _join(path, key)
    return f"{path}[{'null' if key is None else shown(key)}]"


def _join(path: str, name: str) -> str:
    if not name:
        return path
    return f"{path}.{name}" if path else name


#: One step of a field path: a name and its subscripts (``routing[0]``, ``merchants['m.acme']``).
_STEP = re.compile(r"(\w+)((?:\[(?:'[^']*'|\"[^\"]*\"|[^\]]*)\])*)(?:\.|$)")


def _steps(path: str) -> list[tuple[str, str]] | None:
    """``path`` as (name, step) pairs; ``None`` when it is not such a path."""
    steps: list[tuple[str, str]] = []
    position = 0
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None or match.end() == position:
            return None
        steps.append((match.group(1), match.group(1) + match.group(2)))
        position = match.end()
    return steps


def _within(path: str, field: str) -> str:
    """The domain's ``field`` (named from its own object: ``retry.max_attempts``) as a path in the
    file under the section at ``path`` (``merchants[0].retry``): where the end of ``path`` and the
    start of ``field`` name the same thing, it is named once (``merchants[0].retry.max_attempts``)."""
    outer, inner = _steps(path), _steps(field)
    if outer is None or inner is None:
        return _join(path, field)
    for overlap in range(min(len(outer), len(inner)), 0, -1):
        if [name for name, _ in outer[-overlap:]] == [name for name, _ in inner[:overlap]]:
            inner = inner[overlap:]
            break
    return ".".join(step for _, step in (*outer, *inner))


_MAX_SHOWN = 80


def shown(value: object) -> str | None:
    """``value`` as the message shows it (``None``: a missing value, not shown at all). A float is
    shown to 15 significant digits, as many as a decimal written in the file keeps: one the
    domain computed (the sum of the fault rates 0.7, 0.7 and 0.005) was shown with the noise of
    binary floating point, ``1.4049999999999998``, for 1.405."""
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value):
        value = float(f"{value:.15g}")
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 3]}..."


#: Types named as YAML names them (an explicit ``null`` is "null", not "NoneType").
_YAML_KINDS: dict[type, str] = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
    datetime: "a timestamp",
    date: "a date",
    bytes: "binary data",
    set: "a set",
}


def _kind(value: object) -> str:
    return _kind_of(type(value))


def _kind_of(kind: type) -> str:
    return _YAML_KINDS.get(kind, kind.__name__)


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(_kind_of(kind) for kind in kinds)
