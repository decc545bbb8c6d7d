"""Telemetry: the engine's :class:`~engine.observer.Observer`, and what every event and violation
feeds besides the store (metrics, the current span, the log).

:class:`ObservedRecords` wraps the records port so that each event and violation is shown to the
telemetry as it is recorded; the store still gets every one, whatever the telemetry drops.

Every watcher here returns at once: metrics are counters in memory, spans and log lines go on
bounded drains. What the drains drop is counted (``payorch_observer_dropped_total``) and, once per
``report_interval_s``, recorded as an ``observer/dropped`` violation by :meth:`Telemetry.watch_drops`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import IO, Any
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter

from engine.contracts import ContractViolation
from engine.events import CompensationIssued, DomainEvent, StepFailed, StepSucceeded
from engine.monitor import ContractMonitor
from engine.observer import (
    ATTEMPT_SPAN,
    COMPENSATION_SPAN,
    METHOD,
    OUTCOME,
    STEP_SPAN,
    SUCCEEDED,
    SpanAttributes,
)
from engine.types import RequestId
from ingest.api.metrics import ApiMetrics
from ingest.observe import spans as span_context
from ingest.observe.logs import LogPipe
from ingest.observe.spans import EVERY_TRACE, Sampling, Spans
from ingest.records import Records

logger = logging.getLogger("payorch.observe")

DROPPED = "observer/dropped"
#: The events that tell the metrics and the spans something: the others only make a log line.
WATCHED = frozenset({StepSucceeded, StepFailed, CompensationIssued})
#: What fails to take a signal's items, as an ``observer/dropped`` report names it.
_SINKS = {"spans": "the span exporter", "logs": "the log stream"}


#: OpenTelemetry's standard variables for the resource (its SDK's environment specification).
SERVICE_NAME_ENV, RESOURCE_ATTRIBUTES_ENV = "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"
SERVICE_NAME, SERVICE_VERSION, ENVIRONMENT = "service.name", "service.version", "deployment.environment.name"


def resource_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``key=value,...``, values percent-encoded), read as the SDK
    reads it; a pair without ``=`` is skipped."""
    found: dict[str, str] = {}
    for pair in environ.get(RESOURCE_ATTRIBUTES_ENV, "").split(","):
        key, equals, value = pair.partition("=")
        if equals and key.strip():
            found[key.strip()] = unquote(value.strip())
    return found


@dataclass(frozen=True, slots=True)
class GlobalTags:
    """On every span (as resource attributes), log line and report of the process."""

    environment: str
    service_name: str = "payorch"
    service_version: str = ""

    @classmethod
    def of(cls, environ: Mapping[str, str], environment: str) -> GlobalTags:
        """The tags of a process run with ``environ``: what OpenTelemetry's standard variables
        name (``OTEL_SERVICE_NAME`` before ``OTEL_RESOURCE_ATTRIBUTES``, as its specification
        says), else payorch's own. An operator's ``OTEL_SERVICE_NAME`` was overridden by
        ``payorch`` on every span and line."""
        named = resource_attributes(environ)
        return cls(
            environment,
            service_name=environ.get(SERVICE_NAME_ENV, "").strip() or named.get(SERVICE_NAME) or "payorch",
            service_version=named.get(SERVICE_VERSION, ""),
        )

    def as_dict(self) -> dict[str, str]:
        return {
            SERVICE_NAME: self.service_name,
            SERVICE_VERSION: self.service_version or package_version(),
            ENVIRONMENT: self.environment,
        }


def package_version() -> str:
    try:
        return metadata.version("payorch")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Telemetry:
    """Spans, event metrics and log lines of one process."""

    def __init__(
        self,
        tags: GlobalTags,
        metrics: ApiMetrics,
        *,
        exporter: SpanExporter | None,
        log_stream: IO[bytes] | None,
        capacity: int = 8192,
        span_capacity: int | None = None,
        sampling: Sampling = EVERY_TRACE,
    ) -> None:
        self.tags = tags.as_dict()
        self.metrics = metrics
        spans = capacity if span_capacity is None else span_capacity
        self.spans = Spans(Resource.create(self.tags), exporter, capacity=spans, sampling=sampling)
        self.logs = LogPipe(log_stream, self.tags, capacity=capacity) if log_stream is not None else None
        #: Said once the app starts (WARNING lines): what the standard variables asked that
        #: cannot be done (a sampler payorch does not have, a protocol its exporter does not speak).
        self.log_warnings: tuple[str, ...] = ()
        self._reported = 0
        self._reported_lost: dict[str, int] = {}
        metrics.watch(dropped=self.dropped)
        #: The engine's :class:`~engine.observer.Observer` port: the spans' own ``span``, bound
        #: once rather than called through a method of this class (five spans a payment).
        self.span: Callable[[str, SpanAttributes], AbstractContextManager[object]] = self.spans.span

    # -- the sink's tee (ObservedRecords) -------------------------------------------------------------

    def watch(self, event: DomainEvent) -> None:
        """What an event of a :data:`WATCHED` kind tells the metrics and its span (not the log)."""
        kind = type(event)
        if kind is StepSucceeded or kind is StepFailed:
            self._attempt(event)  # type: ignore[arg-type]
        elif kind is CompensationIssued:
            compensation: CompensationIssued = event  # type: ignore[assignment]
            error = compensation.error_code
            outcome = "succeeded" if compensation.succeeded else (error.value if error else "unknown")
            self.metrics.count_compensation(compensation.processor_id, outcome)
            span = span_context.current.get()
            if span is not None and span._name == COMPENSATION_SPAN:
                span._attributes[OUTCOME] = outcome  # a void or refund that failed is an ERROR span

    def _attempt(self, event: StepSucceeded | StepFailed) -> None:
        # Only an attempt this process made counts (not a charge found by crash recovery): its
        # span, open around it, says which method it charged.
        span = span_context.current.get()
        if span is None:
            return
        outcome = SUCCEEDED if type(event) is StepSucceeded else event.error_code.value  # type: ignore[union-attr]
        if span._name == STEP_SPAN:  # a step failed before any attempt (every processor skipped)
            span._attributes[OUTCOME] = outcome
            return
        if span._name != ATTEMPT_SPAN:
            return
        # The attempt's and its step's outcome (the step's is its last attempt's): a span that
        # did not succeed has the status ERROR, described by the error code.
        span._attributes[OUTCOME] = outcome
        step = span.parent_record
        if step is not None and step._name == STEP_SPAN:
            step._attributes[OUTCOME] = outcome
        method = str(span._attributes.get(METHOD, "unknown"))
        # One charge sent is one count, made when its span ends, with the last outcome recorded
        # under it. An attempt whose outcome was unknown (a timeout) records StepFailed and then,
        # when the status query finds the charge, StepSucceeded: the processor did charge, so
        # the attempt succeeded, as its step's result says; counting the timeout as well would
        # count one charge twice, and counting only the timeout would call a charge a failure.
        # Both events carry the charge request's own latency (the status query's is not an
        # attempt's, PRODUCT.md section 8), so the histogram sees that latency once.
        span.on_end = partial(
            self.metrics.count_attempt, event.processor_id, method, outcome, event.latency_ms / 1000
        )

    def violation(self, violation: ContractViolation) -> None:
        self.metrics.count_violation(violation)
        if self.logs is not None:
            self.logs.violation(violation, only_if_room=violation.contract_id == DROPPED)

    # -- drops -------------------------------------------------------------------------------------

    def dropped(self) -> dict[str, int]:
        found = {"spans": self.spans.dropped}
        if self.logs is not None:
            found["logs"] = self.logs.dropped
        return found

    def _drop_counts(self) -> dict[str, tuple[int, int]]:
        found = {"spans": self.spans.drop_counts()}
        if self.logs is not None:
            found["logs"] = self.logs.drop_counts()
        return found

    async def report_drops(self, monitor: ContractMonitor, request_id: RequestId) -> int:
        """Record one ``observer/dropped`` violation for what was dropped since the last report,
        naming why: full buffers, or an exporter (a stream) that failed to take its items."""
        self.metrics.publish_drops()  # several workers: into the counter every worker's scrape sums
        counts = self._drop_counts()
        total = sum(dropped for dropped, _ in counts.values())
        fresh = total - self._reported
        if fresh <= 0:
            return 0
        self._reported = total
        lost = {signal: lost for signal, (_, lost) in counts.items()}
        fresh_lost = {signal: count - self._reported_lost.get(signal, 0) for signal, count in lost.items()}
        self._reported_lost = lost
        causes: list[tuple[str, int]] = []
        full = fresh - sum(fresh_lost.values())
        if full > 0:
            causes.append(("buffers full", full))
        causes += [(f"{_SINKS[signal]} failed", count) for signal, count in fresh_lost.items() if count > 0]
        cause = causes[0][0] if len(causes) == 1 else ", ".join(f"{what} ({n})" for what, n in causes)
        detail = ", ".join(f"{dropped} {signal}" for signal, (dropped, _) in counts.items() if dropped)
        await monitor.record_violation(
            DROPPED, request_id, f"{fresh} telemetry items dropped (in all: {detail}): {cause}"
        )
        return fresh

    async def watch_drops(
        self, monitor: ContractMonitor, new_request_id: Callable[[], RequestId], interval_s: float
    ) -> None:
        """Report drops every ``interval_s`` until cancelled (a task of the app's lifespan)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.report_drops(monitor, new_request_id())
            except Exception:  # the store refused it: it is still counted in the metrics
                logger.exception("observer: the drop report could not be recorded")

    def close(self, timeout_s: float = 5.0) -> None:
        self.spans.close(timeout_s)
        if self.logs is not None:
            self.logs.close(timeout_s)


class ObservedRecords:
    """The records port, with every event and violation shown to the telemetry first."""

    def __init__(self, records: Records, telemetry: Telemetry) -> None:
        self.inner = records
        self._telemetry = telemetry
        #: The records' ``emit``, each event shown to the telemetry first: by the log pipe's tee
        #: (one call an event, seven a two-step payment), or, without logs, by :meth:`_unlogged`.
        self.emit: Callable[[DomainEvent], Coroutine[Any, Any, None]]
        if telemetry.logs is not None:
            self.emit = telemetry.logs.tee(records.emit, telemetry.watch, WATCHED)
        else:
            self._watch, self._emit = telemetry.watch, records.emit
            self.emit = self._unlogged
        self._record_violation = records.record_violation
        # The rest of the port, bound once (the payment path calls them).
        self.save_result = records.save_result
        self.save_refusal = records.save_refusal
        self.record_complaint = records.record_complaint
        self.complaints_named = records.complaints_named
        self.complaints_page = records.complaints_page
        self.sync = records.sync
        self.admit = records.admit
        self.payment = records.payment
        self.payment_merchant = records.payment_merchant
        self.keep_left = records.keep_left
        self.payment_place = records.payment_place
        self.payments_page = records.payments_page
        self.request_payments = records.request_payments
        self.violations = records.violations
        self.violations_page = records.violations_page
        self.violation_place = records.violation_place
        self.healthy = records.healthy

    def _unlogged(self, event: DomainEvent) -> Coroutine[Any, Any, None]:
        # The inner coroutine itself, not one more around it (as the log pipe's tee).
        if type(event) in WATCHED:
            self._watch(event)
        return self._emit(event)

    def record_violation(self, violation: ContractViolation) -> Coroutine[Any, Any, None]:
        self._telemetry.violation(violation)
        return self._record_violation(violation)
