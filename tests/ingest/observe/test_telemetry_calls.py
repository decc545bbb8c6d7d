"""The Python calls telemetry makes on the payment path: each one costs this interpreter several
hundred instructions, and a two-step payment has six spans and seven events. What the calls do is
held by the other tests of this folder; these keep calls taken off the path from coming back."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

from opentelemetry.sdk.resources import Resource

from ingest.observe.spans import Spans, current


def _python_calls(function: Callable[..., object], *args: object) -> list[str]:
    """The names of the Python functions called while ``function(*args)`` runs (itself included);
    a coroutine it returns is closed unawaited (the records' own work is not measured)."""
    calls: list[str] = []

    def profile(frame: FrameType, what: str, _: Any) -> None:
        if what == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        made = function(*args)
    finally:
        sys.setprofile(None)
    if isinstance(made, Coroutine):
        made.close()
    return calls


def test_a_server_span_ends_in_one_call() -> None:
    """As a child span ends (its ``__exit__``): its end, its watcher and its export were three more
    calls, once a request."""
    spans = Spans(Resource.create({}), None)
    record, token = spans.start_server("POST /v1/payments", {})
    ended: list[str] = []
    record.on_end = lambda: ended.append("ended")
    calls = _python_calls(spans.end_server, record, token)
    assert calls == ["end_server", "__exit__", "<lambda>"]
    assert ended == ["ended"] and record.end_ns >= record.start_ns and current.get() is None
