"""The seed's split payment (Apple Pay $60, then card $40), watched: its spans, its log lines and
its metric increments, all tied to the request and carrying the global tags."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, Answer, body_of, call

TAGS = {"service.name": "payorch", "deployment.environment.name": "staging"}
EVENTS = [
    "PaymentReceived",
    "PlanBuilt",
    "StepAttempted",
    "StepSucceeded",
    "StepAttempted",
    "StepSucceeded",
    "PaymentCompleted",
]


class Lines(io.RawIOBase):
    """A binary stream the log thread writes to; the test reads its JSON lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        with self._lock:
            self._data += data
        return len(data)

    def records(self) -> list[dict[str, object]]:
        with self._lock:
            text = bytes(self._data)
        return [orjson.loads(line) for line in text.splitlines() if line]


@dataclass
class Watched:
    app: object
    parts: Parts
    spans: InMemorySpanExporter
    lines: Lines

    def flush(self) -> None:
        telemetry = self.parts.telemetry
        assert telemetry is not None and telemetry.logs is not None and telemetry.spans.drain is not None
        assert telemetry.spans.drain.flush() and telemetry.logs.drain.flush()


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    spans, lines = InMemorySpanExporter(), Lines()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        environment="staging",
        log_stream=lines,  # type: ignore[arg-type]
        span_exporter=spans,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Watched(application, application.state.parts, spans, lines)


async def pay(watched: Watched) -> Answer:
    answer = await call(
        watched.app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "100.00", "currency": "USD"}')
    )
    assert answer.status == 200, answer.body
    watched.flush()
    return answer


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_the_split_payment_has_a_server_span_with_plan_step_and_attempt_children(
    watched: Watched,
) -> None:
    answer = await pay(watched)
    spans = watched.spans.get_finished_spans()

    assert sorted(span.name for span in spans) == sorted(
        ["POST /v1/payments", "plan", "step", "step", "attempt", "attempt"]
    )
    (server,) = by_name(spans, "POST /v1/payments")
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/payments"
    assert server.attributes["http.response.status_code"] == 200
    assert server.context is not None
    trace_id = server.context.trace_id
    assert all(span.context is not None and span.context.trace_id == trace_id for span in spans)
    (plan,) = by_name(spans, "plan")
    steps = sorted(by_name(spans, "step"), key=lambda span: int(span.attributes["payorch.step_index"]))  # type: ignore[index,arg-type]
    for child in (plan, *steps):
        assert child.parent is not None and child.parent.span_id == server.context.span_id
    attempts = {}
    for attempt in by_name(spans, "attempt"):
        assert attempt.attributes is not None and attempt.parent is not None
        parent = next(
            s for s in steps if s.context is not None and s.context.span_id == attempt.parent.span_id
        )
        attempts[attempt.attributes["payorch.processor_id"]] = (
            attempt.attributes["payorch.method"],
            attempt.attributes["payorch.outcome"],
            parent.attributes["payorch.amount_cents"],  # type: ignore[index]
        )
    assert attempts == {
        "applepay_sim": ("apple_pay", "succeeded", 6000),
        "stripe_sim": ("card", "succeeded", 4000),
    }
    for span in spans:
        assert {key: span.resource.attributes[key] for key in TAGS} == TAGS
        assert span.resource.attributes["service.version"]
    assert answer.headers["request-id"]


async def test_every_domain_event_is_a_log_line_tied_to_the_request_and_its_span(watched: Watched) -> None:
    answer = await pay(watched)
    request_id = answer.headers["request-id"]
    payment_id = answer.json()["payment_id"]
    spans = watched.spans.get_finished_spans()
    (server,) = by_name(spans, "POST /v1/payments")
    assert server.context is not None
    span_ids = {f"{span.context.span_id:016x}": span.name for span in spans if span.context is not None}

    events = [line for line in watched.lines.records() if line.get("payment_id") == payment_id]
    assert [line["event"] for line in events] == EVENTS
    for line in events:
        assert line["request_id"] == request_id
        assert line["trace_id"] == f"{server.context.trace_id:032x}"
        assert {key: line[key] for key in TAGS} == TAGS
        assert line["service.version"] and line["level"] == "info" and line["timestamp"]
    assert [span_ids[str(line["span_id"])] for line in events] == [
        "POST /v1/payments",
        "plan",
        "attempt",
        "attempt",
        "attempt",
        "attempt",
        "POST /v1/payments",
    ]
    assert events[-1]["total_processed"] == 10000


async def test_the_payment_moves_the_metrics_of_section_8(watched: Watched) -> None:
    await pay(watched)
    scraped = await call(watched.app, "GET", "/metrics", [], body_of(b""))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
    }

    assert samples[("payorch_payments_total", (("status", "succeeded"),))] == 1
    for processor, method in (("applepay_sim", "apple_pay"), ("stripe_sim", "card")):
        labels = (("method", method), ("outcome", "succeeded"), ("processor", processor))
        assert samples[("payorch_processor_attempts_total", labels)] == 1
        assert samples[("payorch_step_latency_seconds_count", (("processor", processor),))] == 1
    assert samples[("payorch_payment_latency_seconds_count", (("status", "succeeded"),))] == 1
    assert samples[("payorch_events_written_total", ())] == len(EVENTS)
    assert ("payorch_event_queue_depth", ()) in samples
    assert not any(name == "payorch_contract_violations_total" for name, _ in samples)
    assert not any(name == "payorch_compensations_total" for name, _ in samples)
    # A bucket on the merchant's processor timeout (2,000 ms): "within the timeout" is a count.
    bucket = ("payorch_step_latency_seconds_bucket", (("le", "2.0"), ("processor", "stripe_sim")))
    assert samples[bucket] == 1


async def test_methods_clients_invent_name_one_span_and_one_label_value(watched: Watched) -> None:
    # Any token is a method to HTTP (an ASGI server may pass them on): neither span names nor
    # metric series may grow with what clients send.
    methods = [f"X{n:03}" for n in range(40)]
    for method in methods:
        await call(watched.app, method, "/v1/payments", [ACME], body_of(b""))
        await call(watched.app, method, f"/nowhere/{method}", [], body_of(b""))
    watched.flush()
    scraped = await call(watched.app, "GET", "/metrics", [], body_of(b""))

    servers = [span for span in watched.spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    invented = [span for span in servers if span.name != "GET /metrics"]
    assert len(invented) == 2 * len(methods)
    assert {span.name for span in invented} == {"HTTP /v1/payments", "HTTP"}
    assert {(span.attributes or {}).get("http.request.method") for span in invented} == {"_OTHER"}
    originals = sorted(str((span.attributes or {}).get("http.request.method_original")) for span in invented)
    assert originals == sorted(methods * 2)
    responses = {
        tuple(sorted(sample.labels.items()))
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
        if sample.name == "payorch_http_responses_total" and sample.labels["method"] != "GET"
    }
    assert responses == {
        (("code", "405"), ("method", "other"), ("route", "/v1/payments")),
        (("code", "404"), ("method", "other"), ("route", "unmatched")),
    }
