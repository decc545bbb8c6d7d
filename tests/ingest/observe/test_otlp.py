"""With OTEL_EXPORTER_OTLP_ENDPOINT set, spans leave over OTLP/HTTP (protobuf) to that collector:
here a local one that decodes what it is sent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ingest.api.app import create_app
from ingest.api.parts import span_exporter
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from payorch.server import deployment_environment
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call
from tests.ingest.observe.test_seed_observed import Lines
from tests.otlp_collector import Collector


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
    spans = collector.spans()
    assert {path for path, _ in collector.requests} == {"/v1/traces"}
    assert sorted(span.name for span, _ in spans) == sorted(
        ["POST /v1/payments", "plan", "step", "step", "attempt", "attempt"]
    )
    assert len({span.trace_id for span, _ in spans}) == 1
    for _, resource in spans:
        attributes = {item.key: item.value.string_value for item in resource.attributes}
        assert attributes["service.name"] == "payorch"
        assert attributes["deployment.environment.name"] == "qa"


async def test_the_traces_only_variable_is_enough_on_its_own(tmp_path: Path, collector: Collector) -> None:
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url + "/collect/traces"},
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 10000}'))

    assert answer.status == 200
    assert {path for path, _ in collector.requests} == {"/collect/traces"}
    assert "POST /v1/payments" in {span.name for span, _ in collector.spans()}


def test_without_the_variable_nothing_is_exported(tmp_path: Path) -> None:
    assert span_exporter(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ={})) is None


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_the_sdk_switch_turns_export_off_whatever_names_a_collector(tmp_path: Path, value: str) -> None:
    environ = {
        "OTEL_SDK_DISABLED": value,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
    }
    assert span_exporter(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ=environ)) is None
    environ["OTEL_SDK_DISABLED"] = "false"
    assert (
        span_exporter(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ=environ)) is not None
    )


async def test_the_standard_resource_variables_name_the_service_and_its_environment(
    tmp_path: Path, collector: Collector
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "payorch-eu",
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=overridden, deployment.environment.name=pre%2Dprod",
    }
    lines = Lines()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        environ=environ,
        environment=deployment_environment(environ),  # as payorch serve gives it
        log_stream=lines,  # type: ignore[arg-type]
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 500}'))

    assert answer.status == 200
    # payorch's defaults (payorch, development) overrode what the operator set for the collector.
    expected = {"service.name": "payorch-eu", "deployment.environment.name": "pre-prod"}
    for _, resource in collector.spans():
        attributes = {item.key: item.value.string_value for item in resource.attributes}
        assert {key: attributes[key] for key in expected} == expected
    records = lines.records()
    assert records and all({key: line[key] for key in expected} == expected for line in records)


def test_payorchs_own_variable_names_the_environment_before_the_standard_one() -> None:
    standard = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=production"}
    assert deployment_environment(standard) == "production"
    assert deployment_environment({**standard, "PAYORCH_ENVIRONMENT": "staging"}) == "staging"
    assert deployment_environment({"OTEL_RESOURCE_ATTRIBUTES": "service.namespace=payments"}) == "development"


@pytest.mark.parametrize("value", ["none", "NONE", " none "])
def test_the_traces_exporter_variable_set_to_none_turns_export_off(tmp_path: Path, value: str) -> None:
    # A collector named for every signal (the endpoint), with traces switched off on their own.
    environ = {"OTEL_TRACES_EXPORTER": value, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert span_exporter(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ=environ)) is None
    environ["OTEL_TRACES_EXPORTER"] = "otlp"
    assert (
        span_exporter(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ=environ)) is not None
    )


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
        ),
    ],
)
async def test_a_protocol_the_exporter_does_not_speak_is_said_at_start(
    tmp_path: Path, environ: dict[str, str], said: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A gRPC collector (port 4317) answers no OTLP/HTTP request: every span was dropped as "the
    # span exporter failed", and nothing said the protocol asked for was not the one spoken.
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", **environ}
    application = create_app(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ=environ))
    async with application.router.lifespan_context(application):
        pass

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(said), warnings
    assert "http/protobuf" in warnings[0]


async def test_the_protocol_the_exporter_speaks_is_said_nothing_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    application = create_app(Settings(config=parse_config(CONFIG), data_dir=tmp_path, environ=environ))
    async with application.router.lifespan_context(application):
        pass

    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
