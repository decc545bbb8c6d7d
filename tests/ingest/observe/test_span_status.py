"""A trace shows where a payment failed: an attempt or a step that did not succeed has the span
status ERROR, described by its error code; what succeeded keeps the status unset. The server span
of a payment answered 200 stays unset whatever the outcome (OpenTelemetry's HTTP conventions)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.ingest.api.test_app import JSON, body_of, call

CONFIG = """
admin_api_keys: [adm_span_status]
merchants:
  - merchant_id: m_shop
    api_keys: [sk_span_status_shop]
    default_currency: USD
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [unreachable_sim, stripe_sim]}
processors:
  - id: unreachable_sim
    kind: simulated
    seed: 1
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {network_failure: 1.0}
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
"""
SHOP = (b"authorization", b"Bearer sk_span_status_shop")


@dataclass
class Traced:
    app: object
    parts: Parts
    spans: InMemorySpanExporter

    async def pay(self, card: str | None = None) -> tuple[ReadableSpan, ...]:
        self.spans.clear()
        metadata = "{}" if card is None else f'{{"card_number": "{card}"}}'
        body = f'{{"amount": 1000, "currency": "USD", "method": "card", "metadata": {metadata}}}'
        answer = await call(self.app, "POST", "/v1/payments", [SHOP, JSON], body_of(body.encode()))
        assert answer.status == 200, answer.body
        telemetry = self.parts.telemetry
        assert telemetry is not None and telemetry.spans.drain is not None
        assert telemetry.spans.drain.flush()
        return self.spans.get_finished_spans()


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Traced]:
    spans = InMemorySpanExporter()
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, span_exporter=spans)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Traced(application, application.state.parts, spans)


def _statuses(spans: tuple[ReadableSpan, ...]) -> list[tuple[str, object, StatusCode, str | None]]:
    """(name, processor, status, description) of every span, in a stable order."""
    found = [
        (
            span.name,
            (span.attributes or {}).get("payorch.processor_id"),
            span.status.status_code,
            span.status.description,
        )
        for span in spans
    ]
    return sorted(found, key=str)


async def test_a_failed_attempt_is_an_error_and_a_step_a_fallback_saved_is_not(traced: Traced) -> None:
    spans = await traced.pay()  # no test card: the unreachable processor fails, the next charges

    assert _statuses(spans) == sorted(
        [
            ("POST /v1/payments", None, StatusCode.UNSET, None),
            ("plan", None, StatusCode.UNSET, None),
            ("step", None, StatusCode.UNSET, None),
            ("attempt", "unreachable_sim", StatusCode.ERROR, "network_failure"),
            ("attempt", "stripe_sim", StatusCode.UNSET, None),
        ],
        key=str,
    )


async def test_a_declined_step_is_an_error_described_by_its_error_code(traced: Traced) -> None:
    spans = await traced.pay("4000000000000002")  # declined, by the first processor already

    assert _statuses(spans) == sorted(
        [
            ("POST /v1/payments", None, StatusCode.UNSET, None),
            ("plan", None, StatusCode.UNSET, None),
            ("step", None, StatusCode.ERROR, "declined"),
            ("attempt", "unreachable_sim", StatusCode.ERROR, "declined"),
        ],
        key=str,
    )
