"""The JSON log: card numbers never leave in it, and the service's own log records (an error
inside a payment) carry the request, its trace and the global tags like the domain events do."""

from __future__ import annotations

import dataclasses
import io
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson

from engine.error_codes import ErrorCode
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepFailed,
    StepSucceeded,
    event_ids,
)
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.codec.event_json import event_json
from ingest.config_file import parse_config
from ingest.observe.logs import PIPED_LOGGERS, LineWriter, _ids
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, FailingRecords, body_of, call
from tests.ingest.observe.test_seed_observed import Lines

CARD = "4242424242424242"


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
    assert [line["idempotency_key"] for line in received] == ["order-424242******4242"]
    assert CARD not in "".join(str(line) for line in records)


async def test_an_error_inside_a_payment_is_a_json_line_of_that_request(tmp_path: Path) -> None:
    lines = Lines()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        records=FailingRecords(),
        log_stream=lines,  # type: ignore[arg-type]
        environment="test",
    )
    application = create_app(settings)
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


def _spliced_events() -> list[DomainEvent]:
    ids = event_ids(
        PaymentId("pay_1"),
        RequestId("req_1"),
        MerchantId("m_acme"),
        datetime(2026, 11, 26, 8, 0, 0, 123456, tzinfo=UTC),
    )
    card, usd = ProcessorId("stripe_sim"), Currency("USD")
    step = PlannedStep(0, PaymentMethod.CARD, 10000, (card,))
    return [
        PaymentReceived(
            **ids,
            accepted=True,
            amount_cents=10000,
            currency=usd,
            method=PaymentMethod.CARD,
            idempotency_key="order-1",
        ),
        PlanBuilt(**ids, total_amount_cents=10000, currency=usd, steps=(step,)),
        StepAttempted(
            **ids,
            step_index=0,
            processor_id=card,
            attempt=1,
            method=PaymentMethod.CARD,
            amount_cents=10000,
            idempotency_key="pay_1:0",
        ),
        StepSucceeded(**ids, step_index=0, processor_id=card, latency_ms=12, amount=10000),
        StepFailed(**ids, step_index=0, processor_id=card, error_code=ErrorCode.TIMEOUT, latency_ms=2000),
        CompensationIssued(**ids, step_index=0, processor_id=card, amount=10000, succeeded=True),
        PaymentCompleted(**ids, total_amount=10000, total_processed=10000),
        PaymentFailed(**ids, total_amount=10000, final_error=ErrorCode.DECLINED),
    ]


def test_an_event_line_is_the_chains_header_with_the_event_spliced_in() -> None:
    """The header an event line starts with is rendered by the chain once per event name, then
    reused with each line's ids: every line is byte for byte what rendering it whole gives."""
    tags = {"service.name": "payorch", "service.version": "1.2.3", "deployment.environment.name": "test"}
    out = io.BytesIO()
    writer = LineWriter(out, tags)
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7
    events = _spliced_events()

    writer.write(
        [(0.0, "info", event.event_type, event, event.request_id, trace_id, span_id) for event in events]
    )
    writer.write([(0.0, "info", events[0].event_type, events[0], "req_1", 0, 0)])  # outside a span

    lines = out.getvalue().splitlines()
    assert len(lines) == len(events) + 1
    for event, line in zip(events, lines, strict=False):
        whole = writer._render("info", _ids(event.event_type, "info", trace_id, span_id))
        assert line == whole[:-1] + b"," + event_json(event)[1:]
        parsed = orjson.loads(line)
        assert parsed["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert parsed["span_id"] == "00f067aa0ba902b7"
        assert parsed["type"] == parsed["event"] == event.event_type
        assert {key: parsed[key] for key in tags} == tags
    outside = orjson.loads(lines[-1])
    assert (outside["trace_id"], outside["span_id"], outside["event"]) == (None, None, "PaymentReceived")


def test_a_received_payment_whose_key_holds_a_card_number_is_masked_field_by_field() -> None:
    received = _spliced_events()[0]
    assert isinstance(received, PaymentReceived)
    dirty = dataclasses.replace(received, idempotency_key=f"order-{CARD}")
    out = io.BytesIO()

    LineWriter(out, {}).write(
        [(0.0, "info", "PaymentReceived", event, "req_1", 1, 2) for event in (received, dirty)]
    )

    clean_line, dirty_line = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert dirty_line == clean_line | {"idempotency_key": "order-424242******4242"}
    assert CARD not in out.getvalue().decode()
