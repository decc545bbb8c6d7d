"""The drain's thread turns span records into the SDK's ``ReadableSpan``s: every field as the
SDK's own constructors would set it, made for less (issue 6's benchmark: the span drain was 17.5-
21.5 µs of a payment's observability)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

from ingest.observe.spans import Spans, span_context


class Collecting(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _payment_trace(traceparent: str | None = None) -> dict[str, ReadableSpan]:
    """A payment's spans, as the front and the engine open them, exported in one batch."""
    exporter = Collecting()
    spans = Spans(Resource.create({"service.name": "payorch-test"}), exporter)
    server, token = spans.start_server("POST /v1/payments", {"url.path": "/v1/payments"}, traceparent)
    with spans.span("plan", {"payorch.steps": 1}):
        pass
    with spans.span("step", {"payorch.step_index": 0}), spans.span("attempt", {"payorch.outcome": "timeout"}):
        pass
    spans.end_server(server, token)
    spans.close()
    return {span.name: span for span in exporter.spans}


def test_a_span_context_is_the_one_the_sdk_makes() -> None:
    for trace_id, span_id, remote in ((1, 2, False), (2**128 - 1, 2**64 - 1, True), (7, 0, False)):
        made = span_context(trace_id, span_id, remote)
        expected = SpanContext(trace_id, span_id, remote, TraceFlags(TraceFlags.SAMPLED))
        assert made == expected
        assert type(made) is SpanContext
        assert (made.trace_id, made.span_id, made.is_remote, made.trace_flags, made.trace_state) == (
            expected.trace_id,
            expected.span_id,
            expected.is_remote,
            expected.trace_flags,
            expected.trace_state,
        )
        assert made.is_valid is expected.is_valid
    assert not span_context(7, 0, False).is_valid


def test_a_parents_context_is_made_once_for_itself_and_its_children() -> None:
    """Children end before their parent, so one batch holds them all: the parent's context, the
    ``parent`` of each child, is one object (it was made anew for each child and the parent)."""
    spans = _payment_trace()
    server, step = spans["POST /v1/payments"], spans["step"]
    assert server.parent is None
    assert spans["plan"].parent is server.context
    assert step.parent is server.context
    assert spans["attempt"].parent is step.context
    attempt_context, server_context = spans["attempt"].context, server.context
    assert attempt_context is not None and server_context is not None
    assert attempt_context.trace_id == server_context.trace_id


def test_every_field_of_an_exported_span_is_set() -> None:
    """Every field an exporter reads is there, with the value the trace gave it (the drain sets
    the fields itself: test_exported_span.py holds them to the ones the SDK's constructor sets)."""
    spans = _payment_trace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    server, attempt = spans["POST /v1/payments"], spans["attempt"]
    assert server.parent == SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(TraceFlags.SAMPLED)
    )
    assert server.kind is SpanKind.SERVER and attempt.kind is SpanKind.INTERNAL
    assert server.resource.attributes["service.name"] == "payorch-test"
    assert dict(server.attributes or {}) == {"url.path": "/v1/payments"}
    assert attempt.status.status_code is StatusCode.ERROR and attempt.status.description == "timeout"
    assert server.status.status_code is StatusCode.UNSET
    assert attempt.instrumentation_scope is not None and attempt.instrumentation_scope.name == "payorch"
    assert attempt._instrumentation_info is None  # its property is deprecated (a warning)
    assert (attempt.events, attempt.links) == ((), ())
    assert attempt.start_time is not None and attempt.end_time is not None
    assert 0 < attempt.start_time <= attempt.end_time
    assert server.context.is_valid and not server.context.is_remote
    assert server.to_json()  # what the console exporter writes, every field read


def test_a_path_as_short_as_a_card_number_is_still_masked() -> None:
    """The export looks for card numbers only in paths long enough to hold one (13 digits):
    a path of exactly that length is masked, a shorter one kept as it is."""
    exporter = Collecting()
    spans = Spans(Resource.create({}), exporter)
    for path in ("4222222222222", "/v1/payments"):
        server, token = spans.start_server("POST", {"url.path": path})
        spans.end_server(server, token)
    spans.close()
    assert [dict(span.attributes or {})["url.path"] for span in exporter.spans] == [
        "422222***2222",
        "/v1/payments",
    ]


def test_spans_of_two_traces_that_drew_the_same_span_ids_keep_their_own_contexts() -> None:
    # The drain shares a context between a span and its children by span id, told apart by the
    # trace id's object: one batch holding two traces whose span ids are drawn the same.
    exporter = Collecting()
    spans = Spans(Resource.create({}), exporter)
    drawn = iter([0xA1, 7, 8, 9, 0xB2, 7, 8, 9])  # trace, server, step, attempt; twice
    spans._bits = lambda _bits: next(drawn)
    for _ in range(2):
        server, token = spans.start_server("POST /v1/payments", {})
        with spans.span("step", {}), spans.span("attempt", {}):
            pass
        spans.end_server(server, token)
    spans.close()

    assert len(exporter.spans) == 6
    for span in exporter.spans:
        assert span.context is not None
        trace_id = span.context.trace_id
        assert trace_id in (0xA1, 0xB2)
        assert span.parent is None or span.parent.trace_id == trace_id
    parents = {(span.context.trace_id, span.name): span.parent for span in exporter.spans if span.context}
    assert parents[(0xB2, "attempt")] == span_context(0xB2, 8, False)
    assert parents[(0xB2, "step")] == span_context(0xB2, 7, False)


def test_a_trace_id_equal_but_not_the_same_object_still_gets_contexts_of_its_value() -> None:
    exporter = Collecting()
    spans = Spans(Resource.create({}), exporter)
    server, token = spans.start_server("POST /v1/payments", {})
    with spans.span("step", {}) as step:
        step.trace_id = int(str(server.trace_id))  # equal, another object
    spans.end_server(server, token)
    spans.close()

    by_name = {span.name: span for span in exporter.spans}
    assert by_name["step"].parent == span_context(server.trace_id, server.span_id, False)
    assert by_name["POST /v1/payments"].context == span_context(server.trace_id, server.span_id, False)
