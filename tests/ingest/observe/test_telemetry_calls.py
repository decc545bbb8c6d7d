"""The Python calls telemetry makes on the payment path: each one costs this interpreter several
hundred instructions, and a two-step payment has six spans and seven events. What the calls do is
held by the other tests of this folder; these keep calls taken off the path from coming back."""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from opentelemetry.sdk.resources import Resource

from engine.events import PaymentReceived, StepSucceeded, event_ids
from engine.observer import ATTEMPT_SPAN, OUTCOME, SUCCEEDED
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.api.metrics import ApiMetrics
from ingest.observe.spans import Spans, current
from ingest.observe.telemetry import GlobalTags, ObservedRecords, Telemetry
from ingest.records import MemoryRecords


def _python_calls(function: Callable[..., object], *args: object) -> list[str]:
    """The names of the Python functions called while ``function(*args)`` runs (itself included);
    a coroutine it returns is closed unawaited (the records' own work is not measured)."""
    calls: list[str] = []

    def profile(frame: FrameType, what: str, _: Any) -> None:
        if what == "call":
            calls.append(frame.f_code.co_name)

    # Without collections meanwhile: a callback of the collector's (Hypothesis installs one, to
    # time its own tests) is a Python call too, made whenever a collection happens to start.
    collecting = gc.isenabled()
    gc.disable()
    sys.setprofile(profile)
    try:
        made = function(*args)
    finally:
        sys.setprofile(None)
        if collecting:
            gc.enable()
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
    assert ended == ["ended"] and record.end_time is not None and record.start_time is not None
    assert record.end_time >= record.start_time
    assert current.get() is None


def test_an_event_goes_from_the_records_tee_to_the_drain_in_one_call() -> None:
    """The log pipe's tee is the records' ``emit``: the tee, the log pipe's ``event`` and (before
    that) ``Telemetry.event`` were three calls for each of a payment's seven events. An attempt's
    outcome still reaches its span."""
    telemetry = Telemetry(GlobalTags("test"), ApiMetrics(), exporter=None, log_stream=io.BytesIO())
    tee = ObservedRecords(MemoryRecords(), telemetry)
    ids = event_ids(
        PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_acme"), datetime(2026, 11, 28, tzinfo=UTC)
    )
    received = PaymentReceived(**ids, accepted=True, amount_cents=100, idempotency_key="order-1")
    succeeded = StepSucceeded(
        **ids, step_index=0, processor_id=ProcessorId("stripe_sim"), latency_ms=5, amount=100
    )
    try:
        assert _python_calls(tee.emit, received) == ["emit_observed", "put"]
        with telemetry.span(ATTEMPT_SPAN, {}) as attempt:
            assert _python_calls(tee.emit, succeeded) == ["emit_observed", "watch", "_attempt", "put"]
            assert attempt.attributes[OUTCOME] == SUCCEEDED  # type: ignore[attr-defined]
    finally:
        telemetry.close()
