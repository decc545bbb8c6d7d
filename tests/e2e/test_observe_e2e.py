"""A real `payorch serve` watched from outside: its spans reach the OTLP collector the standard
variable names, its stderr is JSON lines only (the payment's events among them, tied to the
caller's trace), and /metrics counts the payment, from zero at each start."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import ACME, Server, start_server
from tests.ingest.observe.test_seed_observed import EVENTS
from tests.otlp_collector import Collector

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_a_served_payment_is_traced_logged_and_counted(tmp_path: Path, collector: Collector) -> None:
    environment = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "PAYORCH_ENVIRONMENT": "e2e"}
    server = start_server(tmp_path, env=environment)
    try:
        answer = httpx.post(
            f"{server.url}/v1/payments",
            json={"amount": 10000, "currency": "USD"},
            headers={**ACME, "traceparent": TRACEPARENT},
            timeout=10,
        )
        scraped = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        code = server.stop()  # the drains deliver what they hold before the process ends
    assert code in (0, -15), server.log()
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["request-id"]

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    assert samples[("payorch_payments_total", (("status", "succeeded"),))] == 1
    for processor, method in (("applepay_sim", "apple_pay"), ("stripe_sim", "card")):
        labels = (("method", method), ("outcome", "succeeded"), ("processor", processor))
        assert samples[("payorch_processor_attempts_total", labels)] == 1

    spans = [span for span, _ in collector.spans() if span.trace_id.hex() == TRACE_ID]
    assert sorted(span.name for span in spans) == sorted(
        ["POST /v1/payments", "plan", "step", "step", "attempt", "attempt"]
    )

    lines = [orjson.loads(line) for line in server.log().splitlines() if line.strip()]  # all JSON
    assert all(line["deployment.environment.name"] == "e2e" for line in lines)
    assert any(line["event"] == "Application startup complete." for line in lines)
    assert any(line["event"] == "Application shutdown complete." for line in lines)
    ours = [line for line in lines if line.get("request_id") == request_id]
    assert [line["event"] for line in ours] == EVENTS
    assert {line["trace_id"] for line in ours} == {TRACE_ID}


def test_each_start_counts_from_zero_with_a_multiprocess_directory(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "notes.txt").write_text("not prometheus_client's")
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    unmatched = ("payorch_http_responses_total", (("code", "404"), ("method", "GET"), ("route", "unmatched")))
    counted = []
    for _ in range(2):
        server = start_server(tmp_path, env=environment)
        try:
            for _ in range(3):
                assert httpx.get(f"{server.url}/v1/nowhere", timeout=10).status_code == 404
            scraped = httpx.get(f"{server.url}/metrics", timeout=10).text
        finally:
            code = server.stop()
        assert code == 0, server.log()
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
        }
        counted.append(samples[unmatched])

    assert counted == [3, 3]  # not [3, 6]: the first run's values are not the second's
    assert (directory / "notes.txt").exists()
    assert not list(directory.glob("gauge_livesum_*.db"))  # the stopped process is marked dead


def _unmatched(server: Server) -> int:
    scraped = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "payorch_http_responses_total" and sample.labels["route"] == "unmatched":
                return int(sample.value)
    return 0


def _two_workers(tmp_path: Path) -> dict[str, str]:
    """Data folders ``a`` and ``b`` for two workers, and the environment that shares their metrics."""
    directory = tmp_path / "prometheus"
    for folder in (directory, tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
    return {"PROMETHEUS_MULTIPROC_DIR": str(directory)}


def _only_sample(server: Server, name: str) -> float:
    """The value of the metric family ``name``, which has one sample."""
    scraped = httpx.get(f"{server.url}/metrics", timeout=10).text
    (family,) = (f for f in text_string_to_metric_families(scraped) if f.name == name)
    (sample,) = family.samples
    return sample.value


def _not_found(server: Server, times: int) -> None:
    for _ in range(times):
        assert httpx.get(f"{server.url}/v1/nowhere", timeout=10).status_code == 404


def test_a_worker_started_beside_another_keeps_every_count(tmp_path: Path) -> None:
    environment = _two_workers(tmp_path)
    first = start_server(tmp_path / "a", env=environment)
    second: Server | None = None
    try:
        _not_found(first, 3)
        second = start_server(tmp_path / "b", env=environment)
        _not_found(second, 2)
        both = (_unmatched(first), _unmatched(second))
        assert second.stop() == 0, second.log()
        second = start_server(tmp_path / "b", env=environment)  # a restart of one worker
        _not_found(second, 1)
        after_restart = (_unmatched(first), _unmatched(second))
    finally:
        codes = [server.stop() for server in (first, second) if server is not None]
    assert codes == [0, 0]
    # The second start did not wipe the first worker's counts, nor did the restart: the stopped
    # run's 2 stay in the sum.
    assert [both, after_restart] == [(5, 5), (6, 6)]


FAILING = """
admin_api_keys: [adm_e2e_admin]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_e2e_acme]
    default_currency: USD
    retry: {max_attempts: 1, base_delay_ms: 5, max_delay_ms: 20}
    routing:
      - method: card
        processors: [down_sim]
processors:
  - id: down_sim
    kind: simulated
    seed: 1
    latency_ms: {p50: 5, p99: 10}
    fault_rates: {network_failure: 1.0}
    breaker: {failure_threshold: 2, cool_down_s: 600}
"""


def _circuit(server: Server) -> float:
    return _only_sample(server, "payorch_circuit_state")


def test_a_killed_workers_circuit_leaves_the_other_workers_answer(tmp_path: Path) -> None:
    environment = _two_workers(tmp_path)
    first = start_server(tmp_path / "a", FAILING, env=environment)
    second: Server | None = None
    try:
        second = start_server(tmp_path / "b", FAILING, env=environment)
        for _ in range(2):
            payment = {"amount": 1000, "currency": "USD", "method": "card"}
            answer = httpx.post(f"{second.url}/v1/payments", json=payment, headers=ACME, timeout=10)
            assert answer.json()["status"] == "failed", answer.text
        opened = _circuit(first)
        second.process.kill()  # SIGKILL: it cannot mark itself dead
        second.process.wait()
        after_kill = _circuit(first)
    finally:
        code = first.stop()
        if second is not None:
            second.stop()
    assert code == 0, first.log()
    assert opened == 2  # the worst worker's circuit: the second's opened
    assert after_kill == 0  # the killed worker's circuit no longer counts; the first's is closed


def _events_written(server: Server) -> float:
    return _only_sample(server, "payorch_events_written")


def _pay(server: Server) -> int:
    """A payment's number of stored events."""
    body = {"amount": 10000, "currency": "USD"}
    answer = httpx.post(f"{server.url}/v1/payments", json=body, headers=ACME, timeout=10)
    assert answer.status_code == 200, answer.text
    url = f"{server.url}/v1/payments/{answer.json()['payment_id']}"
    return len(httpx.get(url, headers=ACME, timeout=10).json()["events"])


def test_any_worker_shows_the_events_every_worker_wrote(tmp_path: Path) -> None:
    environment = _two_workers(tmp_path)
    first = start_server(tmp_path / "a", env=environment)
    second: Server | None = None
    try:
        second = start_server(tmp_path / "b", env=environment)
        events = _pay(first) + _pay(second) + _pay(second)
        written = (_events_written(first), _events_written(second))
    finally:
        codes = [server.stop() for server in (first, second) if server is not None]
    assert codes == [0, 0]
    assert written == (events, events)  # not each worker's own
