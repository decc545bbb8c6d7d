"""With OTEL_EXPORTER_OTLP_ENDPOINT set, spans leave over OTLP/HTTP (protobuf) to that collector:
here a local one that decodes what it is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.api.app import create_app
from ingest.api.parts import span_exporter
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append((self.path, request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_spans_reach_the_collector_named_by_the_standard_variable(
    tmp_path: Path, collector: Collector
) -> None:
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        environ={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url + "/"},
        environment="qa",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 10000}'))
    # The lifespan's end delivered what was buffered.

    assert answer.status == 200
    spans = [
        (span, resource.resource)
        for path, request in collector.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert {path for path, _ in collector.requests} == {"/v1/traces"}
    assert sorted(span.name for span, _ in spans) == sorted(
        ["POST /v1/payments", "plan", "step", "step", "attempt", "attempt"]
    )
    assert len({span.trace_id for span, _ in spans}) == 1
    for _, resource in spans:
        attributes = {item.key: item.value.string_value for item in resource.attributes}
        assert attributes["service.name"] == "payorch"
        assert attributes["deployment.environment.name"] == "qa"


def test_without_the_variable_nothing_is_exported(tmp_path: Path) -> None:
    assert span_exporter(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ={})) is None
