"""The JSON log: card numbers never leave in it, and the service's own log records (an error
inside a payment) carry the request, its trace and the global tags like the domain events do."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from engine.contracts import default_registry
from engine.decline_codes import DeclineCode
from engine.error_codes import ErrorCode
from engine.events import DomainEvent, PaymentReceived, StepFailed, event_ids
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.codec.event_json import event_json
from ingest.config_file import parse_config
from ingest.observe.logs import (
    _SPLICED,
    PIPED_LOGGERS,
    SERVED_REQUEST,
    LineWriter,
    LogPipe,
    _ids,
    _splices,
    current_request,
    entry,
    served_request,
)
from ingest.observe.spans import Spans
from ingest.records import MemoryRecords, RecordedViolation, ViolationQuery
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, FailingRecords, body_of, call
from tests.ingest.observe.test_seed_observed import Lines
from tests.strategies import events

CARD = "4242424242424242"
PAYMENTS = "/v1/payments"
ADMIN = (b"authorization", b"Bearer adm_e2e_admin")


async def test_a_card_number_in_any_field_is_masked_in_the_log(tmp_path: Path) -> None:
    lines = Lines()
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, log_stream=lines)  # type: ignore[arg-type]
    application = create_app(settings)
    headers = [ACME, JSON, (b"idempotency-key", f"order-{CARD}".encode())]
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        logs = application.state.parts.telemetry.logs
        assert logs.drain.flush()

    assert answer.status == 200
    records = lines.records()
    received = [line for line in records if line["event"] == "PaymentReceived"]
    # The desk keeps such a key masked and tagged (ingest.api.idempotency.KeyKeeper).
    keys = [line["idempotency_key"] for line in received]
    assert len(keys) == 1 and str(keys[0]).startswith("order-424242******4242#")
    assert CARD not in "".join(str(line) for line in records)


def _refusing_app(tmp_path: Path, lines: Lines) -> FastAPI:
    """An app whose records refuse every write (a payment's answer is a 500), its JSON lines
    written to ``lines``."""
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        records=FailingRecords(),
        log_stream=lines,  # type: ignore[arg-type]
        environment="test",
    )
    return create_app(settings)


async def test_an_error_inside_a_payment_is_a_json_line_of_that_request(tmp_path: Path) -> None:
    lines = Lines()
    application = _refusing_app(tmp_path, lines)
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 500}'))
        logs = application.state.parts.telemetry.logs
        assert logs.drain.flush()
        # While the app runs its loggers' records go down the pipe only, not to the root too.
        assert all(not logging.getLogger(name).propagate for name in PIPED_LOGGERS)
    assert all(logging.getLogger(name).propagate for name in PIPED_LOGGERS)

    assert answer.status == 500
    (error,) = [line for line in lines.records() if line["level"] == "error"]
    assert error["logger"] == "payorch.api"
    assert str(error["event"]).startswith("payment pay_") and "could not be completed" in str(error["event"])
    assert "OSError: /var/lib/payorch/payorch.duckdb: disk I/O error" in str(error["exception"])
    assert error["request_id"] == answer.headers["request-id"]
    assert isinstance(error["trace_id"], str) and len(error["trace_id"]) == 32
    assert error["deployment.environment.name"] == "test" and error["service.name"] == "payorch"
    # The domain events of the same payment share its trace.
    (received,) = [line for line in lines.records() if line["event"] == "PaymentReceived"]
    assert received["trace_id"] == error["trace_id"]


class UnreadableViolations(MemoryRecords):
    """Records whose violations cannot be read: a fault in a route other than the payment's."""

    async def violations_page(self, query: ViolationQuery) -> Sequence[RecordedViolation]:
        raise RuntimeError("the violations table is unreadable")


async def test_an_error_in_any_route_is_one_500_of_that_request_in_the_log_metrics_and_trace(
    tmp_path: Path,
) -> None:
    lines, exporter = Lines(), InMemorySpanExporter()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        records=UnreadableViolations(),
        log_stream=lines,  # type: ignore[arg-type]
        span_exporter=exporter,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        # The error stops here: handed on to the server, uvicorn logged it a second time, with
        # its traceback and without the request's ids.
        answer = await call(application, "GET", "/v1/violations", [ADMIN], body_of(b""))
        metrics = application.state.parts.metrics.render().decode()
        assert application.state.parts.telemetry.logs.drain.flush()

    assert answer.status == 500
    assert answer.json()["code"] == "internal_error"
    request_id = answer.headers["request-id"]
    assert answer.json()["request_id"] == request_id
    responses = {
        sample.labels["code"]
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "payorch_http_responses_total" and sample.labels["route"] == "/v1/violations"
    }
    assert responses == {"500"}  # it was "none": no 5xx alert saw it
    (span,) = [span for span in exporter.get_finished_spans() if span.name == "GET /v1/violations"]
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 500
    (error,) = [line for line in lines.records() if line["level"] == "error"]
    assert error["event"] == "unhandled error on GET /v1/violations"
    assert "the violations table is unreadable" in str(error["exception"])
    assert error["request_id"] == request_id
    assert error["trace_id"] == f"{span.context.trace_id:032x}"


TAGS = {"service.name": "payorch", "service.version": "1.2.3", "deployment.environment.name": "test"}


@settings(max_examples=300, deadline=None)
@given(event=events, trace_id=st.integers(1, 2**128 - 1), span_id=st.integers(1, 2**64 - 1))
def test_an_event_line_is_what_rendering_it_whole_gives(
    event: DomainEvent, trace_id: int, span_id: int
) -> None:
    """An event line's header is rendered by the chain once per event name, then reused with each
    line's ids: a spliced line is byte for byte what rendering it whole gives."""
    out = io.BytesIO()
    writer = LineWriter(out, TAGS)

    writer.write([(0.0, "info", event.event_type, event, event.request_id, trace_id, span_id)])

    line = out.getvalue().removesuffix(b"\n")
    if type(event) in _SPLICED or _splices(event):
        whole = writer._render("info", _ids(event.event_type, "info", trace_id, span_id))
        assert line == whole[:-1] + b"," + event_json(event)[1:]
    parsed = orjson.loads(line)
    assert (parsed["trace_id"], parsed["span_id"]) == (f"{trace_id:032x}", f"{span_id:016x}")
    assert parsed["type"] == parsed["event"] == event.event_type
    assert parsed["request_id"] == event.request_id
    assert {key: parsed[key] for key in TAGS} == TAGS


def test_an_event_line_outside_a_span_has_null_ids() -> None:
    out = io.BytesIO()
    LineWriter(out, TAGS).write([(0.0, "info", "PaymentReceived", _received(), "req_1", 0, 0)])

    line = orjson.loads(out.getvalue())
    assert (line["trace_id"], line["span_id"], line["type"]) == (None, None, "PaymentReceived")


def _received(idempotency_key: str = "order-1") -> PaymentReceived:
    ids = event_ids(
        PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_acme"), datetime(2026, 11, 26, tzinfo=UTC)
    )
    return PaymentReceived(**ids, accepted=True, amount_cents=100, idempotency_key=idempotency_key)


def test_a_received_payment_whose_key_holds_a_card_number_is_masked_field_by_field() -> None:
    received, dirty = _received(), _received(f"order-{CARD}")
    out = io.BytesIO()

    LineWriter(out, {}).write(
        [(0.0, "info", "PaymentReceived", event, "req_1", 1, 2) for event in (received, dirty)]
    )

    clean_line, dirty_line = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert dirty_line == clean_line | {"idempotency_key": "order-424242******4242"}
    assert CARD not in out.getvalue().decode()


def _step_failed_lines(failures: list[tuple[ErrorCode, DeclineCode | None]]) -> list[dict[str, object]]:
    """The log lines of a StepFailed for each (error code, decline code), parsed."""
    ids = event_ids(
        PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_acme"), datetime(2026, 11, 26, tzinfo=UTC)
    )
    events = [
        StepFailed(
            **ids,
            step_index=0,
            processor_id=ProcessorId("stripe_sim"),
            error_code=code,
            retryable=code.retryable,
            latency_ms=3,
            decline_code=decline_code,
        )
        for code, decline_code in failures
    ]
    out = io.BytesIO()
    LineWriter(out, TAGS).write([(0.0, "info", "StepFailed", event, "req_1", 1, 2) for event in events])
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_a_failed_step_line_shows_whether_it_may_be_retried() -> None:
    parsed = _step_failed_lines([(ErrorCode.DECLINED, None), (ErrorCode.NETWORK_FAILURE, None)])

    assert [(line["event"], line["error_code"], line["retryable"]) for line in parsed] == [
        ("StepFailed", "declined", False),
        ("StepFailed", "network_failure", True),
    ]


def test_a_failed_step_line_says_why_the_card_was_refused() -> None:
    parsed = _step_failed_lines(
        [(ErrorCode.DECLINED, DeclineCode.LOST_CARD), (ErrorCode.NETWORK_FAILURE, None)]
    )

    assert [(line["error_code"], line["decline_code"]) for line in parsed] == [
        ("declined", "lost_card"),
        ("network_failure", None),
    ]


def test_a_violation_line_has_the_level_of_its_contract_severity() -> None:
    """Every violation was a ``warning``: a compensation that failed (a customer still charged) read
    as a merchant's messy request did, and a log alert on ``error`` never fired for it."""
    out = io.BytesIO()
    pipe = LogPipe(out, TAGS)
    at = datetime(2026, 11, 26, tzinfo=UTC)
    for contract_id in ("orchestrator/compensation-failed", "router/timeout", "api/validation"):
        pipe.violation(
            default_registry().violation(contract_id, request_id=RequestId("r"), message="m", timestamp=at)
        )
    pipe.close()

    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["severity"], line["level"]) for line in lines] == [
        ("critical", "error"),
        ("major", "warning"),
        ("minor", "info"),
    ]


class Sipping(io.BytesIO):
    """A stream that takes at most ``size`` bytes a write, as a pipe may, and keeps what it is given."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.given: list[type] = []

    def write(self, buffer: bytes | memoryview, /) -> int:  # type: ignore[override]
        self.given.append(type(buffer))
        return super().write(bytes(buffer[: self.size]))


def test_a_batch_a_stream_takes_in_parts_is_written_whole_and_in_order() -> None:
    stream = Sipping(size=40)
    writer = LineWriter(stream, {"service.name": "payorch"})
    writer.write([(1.0, "info", f"line {number}", {"n": number}, None, 0, 0) for number in range(5)])

    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["n"] for line in lines] == list(range(5))
    # The batch's bytes as they are, then views of what is left: no copy of the whole batch.
    assert stream.given[0] is bytes and set(stream.given[1:]) == {memoryview} and len(stream.given) > 2


class _RequestSeen(logging.Handler):
    """Keeps what the request-id context variable held when each record was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(current_request.get())


async def test_a_record_inside_a_request_takes_its_request_id_from_the_server_span(tmp_path: Path) -> None:
    """The front sets no context variable for the request id (about 2,300 instructions a request):
    a record logged under the request's server span finds the id on that span."""
    lines = Lines()
    application = _refusing_app(tmp_path, lines)
    seen = _RequestSeen()
    named = logging.getLogger("payorch.api")
    async with application.router.lifespan_context(application):
        named.addHandler(seen)
        try:
            answer = await call(application, "POST", PAYMENTS, [ACME, JSON], body_of(b'{"amount": 500}'))
        finally:
            named.removeHandler(seen)
        assert application.state.parts.telemetry.logs.drain.flush()

    assert answer.status == 500 and seen.seen == [None]
    (error,) = [line for line in lines.records() if line["level"] == "error"]
    assert error["request_id"] == answer.headers["request-id"]


def test_a_span_finds_the_request_of_the_server_span_it_lies_under() -> None:
    spans = Spans(Resource.create({}), None)
    server, token = spans.start_server("POST /v1/payments", {SERVED_REQUEST: "req_1"})
    with spans.span("payment", {}) as payment, spans.span("step", {}) as step:
        assert served_request(step) == served_request(payment) == "req_1"
        assert entry("info", "x", {})[4] == "req_1"
    spans.end_server(server, token)
    with spans.span("recovery", {}) as alone:  # a root of this process that is no request's
        assert served_request(alone) is None and entry("info", "x", {})[4] is None
