"""Counts kept in plain ints by the serving thread (``ApiMetrics.own``) read as prometheus_client's
own would have counted them: every scrape and ``get_sample_value`` sees each count made before it,
histogram sums are the same floats, and other threads' counts are never lost."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from engine.contracts import ContractViolation, Severity
from engine.types import ContractId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from ingest.api.metrics import ApiMetrics

#: Latencies whose sum depends on the order of its additions (0.1 + 0.2 + 0.3 is not 0.6), one on a
#: bucket's bound, one past the last finite bound, and NaN, which the library counts in no bucket.
LATENCIES = (0.1, 0.2, 0.3, 0.0025, 0.0007, 12.5, 1e-9, float("nan"), 0.25, 0.30000000000000004)


def _feed(metrics: ApiMetrics) -> None:
    late = ContractViolation(
        ContractId("router/timeout"), RequestId("req_1"), Severity.MAJOR, "late", "routing", datetime.now(UTC)
    )
    issues = (
        ValidationIssue("metadata.note", "coerced", "note", IssueSeverity.WARNING),
        ValidationIssue("amount", "not_a_number", "x", IssueSeverity.ERROR),
    )
    for round_ in range(3):
        for latency in LATENCIES:
            status = "succeeded" if latency < 1 else "failed"
            metrics.count_payment(status)
            metrics.observe_payment(status, latency * (round_ + 1))
            metrics.count_attempt("stripe_sim", "card", status, latency / 3)
            metrics.count_response("POST", "/v1/payments", 200)
            metrics.count_response("BREW", None, None)
        metrics.count_issues(issues)
        metrics.count_violation(late)
        metrics.count_compensation("adyen_sim", "succeeded")


def _series(metrics: ApiMetrics) -> list[str]:
    """The service's own series of a scrape (the process's, CPU time and all, change between two)."""
    return [line for line in metrics.render().decode().splitlines() if line.startswith("payorch_")]


def test_a_scrape_shows_what_direct_counting_showed() -> None:
    direct, owned = ApiMetrics(), ApiMetrics()
    owned.own()
    _feed(direct)
    _feed(owned)

    assert _series(owned) == _series(direct)
    _feed(owned)  # counted after a scrape: the next one adds them once
    _feed(direct)
    assert _series(owned) == _series(direct)


def test_a_count_is_read_at_once_and_after_the_owner_lets_go() -> None:
    metrics = ApiMetrics()
    metrics.own()
    metrics.count_payment("succeeded")
    metrics.observe_payment("succeeded", 0.1)
    metrics.observe_payment("succeeded", 0.2)

    registry = metrics.registry
    assert registry.get_sample_value("payorch_payments_total", {"status": "succeeded"}) == 1.0
    assert registry.get_sample_value("payorch_payment_latency_seconds_sum", {"status": "succeeded"}) == (
        0.1 + 0.2
    )
    metrics.count_payment("succeeded")
    metrics.disown()
    metrics.count_payment("succeeded")  # no owner: straight into the child
    metrics.observe_payment("succeeded", 0.3)
    metrics.own()
    metrics.observe_payment("succeeded", 0.4)
    assert registry.get_sample_value("payorch_payments_total", {"status": "succeeded"}) == 3.0
    assert registry.get_sample_value("payorch_payment_latency_seconds_sum", {"status": "succeeded"}) == (
        0.1 + 0.2 + 0.3 + 0.4
    )
    assert registry.get_sample_value("payorch_payment_latency_seconds_count", {"status": "succeeded"}) == 4.0


def test_other_threads_counts_are_kept_beside_the_owners() -> None:
    metrics = ApiMetrics()
    metrics.own()
    per_thread = 2_000

    def count() -> None:
        for _ in range(per_thread):
            metrics.count_payment("succeeded")
            metrics.observe_payment("succeeded", 0.5)

    others = [threading.Thread(target=count) for _ in range(3)]
    for thread in others:
        thread.start()
    count()
    for thread in others:
        thread.join()

    registry = metrics.registry
    assert registry.get_sample_value("payorch_payments_total", {"status": "succeeded"}) == 4 * per_thread
    labels = {"status": "succeeded", "le": "0.5"}
    assert registry.get_sample_value("payorch_payment_latency_seconds_bucket", labels) == 4 * per_thread
