"""An ``observer/dropped`` report names why telemetry was dropped: a full buffer, or an exporter
that refused what it was given (a collector answering 500 or not answering at all), so that the
reliability team looks at the collector, not at the buffer sizes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from engine.monitor import ContractMonitor
from engine.types import RequestId
from ingest.api.app import create_app
from ingest.api.metrics import ApiMetrics
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.observe.telemetry import DROPPED, GlobalTags, Telemetry
from ingest.records import MemoryRecords, ViolationQuery
from tests.e2e.server import CONFIG
from tests.engine.fakes import InMemorySink, ManualClock
from tests.ingest.api.test_app import ACME, JSON, body_of, call


class RefusingExporter(SpanExporter):
    """Answers FAILURE to every batch, as the OTLP exporter does for a collector that fails;
    until ``release`` is set it waits first, as it does for one that does not answer."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait()
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


def _telemetry(exporter: SpanExporter, span_capacity: int = 64) -> Telemetry:
    return Telemetry(
        GlobalTags("test"), ApiMetrics(), exporter=exporter, log_stream=None, span_capacity=span_capacity
    )


def _make_spans(telemetry: Telemetry, count: int) -> None:
    for _ in range(count):
        with telemetry.span("attempt", {}):
            pass


async def _report(telemetry: Telemetry) -> list[str]:
    sink = InMemorySink()
    await telemetry.report_drops(ContractMonitor(sink, ManualClock()), RequestId("req_drop_report_1"))
    assert all(violation.contract_id == DROPPED for violation in sink.violations)
    return [violation.message for violation in sink.violations]


async def test_spans_a_failing_exporter_refused_are_reported_as_its_failure() -> None:
    telemetry = _telemetry(RefusingExporter())
    _make_spans(telemetry, 5)
    drain = telemetry.spans.drain
    assert drain is not None and drain.flush()

    assert telemetry.dropped()["spans"] == 5
    assert await _report(telemetry) == [
        "5 telemetry items dropped (in all: 5 spans): the span exporter failed"
    ]
    telemetry.close()


async def test_a_report_names_each_cause_with_its_count() -> None:
    exporter = RefusingExporter()
    exporter.release.clear()
    telemetry = _telemetry(exporter, span_capacity=2)
    drain = telemetry.spans.drain
    assert drain is not None
    _make_spans(telemetry, 1)
    assert exporter.entered.wait(10)  # the exporter holds the first span
    _make_spans(telemetry, 5)  # two fit in the buffer, three are pushed out
    exporter.release.set()
    assert drain.flush()

    assert await _report(telemetry) == [
        "6 telemetry items dropped (in all: 6 spans): buffers full (3), the span exporter failed (3)"
    ]
    _make_spans(telemetry, 1)
    assert drain.flush()
    assert await _report(telemetry) == [
        "1 telemetry items dropped (in all: 7 spans): the span exporter failed"
    ]
    telemetry.close()


async def test_spans_a_stop_cuts_off_are_counted_once_and_reported() -> None:
    exporter = RefusingExporter()
    exporter.release.clear()  # a collector that does not answer
    telemetry = _telemetry(exporter)
    _make_spans(telemetry, 1)
    assert exporter.entered.wait(10)  # the exporter holds the first span
    _make_spans(telemetry, 4)
    telemetry.spans.close(timeout_s=0.05)

    assert telemetry.spans.drop_counts() == (5, 5)
    assert await _report(telemetry) == [
        "5 telemetry items dropped (in all: 5 spans): the span exporter failed"
    ]
    exporter.release.set()  # the exporter's answer comes after the stop gave up on it
    drain = telemetry.spans.drain
    assert drain is not None
    drain.close()  # the thread has ended
    assert telemetry.spans.drop_counts() == (5, 5)
    telemetry.close()


async def test_a_stop_reports_the_spans_its_exporter_failed_to_take(tmp_path: Path) -> None:
    records = MemoryRecords()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        records=records,
        span_exporter=RefusingExporter(),
        drop_report_interval_s=3600,  # only the stop reports
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 10000}'))
    assert answer.status == 200

    query = ViolationQuery(contract_id=DROPPED)
    # Before, the last report came before the spans were exported: none of them was reported.
    assert [violation.message for violation in await records.violations(query)] == [
        "6 telemetry items dropped (in all: 6 spans): the span exporter failed"
    ]
