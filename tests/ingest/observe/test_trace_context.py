"""A caller's ``traceparent`` is continued, and its sampling decision kept: a trace the caller
chose not to sample (flags ``00``) is not exported, as OpenTelemetry's default parent-based
sampler does; its ids still tie the log lines to the caller's trace, and its payment counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.observe.spans import parse_traceparent
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


# W3C Trace Context (level 1, section 3.2, and its test suite): a header that breaks the format in
# any way starts a new trace; only lowercase hex, exact lengths, no all-zero id, no version ff.
INVALID = {
    "uppercase trace id": f"00-{TRACE_ID.upper()}-{CALLER_SPAN}-01",
    "uppercase parent id": f"00-{TRACE_ID}-{CALLER_SPAN.upper()}-01",
    "uppercase version": f"0A-{TRACE_ID}-{CALLER_SPAN}-01",
    "version ff": f"ff-{TRACE_ID}-{CALLER_SPAN}-01",
    "all-zero trace id": f"00-{'0' * 32}-{CALLER_SPAN}-01",
    "all-zero parent id": f"00-{TRACE_ID}-{'0' * 16}-01",
    "version 00 with a field after the flags": f"00-{TRACE_ID}-{CALLER_SPAN}-01-extra",
    "a later version with no dash after the flags": f"cc-{TRACE_ID}-{CALLER_SPAN}-01.extra",
    "a 0x prefix in the trace id": f"00-0x{TRACE_ID[2:]}-{CALLER_SPAN}-01",
    "an underscore in the trace id": f"00-{TRACE_ID[:5]}_{TRACE_ID[6:]}-{CALLER_SPAN}-01",
    "a space in the parent id": f"00-{TRACE_ID}- {CALLER_SPAN[1:]}-01",
    "a sign in the version": f"+0-{TRACE_ID}-{CALLER_SPAN}-01",
    "a sign in the flags": f"00-{TRACE_ID}-{CALLER_SPAN}-+1",
    "one-digit flags": f"00-{TRACE_ID}-{CALLER_SPAN}-1",
    "three-digit flags": f"00-{TRACE_ID}-{CALLER_SPAN}-011",
    "no flags": f"00-{TRACE_ID}-{CALLER_SPAN}-",
    "two headers folded into one": f"00-{TRACE_ID}-{CALLER_SPAN}-01,00-{TRACE_ID}-{CALLER_SPAN}-01",
}


@pytest.mark.parametrize("header", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_traceparent_is_not_continued(header: str) -> None:
    assert parse_traceparent(header) is None


@pytest.mark.parametrize(
    ("header", "sampled"),
    [
        (f"00-{TRACE_ID}-{CALLER_SPAN}-01", True),
        (f"00-{TRACE_ID}-{CALLER_SPAN}-00", False),
        (f" \t00-{TRACE_ID}-{CALLER_SPAN}-09\t ", True),  # optional white space; unknown flags kept out
        (f"cc-{TRACE_ID}-{CALLER_SPAN}-01-what-the-future-will-be-like", True),
        (f"cc-{TRACE_ID}-{CALLER_SPAN}-00", False),
    ],
)
def test_a_valid_traceparent_is_continued(header: str, sampled: bool) -> None:
    assert parse_traceparent(header) == (int(TRACE_ID, 16), int(CALLER_SPAN, 16), sampled)


def _server_span(traced: Traced) -> ReadableSpan:
    (server,) = [span for span in traced.spans.get_finished_spans() if span.name == "POST /v1/payments"]
    return server


async def test_an_uppercase_traceparent_starts_a_new_trace(traced: Traced) -> None:
    await traced.pay(f"00-{TRACE_ID.upper()}-{CALLER_SPAN}-01")

    server = _server_span(traced)
    assert server.parent is None
    assert server.context is not None and f"{server.context.trace_id:032x}" != TRACE_ID


async def test_two_traceparent_headers_start_a_new_trace(traced: Traced) -> None:
    header = (b"traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01".encode())
    other = (b"traceparent", f"00-{TRACE_ID[::-1]}-{CALLER_SPAN}-01".encode())
    headers = [ACME, JSON, header, other]
    answer = await call(traced.app, "POST", "/v1/payments", headers, body_of(b'{"amount": 10000}'))
    assert answer.status == 200, answer.body
    telemetry = traced.parts.telemetry
    assert telemetry is not None and telemetry.spans.drain is not None and telemetry.spans.drain.flush()

    server = _server_span(traced)
    assert server.parent is None
    assert server.context is not None
    assert f"{server.context.trace_id:032x}" not in {TRACE_ID, TRACE_ID[::-1]}


async def test_the_request_id_an_answer_gives_finds_its_trace(traced: Traced) -> None:
    # Answers that record no event have no log line: the server span is where their id leads.
    refused = await call(traced.app, "POST", "/v1/payments", [JSON], body_of(b'{"amount": 500}'))
    missing = await call(traced.app, "GET", "/v1/payments/pay_unknown", [ACME], body_of(b""))
    telemetry = traced.parts.telemetry
    assert telemetry is not None and telemetry.spans.drain is not None and telemetry.spans.drain.flush()

    assert (refused.status, missing.status) == (401, 404)
    found = {
        str(span.attributes.get("payorch.request_id")): span.name
        for span in traced.spans.get_finished_spans()
        if span.attributes
    }
    assert found[refused.headers["request-id"]] == "POST /v1/payments"
    assert found[missing.headers["request-id"]] == "GET /v1/payments/{payment_id}"
