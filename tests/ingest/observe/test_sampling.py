"""``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` choose which traces are exported, as
OpenTelemetry's SDKs read them: every trace was exported whatever they said, so an operator could
export every trace or none. A trace that is not sampled still gives the log lines their ids, and
its payment still counts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.observe.spans import Sampling, sampling
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call
from tests.ingest.observe.test_seed_observed import Lines

SAMPLED_CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SPANS = sorted(["POST /v1/payments", "plan", "step", "step", "attempt", "attempt"])


async def _exported(tmp_path: Path, environ: dict[str, str], traceparent: str | None) -> list[str]:
    """The names of the spans exported for one payment, once its log lines are checked."""
    spans, lines = InMemorySpanExporter(), Lines()
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=tmp_path,
        environ=environ,
        log_stream=lines,  # type: ignore[arg-type]
        span_exporter=spans,
    )
    application = create_app(settings)
    headers = [ACME, JSON] + ([(b"traceparent", traceparent.encode())] if traceparent else [])
    async with application.router.lifespan_context(application):
        answer = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 10000}'))
    assert answer.status == 200
    events = [line for line in lines.records() if line["event"] == "PaymentCompleted"]
    assert len(events) == 1 and isinstance(events[0]["trace_id"], str)  # ids, sampled or not
    return sorted(span.name for span in spans.get_finished_spans())


@pytest.mark.parametrize(
    ("environ", "traceparent", "exported"),
    [
        ({}, None, True),  # the default: parentbased_always_on
        ({"OTEL_TRACES_SAMPLER": "always_off"}, None, False),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, SAMPLED_CALLER, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, None, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, SAMPLED_CALLER, True),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, SAMPLED_CALLER, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, None, False),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
            SAMPLED_CALLER,
            True,
        ),
    ],
)
async def test_the_sampler_variables_choose_the_traces_exported(
    tmp_path: Path, environ: dict[str, str], traceparent: str | None, exported: bool
) -> None:
    names = await _exported(tmp_path, environ, traceparent)
    assert names == (SPANS if exported else [])


def test_a_ratio_samples_the_trace_ids_below_its_share_of_their_low_64_bits() -> None:
    half, problem = sampling({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"})
    high = 0xABCDEF << 64  # the upper half of a trace id does not count, as in the SDK's sampler
    assert problem is None
    assert half.root(high | 0) and half.root(high | (2**63 - 1))
    assert not half.root(high | 2**63) and not half.root(high | (2**64 - 1))
    assert sampling({"OTEL_TRACES_SAMPLER": "traceidratio"}) == (
        Sampling(ratio=1.0, parent_based=False),
        None,
    )


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER=jaeger_remote is not a sampler"),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
            "OTEL_TRACES_SAMPLER_ARG=half is not a ratio from 0 to 1",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "OTEL_TRACES_SAMPLER_ARG=1.5 is not a ratio from 0 to 1",
        ),
    ],
)
async def test_a_sampler_that_cannot_be_used_is_said_at_start_and_every_trace_is_sampled(
    tmp_path: Path, environ: dict[str, str], said: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        config=parse_config(CONFIG), data_dir=tmp_path, environ=environ, span_exporter=InMemorySpanExporter()
    )
    application = create_app(settings)
    assert not caplog.records  # not while the app is built: payorch serve's JSON log is not there yet
    async with application.router.lifespan_context(application):
        pass

    assert application.state.parts.telemetry.spans.sampling.ratio == 1.0
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage().startswith(said) for record in warnings] == [True]
