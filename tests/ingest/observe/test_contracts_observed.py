"""Every contract of the registry, broken for real and found in all three places operators look.

For each contract of ``default_registry()`` a trigger breaks it through the public API (the app in
process with its lifespan running, over the DuckDB store, with telemetry on) or, where no request
can reach it, through the engine wired with that app's own telemetry and records. The violation
must then be

1. in the store (``GET /v1/violations`` with an admin key, after the records are synced),
2. counted in ``payorch_contract_violations_total{contract_id, severity}`` (``GET /metrics``),
3. in the JSON log: an ``event == "ContractViolation"`` line with the violating request's id, its
   trace id and the global tags.

A contract with no trigger in :data:`TRIGGERS` fails here: a new entry of ``contracts.toml`` needs
its test.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from engine.config import MerchantConfig
from engine.context import CoreRequestContext
from engine.contracts import Contract, default_registry
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.plan import PaymentStep
from engine.ports import AsyncioSleeper, SeededRandom
from engine.results import PaymentStatus
from engine.router import RoutedStep, Router
from engine.types import MerchantId, PaymentId, RequestId
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config

if TYPE_CHECKING:
    pass

CONFIG = """
admin_api_keys: [adm_observe_admin]
merchants:
  - merchant_id: m_plain
    api_keys: [sk_observe_plain]
    default_currency: USD
    routing:
      - {method: card, processors: [quick_sim]}
  - merchant_id: m_short
    api_keys: [sk_observe_short]
    default_currency: USD
    routing:
      - {method: card, max_amount_cents: 1000, processors: [quick_sim]}
  - merchant_id: m_slow
    api_keys: [sk_observe_slow]
    default_currency: USD
    timeout_ms: 20
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [slow_sim]}
  - merchant_id: m_down
    api_keys: [sk_observe_down]
    default_currency: USD
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [down_sim]}
  - merchant_id: m_panic
    api_keys: [sk_observe_panic]
    default_currency: USD
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [panic_sim]}
  - merchant_id: m_garbled
    api_keys: [sk_observe_garbled]
    default_currency: USD
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [garbled_sim]}
  - merchant_id: m_slo
    api_keys: [sk_observe_slo]
    default_currency: USD
    latency_slo_ms: 1
    routing:
      - {method: card, processors: [lagging_sim]}
  - merchant_id: m_split
    api_keys: [sk_observe_split]
    default_currency: USD
    partial_policy: allow_partial
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: apple_pay, max_amount_cents: 6000, processors: [quick_sim]}
      - {method: card, processors: [declining_sim]}
processors:
  - {id: quick_sim, kind: simulated, seed: 1, latency_ms: {p50: 0, p99: 0}}
  # Every call (charge, status, refund) answers after 60 ms: past m_slow's 20 ms timeout.
  - {id: slow_sim, kind: simulated, seed: 2, latency_ms: {p50: 60, p99: 60}}
  - id: down_sim
    kind: simulated
    seed: 3
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {network_failure: 1.0}
  - id: panic_sim
    kind: simulated
    seed: 4
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {panic: 1.0}
  - id: garbled_sim
    kind: simulated
    seed: 5
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {malformed: 1.0}
  - {id: lagging_sim, kind: simulated, seed: 6, latency_ms: {p50: 5, p99: 5}}
  - id: declining_sim
    kind: simulated
    seed: 7
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {declined: 1.0}
"""

PLAIN, SHORT, SLOW, DOWN, PANIC, GARBLED, SLO = (
    "sk_observe_plain",
    "sk_observe_short",
    "sk_observe_slow",
    "sk_observe_down",
    "sk_observe_panic",
    "sk_observe_garbled",
    "sk_observe_slo",
)
ADMIN = {"authorization": "Bearer adm_observe_admin"}
ENVIRONMENT = "contract-tests"
#: Every payment request continues this caller's trace, so its log lines carry this trace id.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
VIOLATIONS_METRIC = "payorch_contract_violations_total"
DROPPED_METRIC = "payorch_observer_dropped_total"
#: How long a poll for something another thread does may take before the test fails.
PATIENCE_S = 5.0
#: A ``Breach.payment_id`` that is not checked (a refused request's payment id is never answered).
ANY_PAYMENT = "<any>"


class LogStream(io.BytesIO):
    """Where the app writes its JSON lines."""

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.getvalue().splitlines() if line.strip()]


class HeldExporter(InMemorySpanExporter):
    """Keeps the spans it is given; a held one makes every export wait (as a collector that stopped
    answering would) until :meth:`release`, never longer than ``PATIENCE_S``."""

    def __init__(self, *, held: bool = False) -> None:
        super().__init__()
        self._flowing = threading.Event()
        if not held:
            self._flowing.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._flowing.wait(PATIENCE_S)
        return super().export(spans)

    def release(self) -> None:
        self._flowing.set()


@dataclass(frozen=True)
class Breach:
    """One violation a trigger must have caused: by which request, with what in its message."""

    request_id: str
    message: str  # a fragment of the stored message
    merchant_id: str | None
    payment_id: str | None = ANY_PAYMENT


@dataclass(frozen=True)
class Expected:
    """What a trigger caused. ``breaches`` None: the violations are not tied to requests of the
    test (``observer/dropped``); the trigger checked them itself and some lines may be lost."""

    breaches: tuple[Breach, ...] | None
    trace_id: str | None = TRACE_ID


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    stream: LogStream
    exporter: HeldExporter

    @property
    def parts(self) -> Parts:
        parts: Parts = self.app.state.parts
        return parts

    async def pay(self, api_key: str, body: dict[str, object], key: str | None = None) -> httpx.Response:
        headers = {
            "authorization": f"Bearer {api_key}",
            "content-type": "application/json",
            "traceparent": TRACEPARENT,
        }
        if key is not None:
            headers["idempotency-key"] = key
        return await self.client.post("/v1/payments", content=orjson.dumps(body), headers=headers)

    async def stored(self, contract_id: str) -> list[dict[str, object]]:
        """The store's violations of ``contract_id`` once everything recorded so far is committed."""
        await self.parts.records.sync()
        answer = await self.client.get("/v1/violations", params={"contract_id": contract_id}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, object]] = answer.json()["violations"]
        return found

    async def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        answer = await self.client.get("/metrics")
        assert answer.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }

    async def counted(self, contract: Contract) -> float:
        labels = (("contract_id", contract.id), ("severity", contract.severity.value))
        return (await self.samples()).get((VIOLATIONS_METRIC, labels), 0.0)

    def logged(self, contract_id: str) -> list[dict[str, object]]:
        """The ContractViolation lines of ``contract_id``, once the log drain has delivered."""
        telemetry = self.parts.telemetry
        assert telemetry is not None
        assert telemetry.logs is not None
        # Twice: one flush can be answered by a pass of the drain's thread that began before it.
        assert telemetry.logs.drain.flush()
        assert telemetry.logs.drain.flush()
        return [
            line
            for line in self.stream.lines()
            if line.get("event") == "ContractViolation" and line.get("contract_id") == contract_id
        ]


@dataclass(frozen=True)
class Trigger:
    run: Callable[[Harness], Awaitable[Expected]]
    #: Hold the span exporter from the start, with a span buffer this small and drops reported
    #: this often.
    hold_spans: bool = False
    span_capacity: int = 8192
    drop_report_interval_s: float = 3600.0


@asynccontextmanager
async def observed(data_dir: Path, trigger: Trigger) -> AsyncIterator[Harness]:
    stream = LogStream()
    exporter = HeldExporter(held=trigger.hold_spans)
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=data_dir,
        environ={},
        environment=ENVIRONMENT,
        durable=True,
        telemetry=True,
        log_stream=stream,
        span_exporter=exporter,
        span_capacity=trigger.span_capacity,
        drop_report_interval_s=trigger.drop_report_interval_s,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://payorch.test") as client:
                    yield Harness(app, client, stream, exporter)
            finally:
                exporter.release()  # before the lifespan's end joins the drain's thread
    finally:
        exporter.release()


def request_id(answer: httpx.Response) -> str:
    found = answer.headers["request-id"]
    assert found.startswith("req_")
    return found


def document(answer: httpx.Response) -> dict[str, object]:
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    assert found["request_id"] == request_id(answer)
    return found


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not await check():
        assert time.monotonic() < deadline, f"not within {PATIENCE_S} s: {what}"
        await asyncio.sleep(0.02)


# -- the triggers --------------------------------------------------------------------------------


async def break_validation(h: Harness) -> Expected:
    """A refused body (422) and a corrected one (paid, with an ``ambiguous_separator`` warning)."""
    refused = await h.pay(PLAIN, {"amount": "lots", "currency": "USD"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_failed"
    corrected = await h.pay(PLAIN, {"amount": "1,000", "currency": "USD", "method": "card"})
    paid = document(corrected)
    assert paid["status"] == "succeeded"
    assert paid["total_processed"] == 100_000
    return Expected(
        (
            Breach(request_id(refused), "amount: invalid_amount (error)", "m_plain"),
            Breach(
                request_id(corrected),
                "amount: ambiguous_separator (warning)",
                "m_plain",
                str(paid["payment_id"]),
            ),
        )
    )


async def break_coverage(h: Harness) -> Expected:
    """m_short's only rule takes at most 10.00; 50.00 cannot be covered."""
    answer = await h.pay(SHORT, {"amount": 5000, "currency": "USD"})
    paid = document(answer)
    assert (paid["status"], paid["final_error"], paid["total_processed"]) == (
        "failed",
        "coverage_shortfall",
        0,
    )
    message = "routing covers 1000 of 5000; nothing charged"
    return Expected((Breach(request_id(answer), message, "m_short", str(paid["payment_id"])),))


async def pay_slowly(h: Harness) -> tuple[str, str]:
    """One payment at m_slow: the charge, the status queries and the void of its unsettled charge
    each take 60 ms and time out after 20 ms. The request's id and the payment's."""
    answer = await h.pay(SLOW, {"amount": 1000, "currency": "USD"})
    paid = document(answer)
    assert (paid["status"], paid["final_error"]) == ("failed", "timeout")
    return request_id(answer), str(paid["payment_id"])


async def break_timeout(h: Harness) -> Expected:
    """Every call times out: the charge, the status query that should settle it, the void, and
    the status query that should settle the void."""
    request, payment = await pay_slowly(h)
    return Expected(
        tuple(
            Breach(request, f"{call} at slow_sim did not answer within 20 ms", "m_slow", payment)
            for call in ("charge", "status", "refund", "status")
        )
    )


async def break_compensation(h: Harness) -> Expected:
    """The charge's outcome stays unknown (charge and status time out), so it is voided; the void
    times out too: the customer may still be charged."""
    request, payment = await pay_slowly(h)
    message = "step 0 may still be charged at slow_sim: void/refund failed with timeout"
    return Expected((Breach(request, message, "m_slow", payment),))


async def failed_payment(h: Harness, api_key: str, merchant: str, final_error: str, message: str) -> Expected:
    """A payment the merchant's only processor fails with ``final_error``: one violation, ``message``."""
    answer = await h.pay(api_key, {"amount": 1000, "currency": "USD"})
    paid = document(answer)
    assert (paid["status"], paid["final_error"]) == ("failed", final_error)
    return Expected((Breach(request_id(answer), message, merchant, str(paid["payment_id"])),))


async def break_retry_exhausted(h: Harness) -> Expected:
    """down_sim never answers (network_failure 1.0) and there is no fallback."""
    message = "step 0 failed after 1 attempts, last error network_failure"
    return await failed_payment(h, DOWN, "m_down", "network_failure", message)


async def break_panic(h: Harness) -> Expected:
    """panic_sim raises on every charge (panic 1.0)."""
    message = "charge at panic_sim raised SimulatedPanic: simulated processor panic"
    return await failed_payment(h, PANIC, "m_panic", "processor_error", message)


async def break_malformed(h: Harness) -> Expected:
    """garbled_sim answers every charge with a dict (malformed 1.0)."""
    message = "charge at garbled_sim answered dict, not a ProcessorResponse"
    return await failed_payment(h, GARBLED, "m_garbled", "malformed_response", message)


async def break_key_reused(h: Harness) -> Expected:
    """The same Idempotency-Key with another amount."""
    first = await h.pay(PLAIN, {"amount": 1000, "currency": "USD"}, key="order-7")
    assert document(first)["status"] == "succeeded"
    reused = await h.pay(PLAIN, {"amount": 2000, "currency": "USD"}, key="order-7")
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"
    message = "Idempotency-Key reused with a different request body"
    return Expected((Breach(request_id(reused), message, "m_plain", None),))


async def break_latency_slo(h: Harness) -> Expected:
    """lagging_sim takes 5 ms; m_slo's objective is 1 ms."""
    answer = await h.pay(SLO, {"amount": 1000, "currency": "USD"})
    paid = document(answer)
    assert paid["status"] == "succeeded"
    return Expected((Breach(request_id(answer), "objective 1 ms", "m_slo", str(paid["payment_id"])),))


class SkimmingRouter(Router):
    """Reports every charged step one cent short of what it charged: the sum check's target. (The
    real router reports a step's planned amount or nothing, and the guard refuses a processor's
    answer for another amount, so no request can break ``orchestrator/sum``.)"""

    async def route_step(
        self, ctx: CoreRequestContext, step: PaymentStep, merchant: MerchantConfig
    ) -> RoutedStep:
        routed = await super().route_step(ctx, step, merchant)
        if not routed.result.success:
            return routed
        skimmed = replace(routed.result, amount_processed=routed.result.amount_processed - 1)
        return RoutedStep(skimmed, routed.unsettled)


async def break_sum(h: Harness) -> Expected:
    """The engine over the app's records, processors and telemetry, with a router that misreports:
    m_split's 6000 apple_pay step is reported as 5999, then its card step is declined and the
    partial payment is kept."""
    parts = h.parts
    telemetry = parts.telemetry
    assert telemetry is not None
    processors = parts.engine.processors
    router = SkimmingRouter(
        processors, parts.records, parts.clock, AsyncioSleeper(), SeededRandom(11), observer=telemetry
    )
    service = CompositePaymentService(
        parts.config,
        processors,
        router,
        parts.records,
        parts.clock,
        AsyncioSleeper(),
        SeededRandom(11),
        observer=telemetry,
    )
    ctx = CoreRequestContext(
        merchant_id=MerchantId("m_split"),
        request_id=RequestId("req_skimmed_0001"),
        payment_id=PaymentId("pay_skimmed_0001"),
        amount_cents=10_000,
        currency=Currency("USD"),
    )
    with telemetry.spans.span("contract-test", {}) as span:
        result = await service.pay(ctx)
    assert result.status is PaymentStatus.PARTIALLY_SUCCEEDED
    assert [step.amount_processed for step in result.step_results] == [5999, 0]
    message = "step 0 processed 5999 of a planned 6000"
    breach = Breach("req_skimmed_0001", message, "m_split", "pay_skimmed_0001")
    return Expected((breach,), trace_id=span.trace_hex)


DROP_REPORT = re.compile(r"(\d+) telemetry items dropped \(in all: (\d+) spans\): buffers full")


async def break_observer_dropped(h: Harness) -> Expected:
    """The span exporter stalls and the span buffer holds 4 spans: three payments (four spans
    each) overflow it, and the drops are reported within the 50 ms report interval, through the
    store, the metric and the log (which flows). Once the exporter answers again, the drops stop
    and the last of them are reported."""
    for _ in range(3):
        assert document(await h.pay(PLAIN, {"amount": 1000, "currency": "USD"}))["status"] == "succeeded"

    async def reported() -> bool:
        return bool(await h.stored("observer/dropped"))

    await eventually(reported, "an observer/dropped violation in the store while the exporter is stalled")
    h.exporter.release()

    async def all_reported() -> bool:
        stored = await h.stored("observer/dropped")
        dropped = (await h.samples()).get((DROPPED_METRIC, (("signal", "spans"),)), 0.0)
        reports = [DROP_REPORT.fullmatch(str(v["message"])) for v in stored]
        assert all(reports), [v["message"] for v in stored]
        fresh = sum(int(report[1]) for report in reports if report)
        newest = reports[0]  # newest first
        return newest is not None and fresh == int(newest[2]) == dropped > 0

    # Quiet for a while too: once the stream flows, nothing more may be dropped.
    await eventually(all_reported, "every dropped log line reported")
    await asyncio.sleep(0.2)
    assert await all_reported()
    stored = await h.stored("observer/dropped")
    assert len({v["request_id"] for v in stored}) == len(stored)  # one report, one request id
    for violation in stored:
        assert str(violation["request_id"]).startswith("req_")
        assert violation["payment_id"] is None
        assert violation["merchant_id"] is None
    # Not tied to a request of the test, and written outside any request: no trace.
    return Expected(None, trace_id=None)


TRIGGERS: dict[str, Trigger] = {
    "api/validation": Trigger(break_validation),
    "plan/coverage": Trigger(break_coverage),
    "orchestrator/sum": Trigger(break_sum),
    "orchestrator/compensation-failed": Trigger(break_compensation),
    "router/timeout": Trigger(break_timeout),
    "router/retry-exhausted": Trigger(break_retry_exhausted),
    "processor/panic": Trigger(break_panic),
    "processor/malformed": Trigger(break_malformed),
    "idempotency/key-reused": Trigger(break_key_reused),
    "payment/latency-slo": Trigger(break_latency_slo),
    "observer/dropped": Trigger(
        break_observer_dropped, hold_spans=True, span_capacity=4, drop_report_interval_s=0.05
    ),
}


# -- the checks ----------------------------------------------------------------------------------


def _matched(breaches: tuple[Breach, ...], stored: list[dict[str, object]]) -> None:
    """Each breach is exactly one stored violation, and there is no other (a breach listed twice
    is two violations)."""
    left = list(stored)
    to_come = Counter(breaches)
    for breach in breaches:
        found = [
            violation
            for violation in left
            if violation["request_id"] == breach.request_id and breach.message in str(violation["message"])
        ]
        assert len(found) == to_come[breach], (breach, stored)
        to_come[breach] -= 1
        violation = found[0]
        assert violation["merchant_id"] == breach.merchant_id
        if breach.payment_id != ANY_PAYMENT:
            assert violation["payment_id"] == breach.payment_id
        left.remove(violation)
    assert left == [], f"violations no trigger accounts for: {left}"


def _key(record: dict[str, object]) -> tuple[object, ...]:
    return (record["request_id"], record["message"], record["payment_id"], record["merchant_id"])


def test_every_trigger_names_a_registered_contract() -> None:
    assert sorted(TRIGGERS.keys() - set(default_registry().ids())) == []


@pytest.mark.parametrize("contract", list(default_registry()), ids=lambda contract: contract.id)
async def test_a_violation_is_stored_counted_and_logged(contract: Contract, tmp_path: Path) -> None:
    trigger = TRIGGERS.get(contract.id)
    if trigger is None:
        pytest.fail(
            f"{contract.id} is in contracts.toml but has no trigger in TRIGGERS: add one that breaks "
            "it and checks the store, the metric and the log"
        )
    async with observed(tmp_path, trigger) as harness:
        assert await harness.counted(contract) == 0
        expected = await trigger.run(harness)
        stored = await harness.stored(contract.id)
        counted = await harness.counted(contract)
        logged = harness.logged(contract.id)

    # 1. The store.
    assert stored, f"no {contract.id} violation stored"
    for violation in stored:
        assert violation["contract_id"] == contract.id
        assert violation["severity"] == contract.severity.value
        assert violation["owner"] == contract.owner
        assert str(violation["timestamp"]).endswith("Z")
    if expected.breaches is not None:
        _matched(expected.breaches, stored)

    # 2. The metric, from zero.
    assert counted == len(stored)

    # 3. The log: one line per stored violation, with its request id, trace id and the global tags.
    if expected.breaches is not None:
        assert Counter(map(_key, logged)) == Counter(map(_key, stored))
    else:  # lines may have been dropped with the rest; those written are stored violations
        assert logged, f"no {contract.id} line in the log"
        assert {_key(line) for line in logged} <= {_key(violation) for violation in stored}
    for line in logged:
        assert line["severity"] == contract.severity.value
        assert line["owner"] == contract.owner
        assert line["level"] == {"critical": "error", "major": "warning", "minor": "info"}[line["severity"]]
        assert line["trace_id"] == expected.trace_id
        assert line["service.name"] == "payorch"
        assert line["deployment.environment.name"] == ENVIRONMENT
        assert isinstance(line["service.version"], str)
        assert line["service.version"]
