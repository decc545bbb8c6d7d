"""The configuration file's YAML, read strictly: what PyYAML's safe loader lets through quietly is
refused, each with its line.

- A key given twice in one mapping, at any level (PyYAML keeps the last one, so the first would be
  silently ignored). Keys brought in by a merge (``<<: *base``) may still be overridden: that is
  what a merge is for.
- A chain of merges that grows exponentially (each mapping merging nine copies of the one before:
  PyYAML copies every pair, repeats included, so 30 levels are 9**30 pairs): a merge here brings
  in each key once, the one that counts, so a "billion laughs" costs what its text does.
- Nesting deeper than :data:`MAX_DEPTH` (the composer recurses once per level, and a few hundred
  levels exhaust the interpreter's stack; a configuration needs fewer than ten).
- Characters YAML does not allow (a NUL byte, other control characters), with their position.
- A number YAML 1.1 (PyYAML's) reads other than it looks: ``1:30`` is 90 in base 60 and
  ``010000`` is 4096 in octal (YAML 1.2 reads it as 10000), so ``timeout_ms: 1:30`` would quietly
  be 90 ms.
- An integer beyond :data:`MAX_INTEGER` (no field takes one; past 4300 digits Python cannot even
  read or print it, and a float field cannot hold it).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.reader import ReaderError

from ingest.errors import ConfigFileError

#: How deep collections may nest; far more than a configuration needs, far less than the stack holds.
MAX_DEPTH = 100
MERGE_TAG = "tag:yaml.org,2002:merge"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
#: The largest integer in magnitude the file may hold: every field's own bound is far below it.
MAX_INTEGER = 2**63 - 1
_SHOWN_KEY = 40


class _StrictError(MarkedYAMLError):
    """What this loader refuses itself (a key given twice, nesting too deep): its problem says
    what to do, where PyYAML's own need the advice of :data:`_ADVICE`."""


class _ValueRefusedError(_StrictError):
    """A value that is valid YAML but that no field could take (its problem says why)."""


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
                raise _StrictError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    getattr(event, "start_mark", None),
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_lines: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # PyYAML refuses it itself, with its position
            try:
                first = first_lines.get(key)
            except TypeError:  # a tuple holding a list: unhashable after all
                continue
            if first is not None:
                raise _StrictError(
                    None, None, f"duplicate key {_show(key)} (first at line {first})", key_node.start_mark
                )
            first_lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def flatten_mapping(self, node: MappingNode) -> None:
        own = sum(1 for key_node, _ in node.value if key_node.tag != MERGE_TAG)
        super().flatten_mapping(node)  # node.value: what the merges bring in, then the mapping's own
        merged = node.value[: len(node.value) - own]
        if not merged:
            return
        # Of the pairs a merge brings in, the constructor keeps the last of each key, and none the
        # mapping sets itself: only those are kept, so that merging this mapping costs its keys.
        own_keys = {_identity(key_node) for key_node, _ in node.value[len(merged) :]}
        last = {_identity(key_node): index for index, (key_node, _) in enumerate(merged)}
        node.value = [
            pair
            for index, pair in enumerate(merged)
            if last[_identity(pair[0])] == index and _identity(pair[0]) not in own_keys
        ] + node.value[len(merged) :]

    def construct_yaml_int(self, node: ScalarNode) -> int:
        try:
            value: int = super().construct_yaml_int(node)
        except ValueError:  # more decimal digits than Python converts (4300)
            value = MAX_INTEGER + 1
        if abs(value) > MAX_INTEGER:
            problem = f"integer {_show(node.value)} is out of range (at most {MAX_INTEGER} either way)"
            raise _ValueRefusedError(None, None, problem, node.start_mark)
        _refuse_misread(node, value)
        return value

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        _refuse_misread(node, value)
        return value


_StrictLoader.add_constructor(INT_TAG, _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor(FLOAT_TAG, _StrictLoader.construct_yaml_float)


def _identity(key_node: Node) -> object:
    """What makes two keys one: a scalar's tag and text, any other key only itself."""
    return (key_node.tag, key_node.value) if isinstance(key_node, ScalarNode) else id(key_node)


def _refuse_misread(node: ScalarNode, value: float) -> None:
    """Refuse a number written in base 60 or with a leading zero (octal): YAML 1.1 reads it as
    ``value``, which is not what it looks like."""
    text = node.value.replace("_", "")
    digits = text.lstrip("+-")
    if ":" in digits:
        problem = f"{_show(node.value)} is a base-60 number in YAML 1.1, so {value:g}"
        advice = f"write {value:g}, or quote it if it is text"
    elif len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        problem = f"{_show(node.value)} is an octal number in YAML 1.1, so {value:g}"
        advice = f"write {value:g}, or {int(text, 10)} without the leading zero, or quote it if it is text"
    else:
        return
    raise _ValueRefusedError(None, None, f"{problem}: {advice}", node.start_mark)


def _show(key: object) -> str:
    text = repr(key)
    return text if len(text) <= _SHOWN_KEY else f"{text[: _SHOWN_KEY - 1]}…"


def load_yaml(text: str, source: str) -> object:
    """The document in ``text``; every problem is a :class:`ConfigFileError` naming ``source`` and
    the line and column."""
    try:
        loader = _StrictLoader(text)  # a str is checked for characters YAML forbids here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ReaderError as error:
        raise ConfigFileError(source, _where(text, error.position), _bad_character(error)) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = "(unknown position)" if mark is None else _at(mark)
        shown = error.problem or "cannot be parsed"
        if not isinstance(error, _ValueRefusedError):
            shown = f"invalid YAML: {shown if isinstance(error, _StrictError) else _explained(error)}"
        raise ConfigFileError(source, where, shown) from None
    except yaml.YAMLError as error:
        raise ConfigFileError(source, "(unknown position)", f"invalid YAML: {error}") from None


def _at(mark: Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _explained(error: MarkedYAMLError) -> str:
    """PyYAML's problem with its context (``while parsing a flow sequence at line 1, column 17``:
    where the thing it could not finish began), then what to do. Only the problem was said: ``but
    found another document``, not that the file must hold one, nor where the first began."""
    problem = error.problem or error.context or "cannot be parsed"
    context, since = error.context, error.context_mark
    if error.problem and context and since is not None:  # a context without a mark says nothing
        same = error.problem_mark is not None and _at(error.problem_mark) == _at(since)
        begun = f"{context}{'' if same else f' at {_at(since)}'}"
        problem = f"{begun}{', ' if problem.startswith('but ') or context.endswith('occurrence') else ': '}"
        problem += error.problem
    said = f"{error.context or ''} {error.problem or ''}"
    for words, advice in _ADVICE:
        if all(word in said for word in words):
            return f"{problem}: {advice.format(since='there' if since is None else _at(since))}"
    return f"{problem}: {_ANY_YAML}"


_ANY_YAML = (
    "correct the YAML there: indent with spaces, put ': ' after each key, close every quote and bracket"
)
#: What to do about PyYAML's problems, found by words of its context and problem (the first that
#: matches); ``{since}`` is where the context began.
_ADVICE: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("found another document",),
        "a configuration is one YAML document: remove this '---' and what follows, or merge the two",
    ),
    (
        ("expected '<document start>'",),
        "a configuration is one YAML document: remove the '...' before this line, or what follows it",
    ),
    (("found character '\\t'",), "indent with spaces: YAML takes no tabs there"),
    (("cannot start any token",), "quote a value that begins with this character"),
    (
        ("mapping values are not allowed here",),
        "quote a value that holds ': ', or put a nested key on a line of its own, indented under its key",
    ),
    (
        ("undefined alias",),
        "define the anchor (&name) before its alias (*name), or quote a value starting with *",
    ),
    (("could not determine a constructor",), "remove the tag (!!...): the file takes plain YAML values only"),
    (
        ("expected <block end>",),
        "check the indentation: the keys of one mapping (the items of one list) line up, with spaces",
    ),
    (("unknown escape character",), "in double quotes write a backslash as \\\\, or use single quotes"),
    (("quoted scalar", "end of stream"), "close the quote opened at {since}"),
    (("flow sequence",), "close the '[' opened at {since} with ']', with a ',' between items"),
    (("flow mapping",), "close the '{{' opened at {since} with '}}', with a ',' between pairs"),
    (
        ("could not find expected ':'",),
        "write 'key: value' on each line of a mapping, or indent a line that continues the one before",
    ),
    (("duplicate anchor",), "give each anchor (&name) a name of its own"),
    (("an anchor",), "name an anchor with letters, digits, - and _ only, or quote a value starting with &"),
    (("an alias",), "name an alias with letters, digits, - and _ only, or quote a value starting with *"),
    (("block scalar",), "after | or > only a digit, + or - may follow on that line"),
    (("unhashable key",), "a key must be a plain value, not a list or a mapping"),
)


def _where(text: str, position: int) -> str:
    line_start = text.rfind("\n", 0, position) + 1
    return f"line {text.count(chr(10), 0, position) + 1}, column {position - line_start + 1}"


def _bad_character(error: ReaderError) -> str:
    code = error.character if isinstance(error.character, int) else ord(error.character)
    kind = "control character" if code < 0x20 or 0x7F <= code < 0xA0 else "character"
    return f"invalid YAML: {kind} U+{code:04X} is not allowed in YAML text"
