"""The values a request body decodes to, and the operations every field reader needs on them.

Rules:

- JSON integers of up to :data:`MAX_INT_DIGITS` digits are ``int``; longer ones stay text as
  :class:`LongNumber`, because Python refuses to convert more than 4300 digits and no amount
  needs more than 19.
- JSON numbers with a fraction or an exponent are :class:`~decimal.Decimal`, read from their
  exact text, so ``12.345`` is never rounded on its way to the amount rules.
- The literals ``NaN``, ``Infinity`` and ``-Infinity`` (Python's json accepts them) are floats.
- Objects are :class:`JsonObject`: a dict holding each key's last value that also remembers the
  values a repeated key had before (:meth:`JsonObject.given` lists them all), so no reader has to
  take the last value on trust. Form-encoded bodies decode to the same shapes.
- Nothing is nested deeper than :data:`MAX_DEPTH`: the body decoder refuses deeper JSON, so the
  recursive helpers here stay far from the interpreter's recursion limit.

Shortcut (:mod:`ingest.parsing.shortcuts`): an object's pairs are copied in one ``dict.update``,
which keeps the first position and the last value of a repeated key just as ``put`` does; only
when that shows a repeated key (fewer keys than pairs) are the pairs put one by one, to record it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

from ingest.parsing import shortcuts

MAX_INT_DIGITS = 100
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class LongNumber:
    """A JSON integer too long to convert: its text, sign included."""

    text: str

    @property
    def negative(self) -> bool:
        return self.text.startswith("-")


class JsonObject(dict[str, "JsonValue"]):
    """A decoded object. ``repeats`` maps each key given more than once to the values it had
    before its last one (which the dict holds), in the order given."""

    __slots__ = ("repeats",)

    def __init__(self) -> None:
        # dict.__init__ without arguments does nothing: the dict is empty from __new__.
        self.repeats: dict[str, list[JsonValue]] = {}

    def put(self, key: str, value: JsonValue) -> None:
        """Set ``key``; a repeated key keeps its first position and takes the last value, and
        its earlier values are kept in ``repeats``."""
        if key in self:
            self.repeats.setdefault(key, []).append(self[key])
        self[key] = value

    def given(self, key: str) -> list[JsonValue]:
        """Every value given for ``key`` (which must be present), in order."""
        earlier = self.repeats.get(key)
        return [self[key]] if earlier is None else [*earlier, self[key]]


JsonValue: TypeAlias = "bool | int | float | Decimal | str | LongNumber | list[JsonValue] | JsonObject | None"


def json_int(text: str) -> int | LongNumber:
    """The ``parse_int`` hook of the body decoder."""
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else LongNumber(text)


def json_object(pairs: list[tuple[str, JsonValue]]) -> JsonObject:
    """The ``object_pairs_hook`` of the body decoder."""
    result = JsonObject()
    if shortcuts.ENABLED:
        result.update(pairs)
        if len(result) == len(pairs):
            return result
        result = JsonObject()
    for key, value in pairs:
        result.put(key, value)
    return result


def kind_of(value: JsonValue) -> str:
    """The JSON name of a value's type, for messages (``"a boolean"``, ``"an object"``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal | LongNumber):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _same_values(left: list[JsonValue], right: list[JsonValue]) -> bool:
    return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right, strict=True))


def same_value(left: JsonValue, right: JsonValue) -> bool:
    """JSON equality: ``1``, ``1.0`` and ``true`` differ (Python's ``==`` says they are equal)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list) and isinstance(right, list):
        return _same_values(left, right)
    if isinstance(left, JsonObject) and isinstance(right, JsonObject):
        # Every value of a repeated key counts: {"a": 1, "a": 2} is not {"a": 2}.
        return left.keys() == right.keys() and all(
            _same_values(left.given(key), right.given(key)) for key in left
        )
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return left == right


def _number_text(value: float | Decimal) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def to_json_text(value: JsonValue) -> str:
    """Compact JSON text of a decoded value; numbers keep their decoded text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        return _number_text(value)
    if isinstance(value, LongNumber):
        return value.text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(to_json_text(item) for item in value) + "]"
    items = (f"{json.dumps(key, ensure_ascii=False)}:{to_json_text(item)}" for key, item in value.items())
    return "{" + ",".join(items) + "}"


def as_text(value: JsonValue) -> str:
    """A value as the merchant would read it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else to_json_text(value)
