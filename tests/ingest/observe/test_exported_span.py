"""A span record is the SDK's ``ReadableSpan``, its fields set by the record and the span drain
rather than by ``ReadableSpan``'s constructor: the span an exporter gets must be the one the
constructor makes, field for field, and stay so if the SDK adds one."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from ingest.observe.spans import SpanRecord, Spans
from tests.ingest.observe.test_span_export import Collecting

#: Every property an exporter reads (the OTLP encoder, the console exporter's ``to_json``).
_READ = (
    "name",
    "context",
    "parent",
    "resource",
    "attributes",
    "events",
    "links",
    "kind",
    "status",
    "start_time",
    "end_time",
    "instrumentation_scope",
    "dropped_attributes",
    "dropped_events",
    "dropped_links",
)


def _constructed(span: ReadableSpan) -> ReadableSpan:
    """``span`` made again by the SDK's own constructor, from what its properties say."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def test_an_exported_span_is_the_one_the_sdk_constructor_makes() -> None:
    exporter = Collecting()
    spans = Spans(Resource.create({"service.name": "payorch-test"}), exporter)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    server, token = spans.start_server("POST /v1/payments", {"url.path": "/v1/4111111111111111"}, traceparent)
    with spans.span("step", {"payorch.step_index": 0}), spans.span("attempt", {"payorch.outcome": "timeout"}):
        pass
    try:
        with spans.span("compensation", {}):
            raise RuntimeError("refund failed")
    except RuntimeError:
        pass
    spans.end_server(server, token)
    spans.close()
    assert [span.name for span in exporter.spans] == ["attempt", "step", "compensation", "POST /v1/payments"]
    for span in exporter.spans:
        assert type(span) is SpanRecord
        made = _constructed(span)
        for name in _READ:
            assert getattr(span, name) == getattr(made, name), name
        assert span._instrumentation_info is made._instrumentation_info is None
        assert span.to_json() == made.to_json()
    assert dict(exporter.spans[-1].attributes or {}) == {"url.path": "/v1/411111******1111"}


def test_an_exported_span_has_every_field_the_sdk_constructor_sets() -> None:
    """A field the SDK's constructor sets and the drain does not (a new SDK's) fails here, not in
    an exporter that reads it."""
    made = ReadableSpan("attempt")
    # The SDK's fields are the record's underscored ones that are not its own.
    own = {"_finish", "_started_ns", "_token"}
    slots = {name for name in SpanRecord.__slots__ if name[:1] == "_" and name not in own}
    in_class = {name for name in vars(SpanRecord) if name[:1] == "_" != name[1:2] and name not in slots | own}
    assert set(vars(made)) == slots | in_class
    assert in_class == {"_events", "_links", "_instrumentation_info"}
