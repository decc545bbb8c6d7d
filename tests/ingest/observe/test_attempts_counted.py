"""One charge attempt, one count: ``payorch_processor_attempts_total`` and
``payorch_step_latency_seconds`` see each attempt once, with its settled outcome.

An attempt that times out and is then found charged by the status query records two outcome
events under its span (``StepFailed(timeout)``, then ``StepSucceeded``); it is still one attempt
sent to the processor (PRODUCT.md section 8), and it charged. The engine here runs over the app's
records and telemetry with a scripted processor, as a payment of the app would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from engine.context import CoreRequestContext
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.ports import AsyncioSleeper, SeededRandom
from engine.processor import Processor
from engine.results import CompositeResult, PaymentStatus
from engine.router import Router
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.engine.fakes import OK, TIMEOUT_CHARGED, TIMEOUT_UNCHARGED, ScriptedProcessor
from tests.ingest.api.test_app import call

CONFIG = """
admin_api_keys: [adm_attempts_admin]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_attempts_acme]
    default_currency: USD
    timeout_ms: 20
    retry: {max_attempts: 3, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [stripe_sim]}
processors:
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
"""
STRIPE = ProcessorId("stripe_sim")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def observed_service(parts: Parts, processors: dict[ProcessorId, Processor]) -> CompositePaymentService:
    """The engine over the app's records, clock and telemetry, charging at ``processors``."""
    telemetry = parts.telemetry
    assert telemetry is not None
    router = Router(
        processors, parts.records, parts.clock, AsyncioSleeper(), SeededRandom(1), observer=telemetry
    )
    return CompositePaymentService(
        parts.config,
        processors,
        router,
        parts.records,
        parts.clock,
        AsyncioSleeper(),
        SeededRandom(1),
        observer=telemetry,
    )


@dataclass
class Watched:
    app: object
    parts: Parts
    spans: InMemorySpanExporter

    async def pay(self, processor: Processor, number: int) -> CompositeResult:
        """A $10 card payment through the app's records and telemetry, charged at ``processor``."""
        telemetry = self.parts.telemetry
        assert telemetry is not None
        service = observed_service(self.parts, {STRIPE: processor})
        ctx = CoreRequestContext(
            merchant_id=MerchantId("m_acme"),
            request_id=RequestId(f"req_attempts_{number:04}"),
            payment_id=PaymentId(f"pay_attempts_{number:04}"),
            amount_cents=1000,
            currency=Currency("USD"),
        )
        with telemetry.spans.span("attempts-test", {}):
            return await service.pay(ctx)

    async def samples(self) -> Samples:
        scraped = await call(self.app, "GET", "/metrics", [], _empty_body)
        assert scraped.status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped.body.decode())
            for sample in family.samples
        }

    def attempt_outcomes(self) -> list[object]:
        telemetry = self.parts.telemetry
        assert telemetry is not None and telemetry.spans.drain is not None
        assert telemetry.spans.drain.flush()
        return [
            span.attributes.get("payorch.outcome")
            for span in self.spans.get_finished_spans()
            if span.name == "attempt" and span.attributes is not None
        ]


async def _empty_body() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    spans = InMemorySpanExporter()
    settings = Settings(
        config=parse_config(CONFIG), data_dir=tmp_path, environ={}, durable=False, span_exporter=spans
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Watched(application, application.state.parts, spans)


def _attempts(samples: Samples, outcome: str) -> float:
    labels = (("method", "card"), ("outcome", outcome), ("processor", "stripe_sim"))
    return samples.get(("payorch_processor_attempts_total", labels), 0.0)


def _latencies(samples: Samples) -> float:
    return samples.get(("payorch_step_latency_seconds_count", (("processor", "stripe_sim"),)), 0.0)


async def test_an_attempt_that_timed_out_and_was_found_charged_counts_once_as_succeeded(
    watched: Watched,
) -> None:
    processor = ScriptedProcessor("stripe_sim", (TIMEOUT_CHARGED,))

    result = await watched.pay(processor, 1)

    assert result.status is PaymentStatus.SUCCEEDED
    assert result.step_results[0].attempts == 1
    assert processor.calls == 1 and processor.status_calls == 1
    samples = await watched.samples()
    assert _attempts(samples, "succeeded") == 1
    assert _attempts(samples, "timeout") == 0
    assert _latencies(samples) == 1
    assert watched.attempt_outcomes() == ["succeeded"]


async def test_every_attempt_counts_once_with_its_settled_outcome(watched: Watched) -> None:
    # 1: times out, charged after all. 2: times out uncharged, then the retry charges.
    # 3: charged at once.
    first = ScriptedProcessor("stripe_sim", (TIMEOUT_CHARGED,))
    second = ScriptedProcessor("stripe_sim", (TIMEOUT_UNCHARGED, OK))
    third = ScriptedProcessor("stripe_sim", (OK,))

    results = [await watched.pay(processor, n) for n, processor in enumerate((first, second, third))]

    attempts = sum(step.attempts for result in results for step in result.step_results)
    assert attempts == 4
    samples = await watched.samples()
    assert _attempts(samples, "succeeded") == 3
    assert _attempts(samples, "timeout") == 1
    assert _latencies(samples) == attempts
    assert sorted(map(str, watched.attempt_outcomes())) == ["succeeded"] * 3 + ["timeout"]
