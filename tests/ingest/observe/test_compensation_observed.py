"""A void or refund shows in the trace: all-or-nothing compensation of a split payment is a
``compensation`` span (step, processor, outcome) beside the steps, the ``CompensationIssued`` line
and a failed compensation's violation carry its span id, and a void that failed is an ERROR span
described by its error code, as ``payorch_compensations_total`` counts it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from engine.context import CoreRequestContext
from engine.money import Currency
from engine.processor import Processor
from engine.results import CompositeResult, PaymentStatus
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.engine.fakes import DECLINE, NETWORK, ScriptedProcessor
from tests.ingest.observe.test_attempts_counted import observed_service
from tests.ingest.observe.test_seed_observed import Lines

CONFIG = """
admin_api_keys: [adm_compensation_admin]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_compensation_acme]
    default_currency: USD
    partial_policy: all_or_nothing
    retry: {max_attempts: 2, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: apple_pay, max_amount_cents: 6000, processors: [applepay_sim]}
      - {method: card, processors: [stripe_sim]}
processors:
  - {id: applepay_sim, kind: simulated, seed: 7, latency_ms: {p50: 0, p99: 0}}
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
"""
APPLE, STRIPE = ProcessorId("applepay_sim"), ProcessorId("stripe_sim")


@dataclass
class Watched:
    parts: Parts
    spans: InMemorySpanExporter
    lines: Lines

    async def pay(self, apple: Processor) -> CompositeResult:
        """$100 split as $60 Apple Pay at ``apple`` and $40 card, which is declined."""
        telemetry = self.parts.telemetry
        assert telemetry is not None
        service = observed_service(self.parts, {APPLE: apple, STRIPE: ScriptedProcessor(STRIPE, (DECLINE,))})
        ctx = CoreRequestContext(
            merchant_id=MerchantId("m_acme"),
            request_id=RequestId("req_compensation_0001"),
            payment_id=PaymentId("pay_compensation_0001"),
            amount_cents=10000,
            currency=Currency("USD"),
        )
        with telemetry.spans.span("payment-test", {}):
            result = await service.pay(ctx)
        assert telemetry.spans.drain is not None and telemetry.logs is not None
        assert telemetry.spans.drain.flush() and telemetry.logs.drain.flush()
        return result

    def compensation(self) -> ReadableSpan:
        (span,) = [span for span in self.spans.get_finished_spans() if span.name == "compensation"]
        return span

    def root(self) -> ReadableSpan:
        (span,) = [span for span in self.spans.get_finished_spans() if span.name == "payment-test"]
        return span

    def line(self, **fields: object) -> dict[str, object]:
        (found,) = [line for line in self.lines.records() if all(line.get(k) == v for k, v in fields.items())]
        return found


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    spans, lines = InMemorySpanExporter(), Lines()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        environ={},
        durable=False,
        span_exporter=spans,
        log_stream=lines,  # type: ignore[arg-type]
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Watched(application.state.parts, spans, lines)


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


def _span_hex(span: ReadableSpan) -> str:
    return f"{_span_id(span):016x}"


async def test_a_void_after_a_later_decline_is_a_span_its_event_line_points_to(watched: Watched) -> None:
    result = await watched.pay(ScriptedProcessor(APPLE))

    assert result.status is PaymentStatus.FAILED and result.step_results[0].compensated
    span = watched.compensation()
    assert span.parent is not None and span.parent.span_id == _span_id(watched.root())
    assert dict(span.attributes or {}) == {
        "payorch.step_index": 0,
        "payorch.processor_id": "applepay_sim",
        "payorch.outcome": "succeeded",
    }
    assert span.status.status_code is StatusCode.UNSET
    issued = watched.line(event="CompensationIssued")
    assert (issued["span_id"], issued["succeeded"]) == (_span_hex(span), True)
    labels = {"processor": "applepay_sim", "outcome": "succeeded"}
    assert watched.parts.metrics.registry.get_sample_value("payorch_compensations_total", labels) == 1.0


async def test_a_void_that_failed_is_an_error_span_described_by_its_error_code(watched: Watched) -> None:
    result = await watched.pay(ScriptedProcessor(APPLE, refund_script=(NETWORK,)))

    assert result.status is PaymentStatus.FAILED and not result.step_results[0].compensated
    span = watched.compensation()
    assert (span.attributes or {}).get("payorch.outcome") == "network_failure"
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "network_failure")
    issued = watched.line(event="CompensationIssued")
    violation = watched.line(event="ContractViolation", contract_id="orchestrator/compensation-failed")
    assert issued["span_id"] == violation["span_id"] == _span_hex(span)
    labels = {"processor": "applepay_sim", "outcome": "network_failure"}
    assert watched.parts.metrics.registry.get_sample_value("payorch_compensations_total", labels) == 1.0
