"""A span's length is measured on the monotonic clock: a wall clock stepped during a span (NTP,
an operator) moves where the span starts, never how long it lasted."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource

import ingest.observe.spans as spans_module
from ingest.observe.spans import SpanRecord, Spans

STEP_NS = -3600 * 10**9  # the wall clock stepped back an hour


class SteppedTime:
    """The ``time`` functions spans read: the wall clock steps when told, the monotonic one
    moves a millisecond at each reading."""

    def __init__(self) -> None:
        self.wall_ns = 1_800_000_000 * 10**9
        self.monotonic_ns = 0

    def time_ns(self) -> int:
        return self.wall_ns

    def perf_counter_ns(self) -> int:
        self.monotonic_ns += 10**6
        return self.monotonic_ns

    def step_wall(self) -> None:
        self.wall_ns += STEP_NS


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SteppedTime:
    stepped = SteppedTime()
    monkeypatch.setattr(spans_module, "time", stepped)
    return stepped


def _lasted(record: SpanRecord) -> int:
    assert record.end_time is not None and record.start_time is not None  # ended
    return record.end_time - record.start_time


def test_a_span_the_wall_clock_stepped_back_during_lasts_what_the_monotonic_clock_says(
    clock: SteppedTime,
) -> None:
    started = clock.wall_ns
    with Spans(Resource.create({}), None).span("attempt", {}) as record:
        clock.step_wall()

    assert (record.start_time, _lasted(record)) == (started, 10**6)


def test_a_server_span_the_wall_clock_stepped_back_during_lasts_what_the_monotonic_clock_says(
    clock: SteppedTime,
) -> None:
    spans = Spans(Resource.create({}), None)
    record, token = spans.start_server("POST /v1/payments", {})
    clock.step_wall()
    spans.end_server(record, token)

    assert _lasted(record) == 10**6
