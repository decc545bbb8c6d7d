"""Telemetry never holds a payment up: with a span exporter and a log sink that block forever,
payments keep their normal latency, and what cannot be delivered is dropped and counted.

Two apps of the same config run side by side, their payments taking turns: one whose sinks
accept at once, one whose sinks block on an event until the end of the test. The blocked app's
buffers (64 items) fill within a few payments; from then on every span and log line is dropped.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import threading
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.observe.telemetry import DROPPED

CONFIG = """
admin_api_keys: [adm_nonblocking]
merchants:
  - merchant_id: m_shop
    api_keys: [sk_nonblocking_shop]
    default_currency: USD
    routing:
      - {method: apple_pay, max_amount_cents: 6000, processors: [applepay_sim]}
      - {method: card, processors: [stripe_sim]}
processors:
  - {id: applepay_sim, kind: simulated, seed: 7, latency_ms: {p50: 0, p99: 0}}
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
"""
SHOP = (b"authorization", b"Bearer sk_nonblocking_shop")
ADMIN = (b"authorization", b"Bearer adm_nonblocking")
JSON = (b"content-type", b"application/json")
BODY = b'{"amount": 10000, "currency": "USD"}'  # Apple Pay $60, then card $40

CAPACITY = 64
WARMUP = 20  # payments per app before timing: the blocked app's buffers are full after these
ROUNDS, PER_ROUND = 6, 40  # timed payments: the apps take turns, PER_ROUND each at a time
CONCURRENT, IN_FLIGHT = 120, 16  # then, on the blocked app, this many with IN_FLIGHT at once
SPANS_PER_PAYMENT, LINES_PER_PAYMENT = 6, 7
MAX_PAYMENT_S = 0.5  # a payment that waited for a stuck sink would wait forever: any bound shows it


class BlockingExporter(SpanExporter):
    """``export`` waits for ``release``; ``entered`` says a batch has reached it."""

    def __init__(self, release: threading.Event | None) -> None:
        self.release = release
        self.entered = threading.Event()
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        if self.release is not None:
            self.release.wait()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class BlockingStream(io.BytesIO):
    """A log sink whose ``write`` waits for ``release`` (when given); keeps what it is given."""

    def __init__(self, release: threading.Event | None) -> None:
        super().__init__()
        self.release = release
        self.entered = threading.Event()

    def write(self, buffer: Any, /) -> int:
        self.entered.set()
        if self.release is not None:
            self.release.wait()
        return super().write(buffer)


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(
    app: FastAPI, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes = b""
) -> Answer:
    """One request straight through the ASGI callable."""
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    answer = Answer(0, b"")
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    return answer


class Shop:
    """One app of the test, with its sinks, and the latency of each payment it answered."""

    def __init__(self, name: str, data_dir: Path, release: threading.Event | None) -> None:
        self.name = name
        self.exporter = BlockingExporter(release)
        self.stream = BlockingStream(release)
        data_dir.mkdir()
        self.app = create_app(
            Settings(
                config=parse_config(CONFIG),
                data_dir=data_dir,
                environ={},
                durable=False,
                ledger_journal=False,
                log_stream=self.stream,
                span_exporter=self.exporter,
                telemetry_capacity=CAPACITY,
                drop_report_interval_s=0.05,
            )
        )
        self.latencies: list[float] = []
        self.payments = 0

    @property
    def parts(self) -> Parts:
        parts: Parts = self.app.state.parts
        return parts

    async def pay(self, *, timed: bool = True) -> None:
        self.payments += 1
        key = (b"idempotency-key", f"{self.name}-{self.payments}".encode())
        started = time.perf_counter()
        answer = await asyncio.wait_for(call(self.app, "POST", "/v1/payments", [SHOP, JSON, key], BODY), 5)
        elapsed = time.perf_counter() - started
        assert answer.status == 200, answer.body
        assert answer.json()["status"] == "succeeded", answer.body
        if timed:
            self.latencies.append(elapsed)
            # A payment held up by a sink would wait as long as the sink: fail at the first one.
            assert elapsed < MAX_PAYMENT_S, f"a {self.name} payment took {elapsed:.3f} s"

    def dropped(self) -> dict[str, int]:
        telemetry = self.parts.telemetry
        assert telemetry is not None
        return telemetry.dropped()

    async def scraped_drops(self) -> dict[str, float]:
        answer = await call(self.app, "GET", "/metrics", [])
        assert answer.status == 200
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(answer.body.decode()):
            for sample in family.samples:
                if sample.name == "payorch_observer_dropped_total":
                    found[sample.labels["signal"]] = sample.value
                elif (
                    sample.name == "payorch_contract_violations_total"
                    and sample.labels["contract_id"] == DROPPED
                ):
                    found["violations"] = sample.value
        return found


async def wait_until(check: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_sinks_that_block_forever_neither_slow_payments_nor_go_uncounted(tmp_path: Path) -> None:
    release = threading.Event()
    normal = Shop("normal", tmp_path / "normal", None)
    blocked = Shop("blocked", tmp_path / "blocked", release)
    async with AsyncExitStack() as stack:
        for shop in (normal, blocked):
            await stack.enter_async_context(shop.app.router.lifespan_context(shop.app))
        # Before the lifespans end, whatever happens: the stuck threads deliver what they hold.
        stack.callback(release.set)
        for _ in range(WARMUP):
            await normal.pay(timed=False)
            await blocked.pay(timed=False)
        # Both of the blocked app's drain threads are now stuck in their sink.
        assert await wait_until(blocked.exporter.entered.is_set)
        assert await wait_until(blocked.stream.entered.is_set)

        for _ in range(ROUNDS):
            for shop in (normal, blocked):
                for _ in range(PER_ROUND):
                    await shop.pay()

        # Latency: the stuck sinks cost the payments nothing.
        typical, held = statistics.median(normal.latencies), statistics.median(blocked.latencies)
        assert held <= 3 * typical + 0.002, (held, typical)

        # Many at once: every one is answered.
        async def worker() -> None:
            for _ in range(CONCURRENT // IN_FLIGHT):
                await blocked.pay(timed=False)

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(IN_FLIGHT))), 30)

        # Drops: every span and line of the blocked app's payments, but for what its full
        # buffer and the batch stuck in its sink hold, is dropped; the metrics say so.
        payments = blocked.payments
        before = blocked.dropped()
        scraped = await blocked.scraped_drops()
        after = blocked.dropped()
        assert before["spans"] >= SPANS_PER_PAYMENT * payments - 2 * CAPACITY, (before, payments)
        assert before["logs"] >= LINES_PER_PAYMENT * payments - 2 * CAPACITY, (before, payments)
        for signal in ("spans", "logs"):
            assert before[signal] <= scraped[signal] <= after[signal], (signal, before, scraped, after)
        assert blocked.exporter.spans == 0
        assert blocked.stream.getvalue() == b""

        # ... and the drops were recorded as an observer/dropped violation.
        found: list[dict[str, Any]] = []
        for _ in range(200):
            answer = await call(blocked.app, "GET", f"/v1/violations?contract_id={DROPPED}", [ADMIN])
            assert answer.status == 200, answer.body
            found = answer.json()["violations"]
            if found:
                break
            await asyncio.sleep(0.05)
        assert found, "no observer/dropped violation was recorded"
        assert {v["contract_id"] for v in found} == {DROPPED}
        assert {v["severity"] for v in found} == {"minor"}
        assert "dropped" in found[0]["message"]
        assert (await blocked.scraped_drops())["violations"] >= 1

        assert normal.exporter.entered.is_set() and normal.stream.entered.is_set()
    # Released, the blocked app's threads delivered the batches they were stuck on.
    assert blocked.exporter.spans > 0
    assert blocked.stream.getvalue().count(b"\n") > 0
