"""The series a scrape carries: those of PRODUCT.md section 8 and the README's, and no
``_created`` series, which no dashboard reads."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.contracts import ContractViolation, Severity
from engine.types import ContractId, RequestId
from ingest.api.metrics import ApiMetrics


def _scraped_names(metrics: ApiMetrics) -> list[str]:
    return [
        sample.name
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    ]


def test_counters_and_histograms_carry_no_created_series() -> None:
    """Every labelled counter and histogram child had a ``<name>_created`` series beside it (the
    time it was first counted): one more series each, which no dashboard or alert of section 8
    reads, and which several workers' scrapes (summed from their files) never had."""
    metrics = ApiMetrics()
    metrics.count_payment("succeeded")
    metrics.count_attempt("stripe_sim", "card", "succeeded", 0.05)
    metrics.count_response("GET", "/healthz", 200)
    late = ContractViolation(
        ContractId("router/timeout"), RequestId("req_1"), Severity.MAJOR, "late", "routing", datetime.now(UTC)
    )
    metrics.count_violation(late)
    metrics.observe_payment("succeeded", 0.1)

    names = _scraped_names(metrics)

    assert not [name for name in names if name.endswith("_created")]
    for kept in (
        "payorch_payments_total",
        "payorch_processor_attempts_total",
        "payorch_step_latency_seconds_count",
        "payorch_http_responses_total",
        "payorch_contract_violations_total",
        "payorch_payment_latency_seconds_bucket",
        "process_start_time_seconds",  # a gauge: the process's start, which restart alerts read
    ):
        assert kept in names, kept


def test_other_registries_of_the_process_keep_their_created_series() -> None:
    """The choice is the service's registry's, not prometheus_client's switch for the process."""
    ApiMetrics().render()
    registry = CollectorRegistry()
    Counter("library_calls_total", "A library's own counter.", registry=registry).inc()
    assert b"library_calls_created" in generate_latest(registry)
