"""Circuit breakers through the API: one shopper's card never takes a processor out of service
for every merchant, and a step skipped because every circuit is open is in the payment's events
as in its result, without being counted as an attempt."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.circuit_breaker import BreakerPolicy, CircuitBreakers, CircuitPair, CircuitState
from engine.types import MerchantId, ProcessorId
from ingest.api.app import create_app
from ingest.api.metrics import ApiMetrics
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import load_sample_config, parse_config
from ingest.observe.circuits import CircuitReporter
from tests.ingest.api.test_app import JSON, Answer, body_of, call

SAMPLE_ACME = (b"authorization", b"Bearer sk_test_acme_123")
SAMPLE_GLOBEX = (b"authorization", b"Bearer sk_test_globex_456")


async def pay(app: object, key: tuple[bytes, bytes], body: dict[str, object]) -> Answer:
    return await call(app, "POST", "/v1/payments", [key, JSON], body_of(orjson.dumps(body)))


def steps(answer: Answer) -> list[tuple[object, ...]]:
    """Each step result's processor, attempts and error code."""
    results: list[dict[str, object]] = answer.json()["step_results"]  # type: ignore[assignment]
    return [(s["processor_id"], s["attempts"], s["error_code"]) for s in results]


def parts_of(app: object) -> Parts:
    parts: Parts = app.state.parts  # type: ignore[attr-defined]
    return parts


@pytest.fixture
async def sample_app(tmp_path: Path) -> AsyncIterator[object]:
    """The app on the sample configuration ``payorch demo`` runs with."""
    application = create_app(Settings(config=load_sample_config(), data_dir=tmp_path))
    async with application.router.lifespan_context(application):
        yield application


async def test_a_card_that_keeps_failing_leaves_the_circuits_closed_for_everyone(sample_app: object) -> None:
    # Stripe's test card for a processing error that may be retried (PRODUCT.md section 5).
    retryable_error = {"amount": 4000, "method": "card", "metadata": {"card_number": "4000000000000119"}}
    for _ in range(2):
        failed = await pay(sample_app, SAMPLE_ACME, retryable_error)
        assert failed.status == 200
        assert failed.json()["final_error"] == "processing_error"
        assert steps(failed) == [("adyen_sim", 6, "processing_error")]

    states = parts_of(sample_app).engine.router.breakers.states()
    assert set(states.values()) == {CircuitState.CLOSED}
    good = {"amount": 2500, "method": "card", "metadata": {"card_number": "4242424242424242"}}
    other = await pay(sample_app, SAMPLE_GLOBEX, good)
    assert other.json()["status"] == "succeeded"
    assert steps(other) == [("adyen_sim", 1, None)]


#: Both card processors fail every attempt with a network failure (a processor fault): five
#: payments open both circuits (the default breaker), and the next payment's step is skipped.
DOWN_CONFIG = """
admin_api_keys: [adm_circuits]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_circuits_acme]
    default_currency: USD
    retry: {max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2}
    routing:
      - method: card
        processors: [down_sim, spare_sim]
processors:
  - id: down_sim
    kind: simulated
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {network_failure: 1.0}
  - id: spare_sim
    kind: simulated
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {network_failure: 1.0}
"""
DOWN_ACME = (b"authorization", b"Bearer sk_circuits_acme")


@pytest.fixture(params=["duckdb", "memory"])
async def down_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    settings = Settings(
        config=parse_config(DOWN_CONFIG), data_dir=tmp_path, durable=request.param == "duckdb"
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def circuit_states(scraped: Answer) -> dict[str, float]:
    """``payorch_circuit_state`` by processor, from a ``/metrics`` answer."""
    return {
        sample.labels["processor"]: sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
        if sample.name == "payorch_circuit_state"
    }


async def test_metrics_show_which_processors_circuits_are_open(down_app: object) -> None:
    before = await call(down_app, "GET", "/metrics", [], body_of(b""))
    assert circuit_states(before) == {"down_sim": 0, "spare_sim": 0}  # closed, before any payment

    for _ in range(4):
        await pay(down_app, DOWN_ACME, {"amount": 1250, "method": "card"})
    still = await call(down_app, "GET", "/metrics", [], body_of(b""))
    assert circuit_states(still) == {"down_sim": 0, "spare_sim": 0}  # four faults in a row: closed
    await pay(down_app, DOWN_ACME, {"amount": 1250, "method": "card"})

    after = await call(down_app, "GET", "/metrics", [], body_of(b""))
    assert circuit_states(after) == {"down_sim": 2, "spare_sim": 2}  # open: both are skipped


async def test_a_circuit_that_opens_says_so_in_the_log(
    down_app: object, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, only the gauge changed: the log showed nothing of a processor taken out of service.
    with caplog.at_level(logging.INFO, logger="payorch.circuits"):
        for _ in range(5):
            await pay(down_app, DOWN_ACME, {"amount": 1250, "method": "card"})
    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "payorch.circuits"]
    assert told == [
        (
            "WARNING",
            f"circuit of {processor} opened: 5 processor faults in a row (timeouts, network failures, "
            "refusals, bad answers); its charges are skipped for 30 s, then one probe goes",
        )
        for processor in ("down_sim", "spare_sim")
    ]


def test_each_change_of_a_circuit_is_one_line_and_the_gauge(caplog: pytest.LogCaptureFixture) -> None:
    metrics = ApiMetrics()
    reporter = CircuitReporter(metrics, BreakerPolicy(failure_threshold=2, cool_down_s=7))
    with caplog.at_level(logging.INFO, logger="payorch.circuits"):
        for state in (CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED):
            reporter.circuit_changed("stripe_sim", state)
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "circuit of stripe_sim opened"),
        ("INFO", "circuit of stripe_sim half-open"),
        ("INFO", "circuit of stripe_sim closed"),
    ]
    assert "2 processor faults in a row" in caplog.records[0].getMessage()
    assert "skipped for 7 s" in caplog.records[0].getMessage()
    gauge = metrics.registry.get_sample_value("payorch_circuit_state", {"processor": "stripe_sim"})
    assert gauge == 0  # closed again


def test_a_merchants_own_circuit_is_told_in_a_line_and_leaves_the_gauge_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ApiMetrics()
    policy = BreakerPolicy(failure_threshold=5, cool_down_s=30, min_timeout_ms=1000)
    reporter = CircuitReporter(metrics, BreakerPolicy(), {ProcessorId("stripe_sim"): policy})
    with caplog.at_level(logging.INFO, logger="payorch.circuits"):
        reporter.merchant_circuit_changed("stripe_sim", "m_hasty", CircuitState.OPEN)
        reporter.merchant_circuit_changed("stripe_sim", "m_hasty", CircuitState.HALF_OPEN)
        reporter.merchant_circuit_changed("stripe_sim", "m_hasty", CircuitState.CLOSED)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "circuit of stripe_sim for merchant m_hasty opened: its timeout_ms, shorter than the "
            "processor's min_timeout_ms 1000, ran out 5 times in a row; its charges there are skipped "
            "for 30 s (other merchants' are not), then one probe goes",
        ),
        ("INFO", "circuit of stripe_sim for merchant m_hasty closed: its probe was answered"),
    ]
    assert metrics.registry.get_sample_value("payorch_circuit_state", {"processor": "stripe_sim"}) is None


async def test_a_step_skipped_for_open_circuits_has_its_event_and_no_attempt_counted(
    down_app: object,
) -> None:
    card = {"amount": 1250, "method": "card"}
    for _ in range(5):
        failed = await pay(down_app, DOWN_ACME, card)
        assert steps(failed) == [("spare_sim", 2, "network_failure")]
    assert set(parts_of(down_app).engine.router.breakers.states().values()) == {CircuitState.OPEN}

    skipped = await pay(down_app, DOWN_ACME, card)
    got = await call(
        down_app, "GET", f"/v1/payments/{skipped.json()['payment_id']}", [DOWN_ACME], body_of(b"")
    )

    assert skipped.json()["final_error"] == "processor_unavailable"
    assert steps(skipped) == [("down_sim", 0, "processor_unavailable")]
    events: list[dict[str, object]] = got.json()["events"]  # type: ignore[assignment]
    assert [event["type"] for event in events] == [
        "PaymentReceived",
        "PlanBuilt",
        "StepFailed",
        "PaymentFailed",
    ]
    step_failed = {key: events[2][key] for key in ("step_index", "processor_id", "error_code", "retryable")}
    assert step_failed == {
        "step_index": 0,
        "processor_id": "down_sim",
        "error_code": "processor_unavailable",
        "retryable": True,
    }
    assert (events[2]["attempt"], events[2]["latency_ms"]) == (0, 0)

    # Only the ten attempts sent count (PRODUCT.md section 8); the skipped step sent none.
    scraped = await call(down_app, "GET", "/metrics", [], body_of(b""))
    attempts = {
        (sample.labels["processor"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
        if sample.name == "payorch_processor_attempts_total"
    }
    assert attempts == {("down_sim", "network_failure"): 5, ("spare_sim", "network_failure"): 5}


#: Two processors that fail every attempt: ``tight_sim`` with a breaker of its own, opening at 2
#: faults in a row, ``loose_sim`` with the default (5).
TUNED_CONFIG = """
merchants:
  - merchant_id: m_acme
    api_keys: [sk_circuits_acme]
    default_currency: USD
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 2}
    routing:
      - {method: card, processors: [tight_sim]}
      - {method: google_pay, processors: [loose_sim]}
processors:
  - id: tight_sim
    kind: simulated
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {network_failure: 1.0}
    breaker: {failure_threshold: 2, cool_down_s: 7}
  - id: loose_sim
    kind: simulated
    latency_ms: {p50: 0, p99: 0}
    fault_rates: {network_failure: 1.0}
"""


async def test_each_processor_opens_after_its_own_breakers_faults_and_says_its_figures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every breaker followed one policy (5 faults, 30 s): processors[].breaker was not read.
    application = create_app(Settings(config=parse_config(TUNED_CONFIG), data_dir=tmp_path, durable=False))
    async with application.router.lifespan_context(application):
        with caplog.at_level(logging.INFO, logger="payorch.circuits"):
            for method in ("card", "card", "google_pay", "google_pay"):
                failed = await pay(application, DOWN_ACME, {"amount": 1250, "method": method})
                assert failed.json()["final_error"] == "network_failure"
            scraped = await call(application, "GET", "/metrics", [], body_of(b""))
        assert circuit_states(scraped) == {"tight_sim": 2, "loose_sim": 0}  # open after 2; closed
        skipped = await pay(application, DOWN_ACME, {"amount": 1250, "method": "card"})
    assert steps(skipped) == [("tight_sim", 0, "processor_unavailable")]
    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "payorch.circuits"]
    assert told == [
        (
            "WARNING",
            "circuit of tight_sim opened: 2 processor faults in a row (timeouts, network failures, "
            "refusals, bad answers); its charges are skipped for 7 s, then one probe goes",
        )
    ]


@pytest.mark.parametrize(
    ("cool_down_s", "said"), [(1.5, "1.5 s"), (0.25, "0.25 s"), (30.0, "30 s"), (60, "60 s")]
)
def test_the_opening_line_says_the_cool_down_as_configured(
    cool_down_s: float, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    # "%.0f" said 2 s for 1.5 s and 0 s for 0.25 s: not the figures the operator configured.
    reporter = CircuitReporter(ApiMetrics(), BreakerPolicy(cool_down_s=cool_down_s))
    with caplog.at_level(logging.WARNING, logger="payorch.circuits"):
        reporter.circuit_changed("stripe_sim", CircuitState.OPEN)
    assert f"its charges are skipped for {said}, then one probe goes" in caplog.records[0].getMessage()


def test_a_failed_probe_says_the_circuit_opened_again_on_its_one_fault(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # It said "5 processor faults in a row" again, when one probe had failed.
    reporter = CircuitReporter(ApiMetrics(), BreakerPolicy(failure_threshold=5, cool_down_s=30))
    with caplog.at_level(logging.WARNING, logger="payorch.circuits"):
        for state in (CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.OPEN):
            reporter.circuit_changed("stripe_sim", state)
    assert [r.getMessage() for r in caplog.records] == [
        "circuit of stripe_sim opened: 5 processor faults in a row (timeouts, network failures, "
        "refusals, bad answers); its charges are skipped for 30 s, then one probe goes",
        "circuit of stripe_sim opened again: its probe failed; its charges are skipped for 30 s, "
        "then one probe goes",
    ]


def test_a_merchants_failed_probe_says_its_circuit_opened_again_on_its_one_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A merchant whose 5 ms ran out at a processor answering in 40 ms: after the cool-down its
    # probe ran out once, and the line said "ran out 5 times in a row" again.
    policy = BreakerPolicy(failure_threshold=5, cool_down_s=30, min_timeout_ms=1000)
    stripe, hasty = ProcessorId("stripe_sim"), MerchantId("m_hasty")
    reporter = CircuitReporter(ApiMetrics(), BreakerPolicy(), {stripe: policy})
    breakers = CircuitBreakers(policies={stripe: policy}, merchant_watcher=reporter)
    pair = CircuitPair(breakers[stripe], breakers.merchant_circuit(stripe, hasty))
    with caplog.at_level(logging.INFO, logger="payorch.circuits"):
        for _ in range(5):
            assert pair.allow(0.0)
            pair.record_failure(0.0, pair.sent(), budget_expired=True)
        assert not pair.allow(10.0)
        assert pair.allow(31.0)  # the probe
        pair.record_failure(31.0, pair.sent(), budget_expired=True)
        assert not pair.allow(32.0)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "circuit of stripe_sim for merchant m_hasty opened: its timeout_ms, shorter than the "
            "processor's min_timeout_ms 1000, ran out 5 times in a row; its charges there are skipped "
            "for 30 s (other merchants' are not), then one probe goes",
        ),
        (
            "WARNING",
            "circuit of stripe_sim for merchant m_hasty opened again: its probe ran out of its "
            "timeout_ms, shorter than the processor's min_timeout_ms 1000; its charges there are "
            "skipped for 30 s (other merchants' are not), then one probe goes",
        ),
    ]
    assert breakers[stripe].state is CircuitState.CLOSED  # the others' circuit knew nothing of it
