"""Traces: a server span per request, child spans for the plan, each step and each attempt.

A span on the payment path is a small record (names, ids, clock readings, attributes) kept in
a context variable while it is open and put on a :class:`~ingest.observe.drain.Drain` when it
ends. The record is the OpenTelemetry SDK's ``ReadableSpan`` itself, its fields in slots: the
drain's thread completes it (its contexts, status, the service's ``Resource``) and hands it to
the exporter: OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, an in-memory exporter
in tests, none otherwise.

Why not the SDK's tracer on the path: starting and ending one SDK span cost 14 µs here, and a
two-step payment has six; the record costs under 1 µs, and completing it later about 1 µs, off
the path (bench: ``python -m bench.bench_observe``). The drain made a second object per span,
the SDK's span, until that object's making and freeing were seen to cost about as much as all
the rest of its work.

A span starts at the wall clock's time and lasts what the monotonic clock measured: ended by the
wall clock, a span the clock was stepped back an hour during lasted minus an hour.

Ids follow W3C trace context: 128-bit trace ids, 64-bit span ids; a request that carries a
``traceparent`` header continues the caller's trace.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from functools import partial

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE, Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from engine.observer import OUTCOME, SUCCEEDED, SpanAttributes
from ingest.observe.drain import Drain
from ingest.parsing.masking import MIN_CARD_DIGITS, mask_card_numbers

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ID_LIMITS = (1 << 128) - 1, (1 << 64) - 1
URL_PATH = "url.path"  # the server span's attribute (OpenTelemetry's HTTP conventions)
_UNSET, _ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)


class ExportFailedError(Exception):
    """The exporter answered FAILURE: the batch is counted as dropped."""


class SpanRecord(ReadableSpan):
    """An open or ended span, as the payment path keeps it: the SDK's ``ReadableSpan`` whose
    properties exporters read, in slots. Its name, attributes, kind and times are set here; its
    context, parent context, status, resource and scope by the drain's thread as it exports it
    (see :meth:`Spans._export`). Its constructor is not the SDK's: that one's defaults and
    checks cost more than all of this (test_exported_span.py holds the fields to the ones it
    sets)."""

    # The SDK's fields (read by ReadableSpan's properties) and payorch's (without the SDK's
    # underscore, but for the clock reading, the end's receiver and the context token).
    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_finish",
        "_instrumentation_scope",
        "_kind",
        "_name",
        "_parent",
        "_resource",
        "_start_time",
        "_started_ns",
        "_status",
        "_token",
        "failed",
        "on_end",
        "parent_id",
        "parent_record",
        "remote_parent",
        "sampled",
        "span_id",
        "trace_id",
    )
    #: Always empty: in the class (the SDK's constructor sets them per span).
    _events: Sequence[Event] = ()
    _links: Sequence[Link] = ()
    _instrumentation_info: InstrumentationInfo | None = None

    _name: str
    #: Made for the span (engine.observer): the span's watchers add to it while it is open.
    _attributes: dict[str, str | int]
    _start_time: int
    _end_time: int | None
    trace_id: int
    span_id: int
    parent_id: int  # 0: a root span
    remote_parent: bool
    sampled: bool
    failed: bool

    def __init__(
        self,
        spans: Spans,
        name: str,
        attributes: SpanAttributes,
        kind: SpanKind = SpanKind.INTERNAL,
        caller: tuple[int, int, bool] | None = None,
    ) -> None:
        """A span of ``spans``, to be entered: a child of the current span (a root of a new trace
        when none is open); or a server span (``kind``), a root of this process that continues
        ``caller``'s trace (a parsed ``traceparent``) when there is one. A dict of attributes is
        kept as it is (engine.observer: it is made for the span).

        What :meth:`Spans.span` did, in this one call: the engine's ``span`` is this class with
        its ``spans`` bound (five spans a payment, a Python call each fewer)."""
        self._name = name
        self._attributes = attributes if type(attributes) is dict else dict(attributes)
        self._kind = kind
        bits = spans._bits
        parent = current.get() if kind is _INTERNAL else None
        #: A child's parent, while it is open.
        self.parent_record: SpanRecord | None = parent
        sampled: bool
        if parent is not None:
            self.trace_id = parent.trace_id
            self.span_id = bits(64) or 1
            self.parent_id = parent.span_id
            self.remote_parent = False
            sampled = parent.sampled
        elif caller is None:
            self.trace_id = trace_id = bits(128) or 1
            self.span_id = bits(64) or 1
            self.parent_id = 0  # a root span
            self.remote_parent = False
            sampled = spans.every_root or spans.sampling.root(trace_id)
        else:
            # As OpenTelemetry's default (parent-based) sampler does, a caller's trace is left
            # unexported when the caller did not sample it.
            self.trace_id, self.parent_id = caller[0], caller[1]
            self.span_id = bits(64) or 1
            self.remote_parent = True
            sampled = caller[2] if spans.sampling.parent_based else spans.sampling.root(caller[0])
        #: False in a trace the caller chose not to sample: the span is made (its ids are in the
        #: log lines) but not exported.
        self.sampled = sampled
        self._start_time = time.time_ns()
        self._started_ns = time.perf_counter_ns()
        self._end_time = None  # open
        self.failed = False
        #: Called once when the span ends (before it is exported); it must return at once and
        #: never raise (engine.observer). Whoever watches the span may set or replace it.
        self.on_end: Callable[[], None] | None = None
        #: What its end hands it to: the drain's ``put`` (None when it is not exported).
        self._finish: Callable[[SpanRecord], None] | None = spans._put if sampled else None
        self._token: Token[SpanRecord | None] | None = None

    def __enter__(self) -> SpanRecord:
        self._token = current.set(self)
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        # The span's end (its start plus the time it lasted, by the monotonic clock), its
        # watcher and its export in one body: every span of a payment, the server's too
        # (:meth:`Spans.end_server`), leaves here, and a Python call costs about as much as each.
        self._end_time = self._start_time + time.perf_counter_ns() - self._started_ns
        if kind is not None:
            self.failed = True
        token = self._token
        if token is not None:
            current.reset(token)
            self._token = None  # it holds the span current before: kept, spans chain (test_span_lifetime)
        on_end = self.on_end
        if on_end is not None:
            self.on_end = None
            on_end()
        finish = self._finish
        if finish is not None:
            finish(self)

    @property
    def trace_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_hex(self) -> str:
        return f"{self.span_id:016x}"


_INTERNAL = SpanKind.INTERNAL

#: The span open in the current task (and the tasks it starts).
current: ContextVar[SpanRecord | None] = ContextVar("payorch_span", default=None)


#: A ``traceparent`` (W3C Trace Context, level 1, section 3.2): lowercase hex only; a version
#: other than ``00`` may add fields after the flags, each behind a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """``(trace_id, parent span id, sampled)`` of a W3C ``traceparent`` header, or None if it is
    invalid (the trace then restarts): a field of the wrong length or not lowercase hex, version
    ``ff``, an all-zero id, or fields after the flags of version ``00``."""
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace, parent, flags, more = match.groups()
    if version == "ff" or (version == "00" and more is not None):
        return None
    trace_id, span_id = int(trace, 16), int(parent, 16)
    return (trace_id, span_id, bool(int(flags, 16) & TraceFlags.SAMPLED)) if trace_id and span_id else None


#: ``OTEL_TRACES_SAMPLER``'s samplers: (ratio, parent-based); ``None``: the ratio is
#: ``OTEL_TRACES_SAMPLER_ARG`` (1 when absent).
_SAMPLERS: dict[str, tuple[float | None, bool]] = {
    "always_on": (1.0, False),
    "always_off": (0.0, False),
    "traceidratio": (None, False),
    "parentbased_always_on": (1.0, True),
    "parentbased_always_off": (0.0, True),
    "parentbased_traceidratio": (None, True),
}
SAMPLER_ENV, SAMPLER_ARG_ENV = "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"
_LOW_64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which traces are exported, as OpenTelemetry's samplers decide: a trace payorch starts when
    :meth:`root` says so (``ratio`` of them, by trace id); a caller's trace as the caller decided
    when ``parent_based``, else by :meth:`root` too. The default samples every trace payorch
    starts and keeps its callers' decisions (``parentbased_always_on``)."""

    ratio: float = 1.0
    parent_based: bool = True

    def root(self, trace_id: int) -> bool:
        """The SDK's ``TraceIdRatioBased``: the low 64 bits of the id under ``ratio`` of their range."""
        return (trace_id & _LOW_64) < round(self.ratio * (_LOW_64 + 1))


#: The default sampler: ``parentbased_always_on``.
EVERY_TRACE = Sampling()


def sampling(environ: Mapping[str, str]) -> tuple[Sampling, str | None]:
    """The sampler ``OTEL_TRACES_SAMPLER`` (and ``OTEL_TRACES_SAMPLER_ARG``) name, and why they
    could not be used, if so: a sampler payorch does not have, or a ratio outside 0 to 1, samples
    every trace, as the SDKs do (the app's start says why, in a WARNING line)."""
    name = environ.get(SAMPLER_ENV, "").strip().lower()
    if not name:
        return EVERY_TRACE, None
    if name not in _SAMPLERS:
        known = ", ".join(_SAMPLERS)
        return EVERY_TRACE, (
            f"{SAMPLER_ENV}={name} is not a sampler payorch has ({known}): every trace is sampled, "
            "as by parentbased_always_on"
        )
    ratio, parent_based = _SAMPLERS[name]
    if ratio is not None:
        return Sampling(ratio, parent_based), None
    text = environ.get(SAMPLER_ARG_ENV, "").strip()
    try:
        ratio = float(text) if text else 1.0
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:  # NaN too
        return Sampling(1.0, parent_based), (
            f"{SAMPLER_ARG_ENV}={text} is not a ratio from 0 to 1 for {SAMPLER_ENV}={name}: "
            "every trace is sampled"
        )
    return Sampling(ratio, parent_based), None


class Spans:
    """Makes span records and, with an exporter, exports them off the payment path."""

    def __init__(
        self,
        resource: Resource,
        exporter: SpanExporter | None,
        *,
        capacity: int = 8192,
        batch: int = 512,
        interval_s: float = 0.5,
        sampling: Sampling = EVERY_TRACE,
    ) -> None:
        self.resource = resource
        self.exporter = exporter
        self.sampling = sampling
        self.every_root = sampling.ratio >= 1.0  # the default: no decision to make per trace
        self._scope = InstrumentationScope("payorch")
        self._bits = random.Random(os.urandom(16)).getrandbits  # noqa: S311 - ids, not secrets
        self.drain: Drain[SpanRecord] | None = None
        #: The drain's ``put``, bound once: every exported span is handed to it.
        self._put: Callable[[SpanRecord], None] | None = None
        self._closed = False
        if exporter is not None:
            self.drain = Drain("spans", self._export, capacity=capacity, batch=batch, interval_s=interval_s)
            self._put = self.drain.put
        #: A child of the current span (a root of a new trace when none is open), to be entered:
        #: :class:`SpanRecord` itself, made in one Python call (the engine's Observer ``span``).
        self.span: Callable[[str, SpanAttributes], SpanRecord] = partial(SpanRecord, self)

    def start_server(
        self, name: str, attributes: dict[str, str | int], traceparent: str | None = None
    ) -> tuple[SpanRecord, Token[SpanRecord | None]]:
        """A request's server span, made current; end it with :meth:`end_server`. A caller's
        trace is continued, and, as OpenTelemetry's default (parent-based) sampler does, left
        unexported when the caller did not sample it."""
        caller = parse_traceparent(traceparent) if traceparent else None
        record = SpanRecord(self, name, attributes, SpanKind.SERVER, caller)
        token = record._token = current.set(record)
        return record, token

    def end_server(self, record: SpanRecord, token: Token[SpanRecord | None]) -> None:
        """End the span :meth:`start_server` made current (``token`` is its own): as a child span
        ends, by one call rather than four."""
        record.__exit__(None, None, None)

    @property
    def dropped(self) -> int:
        return 0 if self.drain is None else self.drain.dropped

    def drop_counts(self) -> tuple[int, int]:
        """The spans dropped, and of those, the ones the exporter failed to take."""
        return (0, 0) if self.drain is None else self.drain.drop_counts()

    def close(self, timeout_s: float = 5.0) -> None:
        """Export what is buffered (within ``timeout_s``; what is left is dropped and counted),
        then shut the exporter down. Once only: the app's stop closes the spans before its last
        drop report, and the rest of the telemetry after the store."""
        if self.drain is not None and self.exporter is not None and not self._closed:
            self._closed = True
            self.drain.close(timeout_s)
            self.exporter.shutdown()

    # -- the drain's thread ------------------------------------------------------------------------

    def _export(self, records: Sequence[SpanRecord]) -> None:
        exporter = self.exporter
        if exporter is None:
            return
        # One loop, each span completed in its body: a call of a method a span, and of
        # :func:`span_context` for its own context, cost about as much as what they do.
        resource, scope, new_context, limits = self.resource, self._scope, tuple.__new__, _ID_LIMITS
        contexts: dict[int, SpanContext] = {}  # by span id: a parent's, shared with its children
        for record in records:
            trace_id, span_id, parent_id = record.trace_id, record.span_id, record.parent_id
            # A span's context is its children's parent: a batch holds a payment's children before
            # their parent (they end first), so the context is made once for all of them. Every
            # span of a trace holds its root's trace id, the same int: ``is`` tells a context of
            # the trace from one of another trace that drew the same span id, without comparing
            # 128-bit ints (an equal id that is another object only makes a context again).
            own = contexts.get(span_id)
            if own is None or own[0] is not trace_id:
                valid = 0 < trace_id <= limits[0] and 0 < span_id <= limits[1]  # as span_context
                own = contexts[span_id] = new_context(
                    SpanContext, (trace_id, span_id, False, _SAMPLED, DEFAULT_TRACE_STATE, valid)
                )
            parent: SpanContext | None = None
            if parent_id:
                if record.remote_parent:
                    parent = span_context(trace_id, parent_id, True)
                else:
                    parent = contexts.get(parent_id)
                    if parent is None or parent[0] is not trace_id:
                        parent = contexts[parent_id] = span_context(trace_id, parent_id, False)
            attributes = record._attributes
            outcome = attributes.get(OUTCOME)
            if outcome is not None and outcome != SUCCEEDED:
                record._status = Status(StatusCode.ERROR, str(outcome))
            else:
                record._status = _ERROR if record.failed else _UNSET
            # A path can hold anything a client typed, a card number too: kept only masked (one
            # shorter than a card number cannot hold one). Only a server span has one.
            if URL_PATH in attributes:
                path = attributes[URL_PATH]
                if type(path) is str and len(path) >= MIN_CARD_DIGITS and mask_card_numbers(path) != path:
                    record._attributes = {**attributes, URL_PATH: mask_card_numbers(path)}
            record._context = own
            record._parent = parent
            record._resource = resource
            record._instrumentation_scope = scope
        if exporter.export(records) is not SpanExportResult.SUCCESS:
            raise ExportFailedError(f"the exporter refused {len(records)} spans")


def span_context(trace_id: int, span_id: int, remote: bool) -> SpanContext:
    """``SpanContext(trace_id, span_id, remote, sampled)``, made as the tuple it is: its
    constructor's defaults and checks are Python code, 0.32 µs a call against 0.14, twice a span.
    Its validity is computed as the constructor computes it."""
    valid = 0 < trace_id <= _ID_LIMITS[0] and 0 < span_id <= _ID_LIMITS[1]
    made: SpanContext = tuple.__new__(
        SpanContext, (trace_id, span_id, remote, _SAMPLED, DEFAULT_TRACE_STATE, valid)
    )
    return made
