"""A caller's ``traceparent`` is continued, and its sampling decision kept: a trace the caller
chose not to sample (flags ``00``) is not exported, as OpenTelemetry's default parent-based
sampler does; its ids still tie the log lines to the caller's trace, and its payment counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call
from tests.ingest.observe.test_seed_observed import Lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@dataclass
class Traced:
    app: object
    parts: Parts
    spans: InMemorySpanExporter
    lines: Lines

    async def pay(self, traceparent: str) -> None:
        headers = [ACME, JSON, (b"traceparent", traceparent.encode())]
        answer = await call(self.app, "POST", "/v1/payments", headers, body_of(b'{"amount": 10000}'))
        assert answer.status == 200, answer.body
        telemetry = self.parts.telemetry
        assert telemetry is not None and telemetry.logs is not None and telemetry.spans.drain is not None
        assert telemetry.spans.drain.flush() and telemetry.logs.drain.flush()


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Traced]:
    spans, lines = InMemorySpanExporter(), Lines()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        log_stream=lines,  # type: ignore[arg-type]
        span_exporter=spans,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Traced(application, application.state.parts, spans, lines)


async def test_a_sampled_caller_trace_is_continued_and_exported(traced: Traced) -> None:
    await traced.pay(f"00-{TRACE_ID}-{CALLER_SPAN}-01")

    spans = traced.spans.get_finished_spans()
    assert sorted(span.name for span in spans) == sorted(
        ["POST /v1/payments", "plan", "step", "step", "attempt", "attempt"]
    )
    assert {f"{span.context.trace_id:032x}" for span in spans if span.context is not None} == {TRACE_ID}
    (server,) = [span for span in spans if span.name == "POST /v1/payments"]
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN


async def test_a_trace_the_caller_did_not_sample_is_not_exported(traced: Traced) -> None:
    await traced.pay(f"00-{TRACE_ID}-{CALLER_SPAN}-00")

    assert traced.spans.get_finished_spans() == ()
    events = [line for line in traced.lines.records() if line.get("type") is not None]
    assert [line["type"] for line in events][:2] == ["PaymentReceived", "PlanBuilt"]
    assert {line["trace_id"] for line in events} == {TRACE_ID}
    # Sampling decides what is exported, never what is counted.
    metrics = traced.parts.metrics
    attempts = [("applepay_sim", "apple_pay"), ("stripe_sim", "card")]
    for processor, method in attempts:
        labels = {"processor": processor, "method": method, "outcome": "succeeded"}
        assert metrics.registry.get_sample_value("payorch_processor_attempts_total", labels) == 1.0
