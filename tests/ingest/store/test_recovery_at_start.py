"""Crash recovery through the store, in process and deterministic: a payment's events are written
to ``payorch.duckdb`` as a crash left them (the last attempt sent, its answer never recorded),
then a new app starts on the same data folder and finishes the payment before taking requests.

Its stored result (what ``GET /v1/payments/{id}`` answers) must agree with its events, and every
attempt must have its outcome in the event log (``tests.payment_log``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from engine.config import RoutingRule
from engine.events import CompensationIssued, DomainEvent, PlanBuilt, StepFailed, StepSucceeded
from engine.methods import PartialPolicy, PaymentMethod
from engine.types import ProcessorId
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.codec.events import event_from_bytes
from ingest.config_file import parse_config
from ingest.store.recovery import RecoveryReport, _interrupted_ids
from ingest.store.writer import Write
from tests.engine.fakes import PROCESSING, ScriptedProcessor
from tests.engine.harness import merchant, request, rig
from tests.ingest.api.test_app import body_of, call
from tests.payment_log import StepView, attempts_without_outcome, disagreements

CONFIG = """
admin_api_keys: [adm_recovery_admin]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_recovery_acme]
    default_currency: USD
    retry: {max_attempts: 3, base_delay_ms: 1, max_delay_ms: 1}
    routing:
      - {method: card, processors: [stripe_sim, adyen_sim]}
processors:
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
  - {id: adyen_sim, kind: simulated, seed: 99, latency_ms: {p50: 0, p99: 0}}
"""
ADMIN = (b"authorization", b"Bearer adm_recovery_admin")
PAYMENT = "pay_cut_off_0001"
CARD_ONLY = (RoutingRule(PaymentMethod.CARD, (ProcessorId("stripe_sim"), ProcessorId("adyen_sim"))),)


@dataclass
class Started:
    app: FastAPI
    parts: Parts


#: The same service with the merchant m_acme gone (renamed m_other): its payments cannot be recovered.
ELSEWHERE = CONFIG.replace("m_acme", "m_other").replace("sk_recovery_acme", "sk_recovery_other")
OTHER = (b"authorization", b"Bearer sk_recovery_other")
JSON = (b"content-type", b"application/json")


@asynccontextmanager
async def running(data_dir: Path, config: str = CONFIG) -> AsyncIterator[Started]:
    settings = Settings(config=parse_config(config), data_dir=data_dir, environ={})
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Started(application, application.state.parts)


async def _cut_off_payment(payment_id: str = PAYMENT) -> list[DomainEvent]:
    """The reported payment: three processing errors at stripe_sim, two at adyen_sim, and the
    crash while adyen_sim's third attempt (the sixth) was out; adyen_sim charged nothing."""
    processors = {
        name: ScriptedProcessor(name, (PROCESSING,)) for name in ("applepay_sim", "stripe_sim", "adyen_sim")
    }
    paid = rig(processors, merchant(routing=CARD_ONLY))
    await paid.service.pay(request(4000, payment_id, payment_method=PaymentMethod.CARD))
    events = paid.sink.events
    sixth = next(i for i, e in enumerate(events) if type(e) is StepFailed and e.attempt == 6)
    return events[:sixth]


def _stored_events(connection: duckdb.DuckDBPyConnection) -> list[DomainEvent]:
    rows = connection.execute("SELECT proto FROM events WHERE payment_id = ? ORDER BY seq", [PAYMENT])
    return [event_from_bytes(bytes(row[0])) for row in rows.fetchall()]


@pytest.fixture
async def recovered(tmp_path: Path) -> AsyncIterator[Started]:
    cut = await _cut_off_payment()
    assert attempts_without_outcome(cut) != []  # what the crash left
    async with running(tmp_path) as crashed:
        for event in cut:
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
    async with running(tmp_path) as restarted:
        yield restarted


async def test_the_recovered_result_agrees_with_the_events_and_every_attempt_has_an_outcome(
    recovered: Started,
) -> None:
    report = recovered.parts.recovery
    assert isinstance(report, RecoveryReport)
    assert (report.interrupted, report.finished, report.left) == (1, 1, [])
    assert recovered.parts.writer is not None
    events = recovered.parts.writer.read_now(_stored_events)
    answer = await call(recovered.app, "GET", f"/v1/payments/{PAYMENT}", [ADMIN], body_of(b""))
    assert answer.status == 200
    document = answer.json()
    steps = document["step_results"]
    assert isinstance(steps, list)

    assert attempts_without_outcome(events) == []
    assert disagreements([StepView.from_json(step) for step in steps], events) == []
    assert document["status"] == "failed"
    assert (steps[0]["processor_id"], steps[0]["attempts"], steps[0]["error_code"]) == (
        "adyen_sim",
        6,
        "unknown",
    )
    answered_events = document["events"]
    assert isinstance(answered_events, list)
    assert [event["type"] for event in answered_events] == [event.event_type for event in events]
    assert [event.event_type for event in events][-2:] == ["StepFailed", "PaymentFailed"]


async def test_a_recovered_payment_counts_in_the_payments_metric_by_its_status(recovered: Started) -> None:
    # The crashed process never counted it: without this count, the payments a crash cut short
    # (failed ones, mostly) are missing from payorch_payments_total while the store holds them.
    scraped = await call(recovered.app, "GET", "/metrics", [], body_of(b""))

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
        if sample.name == "payorch_payments_total"
    }
    assert samples == {("payorch_payments_total", (("status", "failed"),)): 1}


def _stored_range(connection: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
    """The seq range the payment's row names, and the range its events really span."""
    row = connection.execute(
        "SELECT first_seq, last_seq, (SELECT min(seq) FROM events WHERE payment_id = ?), "
        "(SELECT max(seq) FROM events WHERE payment_id = ?) FROM payments WHERE payment_id = ?",
        [PAYMENT, PAYMENT, PAYMENT],
    ).fetchall()
    return tuple(row[0])


async def test_a_recovered_payment_names_the_seq_range_of_its_events(recovered: Started) -> None:
    # GET /v1/payments/{id} reads only the row groups of the range its row names: without its
    # first seq (the crashed process held it), the read of a recovered payment went through every
    # event from the first one ever written.
    assert recovered.parts.writer is not None
    first_seq, last_seq, first_event, last_event = recovered.parts.writer.read_now(_stored_range)

    assert (first_seq, last_seq) == (first_event, last_event)


async def test_the_events_recovery_writes_say_the_payments_currency_and_the_steps_method(
    recovered: Started,
) -> None:
    # The restarted process never saw the payment's PaymentReceived or PlanBuilt: it reads its
    # terms back from them (else its last events had no currency, and the step's no method).
    assert recovered.parts.writer is not None
    rows = recovered.parts.writer.read_now(
        lambda c: c.execute(
            "SELECT event_type, currency, method, status, attempt FROM events WHERE payment_id = ? "
            "ORDER BY seq",
            [PAYMENT],
        ).fetchall()
    )

    assert rows[-2:] == [
        ("StepFailed", "USD", "card", None, 6),
        ("PaymentFailed", "USD", None, "failed", None),
    ]
    assert {row[1] for row in rows} == {"USD"}


def _marks(connection: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """The newest recovery mark, the first seq of the cut-off payment, and the last seq."""
    row = connection.execute(
        "SELECT (SELECT max(below_seq) FROM recovery_marks), "
        "(SELECT min(seq) FROM events WHERE payment_id = ?), (SELECT max(seq) FROM events)",
        [PAYMENT],
    ).fetchall()[0]
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_payment_left_interrupted_is_found_by_every_later_start_and_nothing_older_is_read(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as crashed:
        for event in await _cut_off_payment():
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
    lefts: list[list[str]] = []
    for _ in range(2):  # its merchant gone: left, and payments come after it
        async with running(tmp_path, ELSEWHERE) as elsewhere:
            assert isinstance(elsewhere.parts.recovery, RecoveryReport)
            lefts.append(elsewhere.parts.recovery.left)
            paid = await call(
                elsewhere.app, "POST", "/v1/payments", [OTHER, JSON], body_of(b'{"amount": 1000}')
            )
            assert paid.status == 200, paid.body
            assert elsewhere.parts.writer is not None
            mark, first, _ = elsewhere.parts.writer.read_now(_marks)
            assert mark == first  # the next start looks from the payment left, not past it
    async with running(tmp_path) as restarted:
        finished = restarted.parts.recovery
        assert restarted.parts.writer is not None
        mark, _, last = restarted.parts.writer.read_now(_marks)

    assert lefts == [[f"{PAYMENT}: merchant m_acme is not configured"]] * 2
    assert isinstance(finished, RecoveryReport)
    assert (finished.interrupted, finished.finished, finished.left) == (1, 1, [])
    assert mark == last + 1  # every payment so far has ended: the next start reads none of them


async def test_the_highest_mark_counts_whatever_the_wall_clock_said_when_it_was_noted(tmp_path: Path) -> None:
    # A start while the wall clock ran years ahead noted the cut-off payment's first seq; a later
    # start, the clock set right, noted a mark past it (the payment had ended by then, as every
    # payment below a mark has). The later, higher mark is the one to read from.
    async with running(tmp_path) as crashed:
        for event in await _cut_off_payment():
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
        writer = crashed.parts.writer
        assert writer is not None
        assert [payment for payment, _ in writer.read_now(_interrupted_ids)] == [PAYMENT]
        _, first, last = writer.read_now(_marks)

        def note(connection: duckdb.DuckDBPyConnection) -> None:
            connection.execute(
                "INSERT INTO recovery_marks VALUES (?, TIMESTAMPTZ '2036-01-01 00:00:00+00'), (?, now())",
                [first, last + 1],
            )

        await writer.submit_and_wait(Write(None, apply=note))
        assert writer.read_now(_interrupted_ids) == []


#: The seed's split ($60 Apple Pay, then card) for m_acme, its config saying all_or_nothing.
SPLIT_ALL_OR_NOTHING = """
admin_api_keys: [adm_recovery_admin]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_recovery_acme]
    default_currency: USD
    partial_policy: all_or_nothing
    routing:
      - {method: apple_pay, max_amount_cents: 6000, processors: [applepay_sim]}
      - {method: card, processors: [stripe_sim, adyen_sim]}
processors:
  - {id: applepay_sim, kind: simulated, seed: 7, latency_ms: {p50: 0, p99: 0}}
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
  - {id: adyen_sim, kind: simulated, seed: 99, latency_ms: {p50: 0, p99: 0}}
"""


async def test_a_payment_is_finished_under_the_partial_policy_it_was_accepted_with(tmp_path: Path) -> None:
    """Accepted under allow_partial, cut short after its Apple Pay leg charged and while its card
    leg was out (and charged nothing); the merchant's config says all_or_nothing at the restart.
    The policy recorded with the plan decides: the Apple Pay charge is kept, as it would have
    been without the crash, and the payment ends partially succeeded."""
    processors = {name: ScriptedProcessor(name) for name in ("applepay_sim", "stripe_sim", "adyen_sim")}
    paid = rig(processors, merchant(PartialPolicy.ALLOW_PARTIAL))
    await paid.service.pay(request(10_000, PAYMENT))
    events = paid.sink.events
    card_charged = next(i for i, e in enumerate(events) if type(e) is StepSucceeded and e.step_index == 1)
    async with running(tmp_path, SPLIT_ALL_OR_NOTHING) as crashed:
        for event in events[:card_charged]:
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()

    async with running(tmp_path, SPLIT_ALL_OR_NOTHING) as restarted:
        assert restarted.parts.writer is not None
        stored = restarted.parts.writer.read_now(_stored_events)
        answer = await call(restarted.app, "GET", f"/v1/payments/{PAYMENT}", [ADMIN], body_of(b""))

    plan = next(event for event in stored if type(event) is PlanBuilt)
    assert plan.partial_policy is PartialPolicy.ALLOW_PARTIAL
    document = answer.json()
    assert (document["status"], document["total_processed"]) == ("partially_succeeded", 6000)
    assert [event.event_type for event in stored][-2:] == ["StepFailed", "PaymentCompleted"]
    assert not any(type(event) is CompensationIssued for event in stored)


async def test_a_recovered_payment_is_one_trace_which_its_event_lines_carry(tmp_path: Path) -> None:
    # The lines of the events recovery recorded had no trace id, and its refunds were roots of
    # unrelated traces: an operator could not follow one recovered payment.
    async with running(tmp_path) as crashed:
        for event in await _cut_off_payment():
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
    exporter, stream = InMemorySpanExporter(), io.BytesIO()
    settings = Settings(
        config=parse_config(CONFIG), data_dir=tmp_path, environ={}, span_exporter=exporter, log_stream=stream
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        telemetry = application.state.parts.telemetry
        assert telemetry is not None and telemetry.logs is not None and telemetry.spans.drain is not None
        assert telemetry.spans.drain.flush(10.0) and telemetry.logs.drain.flush(10.0)
        spans = exporter.get_finished_spans()
        lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]

    recovery = [span for span in spans if span.name == "recovery"]
    assert [dict(span.attributes or {}) for span in recovery] == [{"payorch.payment_id": PAYMENT}]
    context = recovery[0].get_span_context()
    assert context is not None
    recorded = [line for line in lines if line.get("payment_id") == PAYMENT]
    assert [line["event"] for line in recorded][-2:] == ["StepFailed", "PaymentFailed"]
    assert {line["trace_id"] for line in recorded} == {f"{context.trace_id:032x}"}
    # Each processor's status query is a child span: which attempt it settles, and what it found.
    queries = [span for span in spans if span.name == "status_query"]
    assert [
        (span.attributes or {}).get(name)
        for span in queries
        for name in ("payorch.processor_id", "payorch.attempt", "payorch.settlement", "payorch.outcome")
    ] == ["stripe_sim", 3, "not_charged", "succeeded", "adyen_sim", 6, "not_charged", "succeeded"]
    assert all(span.parent is not None and span.parent.span_id == context.span_id for span in queries)
    assert all(span.status.status_code is StatusCode.UNSET for span in queries)


def test_the_recovery_line_counts_in_words_that_agree() -> None:
    one = RecoveryReport(interrupted=1, finished=1, settled_attempts=1)
    two = RecoveryReport(interrupted=2, finished=1, settled_attempts=3, left=["pay_x: why"])
    assert one.summary() == (
        "recovery: 1 interrupted payment, 1 finished, 1 attempt settled with its processor, 0 left"
    )
    assert two.summary() == (
        "recovery: 2 interrupted payments, 1 finished, 3 attempts settled with their processors, 1 left"
    )


async def test_a_start_with_nothing_to_recover_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator checking that recovery ran could not tell: the line came only when a payment was
    interrupted."""
    caplog.set_level(logging.INFO, logger="payorch.api")
    async with running(tmp_path):
        pass
    said = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [(level, line) for level, line in said if line.startswith("recovery:")] == [
        (
            "INFO",
            "recovery: 0 interrupted payments, 0 finished, 0 attempts settled with their processors, 0 left",
        )
    ]


async def test_a_start_that_finished_a_payment_warns_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cut = await _cut_off_payment()
    async with running(tmp_path) as crashed:
        for event in cut:
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
    caplog.set_level(logging.INFO, logger="payorch.api")
    caplog.clear()  # the first start's own line
    async with running(tmp_path) as restarted:
        report = restarted.parts.recovery
    assert isinstance(report, RecoveryReport)
    said = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [(level, line) for level, line in said if line.startswith("recovery:")] == [
        ("WARNING", report.summary())
    ]
    assert report.summary().startswith("recovery: 1 interrupted payment, 1 finished, ")


#: The service of CONFIG with processors that take 50 ms to say what they hold.
SLOW_STATUS = CONFIG.replace("latency_ms: {p50: 0, p99: 0}", "latency_ms: {p50: 50, p99: 50}")


async def test_interrupted_payments_are_settled_at_once_not_one_after_another(tmp_path: Path) -> None:
    # One payment at a time, a start that found 93 payments cut short (processors answering in
    # about 0.6 s) took 75 s before it listened: a supervisor's start-up probe gave up first.
    cut_short = [f"pay_cut_off_{n:04d}" for n in range(4)]
    async with running(tmp_path) as crashed:
        for payment_id in cut_short:
            for event in await _cut_off_payment(payment_id):
                await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
    exporter = InMemorySpanExporter()
    settings = Settings(
        config=parse_config(SLOW_STATUS), data_dir=tmp_path, environ={}, span_exporter=exporter
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        report = application.state.parts.recovery
        telemetry = application.state.parts.telemetry
        assert telemetry is not None and telemetry.spans.drain is not None
        assert telemetry.spans.drain.flush(10.0)
    assert isinstance(report, RecoveryReport)
    assert (report.interrupted, report.finished, report.left) == (4, 4, [])

    queries = [span for span in exporter.get_finished_spans() if span.name == "status_query"]
    assert len(queries) == 8  # stripe_sim and adyen_sim, for each payment
    spans = [(span.start_time or 0, span.end_time or 0, span.context.trace_id) for span in queries]
    overlapping = [
        (one, other)
        for one in spans
        for other in spans
        if one[2] != other[2] and one[0] < other[1] and other[0] < one[1]
    ]
    assert overlapping, "each payment's status queries waited for the payment before"


#: The service of CONFIG with stripe_sim gone from it: the cut-off payment's attempts there cannot be
#: settled.
WITHOUT_STRIPE = CONFIG.replace("processors: [stripe_sim, adyen_sim]", "processors: [adyen_sim]").replace(
    "  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}\n", ""
)
ACME_KEY = (b"authorization", b"Bearer sk_recovery_acme")


#: WITHOUT_STRIPE with a second merchant, whose key must not see m_acme's payment.
WITH_GLOBEX = WITHOUT_STRIPE.replace(
    "processors:\n",
    "  - {merchant_id: m_globex, api_keys: [sk_recovery_globex], default_currency: USD,\n"
    "     routing: [{method: card, processors: [adyen_sim]}]}\nprocessors:\n",
    1,
)
GLOBEX_KEY = (b"authorization", b"Bearer sk_recovery_globex")


async def test_a_payment_left_interrupted_reads_processing_as_the_list_shows_it(tmp_path: Path) -> None:
    # Its processor gone from the config at the restart, the payment was left for a later start.
    # GET /v1/payments/{id} said 404 "No payment" ("never charged"), then 503 payment_interrupted
    # while GET /v1/payments listed it 200 `processing`: the one read now agrees with the other,
    # and still says why it waits and that only a later start settles it.
    async with running(tmp_path) as crashed:
        for event in await _cut_off_payment():
            await crashed.parts.records.emit(event)
        await crashed.parts.records.sync()
    async with running(tmp_path, WITH_GLOBEX) as restarted:
        path = f"/v1/payments/{PAYMENT}"
        left = await call(restarted.app, "GET", path, [ACME_KEY], body_of(b""))
        by_admin = await call(restarted.app, "GET", path, [ADMIN], body_of(b""))
        head = await call(restarted.app, "HEAD", path, [ACME_KEY], body_of(b""))
        listed = await call(restarted.app, "GET", "/v1/payments", [ACME_KEY], body_of(b""))
        anothers = await call(restarted.app, "GET", path, [GLOBEX_KEY], body_of(b""))
        anothers_head = await call(restarted.app, "HEAD", path, [GLOBEX_KEY], body_of(b""))
        unknown = await call(restarted.app, "GET", "/v1/payments/pay_never_made", [ACME_KEY], body_of(b""))
    async with running(tmp_path) as settled:
        finished = await call(settled.app, "GET", path, [ACME_KEY], body_of(b""))

    assert (left.status, by_admin.status, head.status, listed.status) == (200, 200, 200, 200), left.body
    assert left.json() == by_admin.json() == listed.json()["payments"][0]  # type: ignore[index]
    shown = left.json()
    assert (shown["payment_id"], shown["status"], shown["success"]) == (PAYMENT, "processing", False)
    assert "processor stripe_sim is not configured" in str(shown["interrupted"])
    assert "next start" in str(shown["interrupted"])
    assert (anothers.status, anothers_head.status, unknown.status) == (404, 404, 404)
    assert finished.status == 200
    assert finished.json()["status"] != "processing" and "interrupted" not in finished.json()
