"""Breaking changes between two versions of a JSON Schema (draft 2020-12).

A change breaks readers or writers of the old version when it removes a property, changes or
narrows a type, removes an enum value (or adds an enum where any value was allowed), tightens a
bound or pattern, constrains the items of an array whose items were free, newly requires a
property, stops requiring one (readers relied on it), or turns ``additionalProperties`` false.
Local ``$ref`` pointers (``#/$defs/...``) are followed.

The alternatives of ``anyOf``, ``oneOf`` and ``allOf`` are compared one by one when their number
is unchanged. Any other new or changed constraint the comparison does not reason about (a new
``anyOf``, a ``format``, ``not``, ``additionalProperties`` as a schema, ...) is reported too: it
may narrow what the schema accepts, so it needs a look, or a new version.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Schema = Mapping[str, Any]

#: Bounds that narrow what a schema accepts when they grow, and those that narrow when they shrink.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_MAX_REF_HOPS = 32
_COMBINATORS = ("anyOf", "oneOf", "allOf")
#: Keywords whose new or changed value is reported as such: they can narrow what is accepted.
_UNMODELLED = (
    "not",
    "if",
    "then",
    "else",
    "format",
    "multipleOf",
    "uniqueItems",
    "prefixItems",
    "contains",
    "minContains",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
)


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """One message per breaking change from ``old`` to ``new``, naming the property path."""
    return list(_Comparison(old, new).compare(old, new, ""))


class _Comparison:
    __slots__ = ("_new_root", "_old_root", "_seen")

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self._old_root = old_root
        self._new_root = new_root
        self._seen: set[tuple[int, int]] = set()

    def compare(self, old: object, new: object, path: str) -> Iterator[str]:
        old = _resolve(self._old_root, old)
        new = _resolve(self._new_root, new)
        if (id(old), id(new)) in self._seen:
            return
        self._seen.add((id(old), id(new)))
        where = path or "(root)"
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            if new is False and old is not False:
                yield f"{where}: now accepts no value"
            return
        yield from _types(old, new, where)
        yield from _enums(old, new, where)
        yield from _bounds(old, new, where)
        yield from _required(old, new, path)
        if old.get("additionalProperties") is not False and new.get("additionalProperties") is False:
            yield f"{where}: additionalProperties turned false"
        elif new.get("additionalProperties", True) not in (True, False, old.get("additionalProperties")):
            yield f"{where}: additionalProperties constrained"
        yield from _unmodelled(old, new, where)
        for keyword in _COMBINATORS:
            yield from self._combinator(old, new, keyword, path)
        old_properties: Mapping[str, object] = old.get("properties", {})
        new_properties: Mapping[str, object] = new.get("properties", {})
        for name, old_property in old_properties.items():
            child = _child(path, name)
            if name not in new_properties:
                yield f"{child}: property removed"
            else:
                yield from self.compare(old_property, new_properties[name], child)
        if "items" in old and "items" in new:
            yield from self.compare(old["items"], new["items"], f"{path}[]")
        elif "items" in new and new["items"] not in (True, {}):
            yield f"{path}[]: items constrained where any item was allowed"

    def _combinator(self, old: Schema, new: Schema, keyword: str, path: str) -> Iterator[str]:
        old_parts, new_parts = old.get(keyword), new.get(keyword)
        if new_parts is None:
            return
        if (
            not isinstance(old_parts, list)
            or not isinstance(new_parts, list)
            or not _fits(keyword, old_parts, new_parts)
        ):
            yield f"{path or '(root)'}: {keyword} added or changed"
            return
        for index, (old_part, new_part) in enumerate(zip(old_parts, new_parts, strict=False)):
            yield from self.compare(old_part, new_part, f"{path}({keyword}[{index}])")


def _fits(keyword: str, old: list[object], new: list[object]) -> bool:
    """Whether ``new`` alternatives can be compared one by one with ``old``: alternatives added at
    the end of an ``anyOf`` only widen it; anywhere else they may narrow it."""
    return len(new) >= len(old) if keyword == "anyOf" else len(new) == len(old)


def _unmodelled(old: Schema, new: Schema, where: str) -> Iterator[str]:
    for keyword in _UNMODELLED:
        if keyword in new and new[keyword] != old.get(keyword):
            yield f"{where}: {keyword} added or changed"


def _resolve(root: Schema, schema: object) -> object:
    """Follow local ``$ref`` pointers; a schema with a remote or broken ``$ref`` stays as it is."""
    for _ in range(_MAX_REF_HOPS):
        if not isinstance(schema, Mapping) or not isinstance(schema.get("$ref"), str):
            return schema
        reference: str = schema["$ref"]
        if not reference.startswith("#"):
            return schema
        target: object = root
        for token in reference[1:].split("/")[1:]:
            key = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or key not in target:
                return schema
            target = target[key]
        schema = target
    return schema


def _type_set(schema: Schema) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _types(old: Schema, new: Schema, where: str) -> Iterator[str]:
    old_types, new_types = _type_set(old), _type_set(new)
    if new_types is None:
        return
    if old_types is None:
        yield f"{where}: type narrowed from any to {_show(new_types)}"
        return
    if "number" in new_types:
        new_types = new_types | {"integer"}
    lost = old_types - new_types
    if lost:
        yield f"{where}: type changed from {_show(old_types)} to {_show(_type_set(new) or set())}"


def _enum(schema: Schema) -> list[object] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _enums(old: Schema, new: Schema, where: str) -> Iterator[str]:
    old_values, new_values = _enum(old), _enum(new)
    if new_values is None:
        return
    if old_values is None:
        yield f"{where}: values narrowed to an enum"
        return
    for value in old_values:
        if value not in new_values:
            yield f"{where}: enum value {value!r} removed"


def _bounds(old: Schema, new: Schema, where: str) -> Iterator[str]:
    for keyword in _LOWER_BOUNDS:
        if keyword in new and (keyword not in old or new[keyword] > old[keyword]):
            yield f"{where}: {keyword} tightened to {new[keyword]!r}"
    for keyword in _UPPER_BOUNDS:
        if keyword in new and (keyword not in old or new[keyword] < old[keyword]):
            yield f"{where}: {keyword} tightened to {new[keyword]!r}"
    if "pattern" in new and new.get("pattern") != old.get("pattern"):
        yield f"{where}: pattern changed to {new['pattern']!r}"


def _required(old: Schema, new: Schema, path: str) -> Iterator[str]:
    old_required = set(old.get("required", ()))
    new_required = set(new.get("required", ()))
    for name in sorted(new_required - old_required):
        yield f"{_child(path, name)}: property newly required"
    removed = old.get("properties", {}).keys() - new.get("properties", {}).keys()
    for name in sorted(old_required - new_required - removed):
        yield f"{_child(path, name)}: property no longer required"


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(types: set[str]) -> str:
    return "|".join(sorted(types))
