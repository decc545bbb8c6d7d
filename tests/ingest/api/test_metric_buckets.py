"""The latency histograms' buckets: one on the merchants' objectives and timeouts, so that "within
the objective" is a count, but never so many that a config of many merchants multiplies the
series a scrape carries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.api.app import create_app
from ingest.api.metrics import DEFAULT_BUCKETS, MAX_ADDED, buckets_with
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.ingest.api.test_app import body_of, call


def merchant(number: int, objective_ms: int, timeout_ms: int) -> str:
    return f"""
  - merchant_id: m_{number:04}
    api_keys: [sk_buckets_{number:04}]
    default_currency: USD
    timeout_ms: {timeout_ms}
    latency_slo_ms: {objective_ms}
    routing:
      - {{method: card, processors: [quick_sim]}}"""


def many_merchants(count: int) -> str:
    """``count`` merchants, each with an objective and a timeout of its own, but for a tenth of them
    that share 800 ms and 3 s."""
    merchants = [
        merchant(n, 800, 3000) if n % 10 == 0 else merchant(n, 301 + n, 1001 + n) for n in range(count)
    ]
    return (
        "admin_api_keys: [adm_buckets]\nmerchants:"
        + "".join(merchants)
        + "\nprocessors:\n  - {id: quick_sim, kind: simulated, seed: 1, latency_ms: {p50: 0, p99: 0}}\n"
    )


def bounds(text: str, metric: str) -> set[str]:
    return {
        sample.labels["le"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{metric}_bucket"
    }


async def test_many_merchants_add_a_bounded_number_of_buckets_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 merchants, 180 objectives (0.5 s is a default bucket) and 181 timeouts of their own.
    application = create_app(
        Settings(config=parse_config(many_merchants(200)), data_dir=tmp_path, environ={})
    )
    with caplog.at_level(logging.WARNING, logger="payorch.api"):
        async with application.router.lifespan_context(application):
            paid = await call(
                application,
                "POST",
                "/v1/payments",
                [(b"authorization", b"Bearer sk_buckets_0001"), (b"content-type", b"application/json")],
                body_of(b'{"amount": 1000, "method": "card"}'),
            )
            scraped = (await call(application, "GET", "/metrics", [], body_of(b""))).body.decode()

    assert paid.status == 200
    for metric, shared in (
        ("payorch_payment_latency_seconds", "0.8"),
        ("payorch_step_latency_seconds", "3.0"),
    ):
        found = bounds(scraped, metric)
        assert len(found) == len(DEFAULT_BUCKETS) + MAX_ADDED + 1, metric  # +Inf
        assert shared in found  # the value the most merchants share keeps its bucket
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics:")]
    assert warned == [
        f"metrics: a latency histogram adds {MAX_ADDED} buckets at most for the merchants' values, "
        "those the most merchants set, so payorch_step_latency_seconds has none at 171 timeout_ms "
        "values and payorch_payment_latency_seconds has none at 170 latency_slo_ms values; they are "
        "counted in the buckets around them (payment/latency-slo violations are still recorded)"
    ]


def test_a_few_thresholds_each_get_a_bucket_and_nothing_is_said() -> None:
    chosen = buckets_with([0.8, 0.12, 0.8, 2.5, 0.0])  # 2.5 s is a default bucket already; 0: none
    assert chosen.bounds == tuple(sorted({*DEFAULT_BUCKETS, 0.8, 0.12}))
    assert chosen.left_out == 0


def test_past_the_limit_the_most_shared_thresholds_win_then_the_smaller() -> None:
    shared = [0.7] * 3 + [0.9] * 2
    chosen = buckets_with([*shared, 0.4, 0.3, 0.6], limit=3)
    assert set(chosen.bounds) - set(DEFAULT_BUCKETS) == {0.7, 0.9, 0.3}
    assert chosen.left_out == 2
