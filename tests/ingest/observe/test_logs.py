"""The JSON log: card numbers never leave in it, and the service's own log records (an error
inside a payment) carry the request, its trace and the global tags like the domain events do."""

from __future__ import annotations

import logging
from pathlib import Path

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.observe.logs import PIPED_LOGGERS
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
