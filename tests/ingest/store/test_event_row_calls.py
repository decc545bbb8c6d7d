"""What the writer runs to turn one event into its row: every Python function called costs this
interpreter several hundred instructions, and the writer turns every stored event into a row."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import given, settings

import ingest.codec
import ingest.store
from engine.events import DomainEvent, StepFailed
from ingest.codec import events as events_codec
from ingest.store import event_columns
from ingest.store.records import EVENTS
from tests.strategies import events

_STORE = str(Path(ingest.store.__file__).parent)
_CODEC = str(Path(ingest.codec.__file__).parent)


def _python_calls(event: DomainEvent) -> list[tuple[str, str]]:
    """(folder, name) of each Python function called while ``event`` becomes its row; the folder of
    a function written out with ``exec`` (the kind's ``row``) is the store's, which writes it."""
    calls: list[tuple[str, str]] = []

    def profile(frame: FrameType, what: str, _: Any) -> None:
        if what == "call":
            code = frame.f_code
            folder = _STORE if code.co_filename == "<string>" else str(Path(code.co_filename).parent)
            calls.append((folder, code.co_name))

    assert EVENTS.convert is not None
    convert = EVENTS.convert
    convert((1, event))  # the kind's row function is written at its first event, not measured
    sys.setprofile(profile)
    try:
        convert((1, event))
    finally:
        sys.setprofile(None)
    return calls


@settings(max_examples=60, deadline=None)
@given(event=events)
def test_a_row_calls_nothing_in_the_store_for_a_column_its_kind_always_leaves_null(
    event: DomainEvent,
) -> None:
    """Only a ``StepFailed`` has failure details, and the charged amount is read by ``attrgetter``
    (no Python frame): a call returning ``None`` for every other event cost about 600 instructions
    an event. The rows themselves are held to their values by the store's other tests."""
    store_calls = [name for folder, name in _python_calls(event) if folder == _STORE]

    cut = event_columns.cut_of(type(event)).__name__
    assert store_calls == ["_event_row", "row", cut, *(["_details"] if type(event) is StepFailed else [])]


@settings(max_examples=60, deadline=None)
@given(event=events)
def test_a_rows_envelope_bytes_take_one_call_into_the_codec_before_the_kinds_filler(
    event: DomainEvent,
) -> None:
    """The row asks the codec for the envelope itself (``event_to_bytes`` was a call more), and the
    codec works the timestamp's seconds out inline (``timestamp_parts`` was another)."""
    codec_calls = [name for folder, name in _python_calls(event) if folder == _CODEC]

    assert codec_calls[:2] == ["event_to_proto", events_codec._BODIES[type(event)].__name__]
