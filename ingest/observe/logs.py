"""Structured JSON logs: one line per domain event, per contract violation and per log record.

Every line carries the global tags (``service.name``, ``service.version``,
``deployment.environment.name``) plus the request id, trace id and span id of the work it belongs
to (null outside a request); card numbers in any text are masked.

The payment path only puts an entry on a :class:`~ingest.observe.drain.Drain` (under a
microsecond); the drain's thread renders it through a structlog processor chain and writes it to
the stream. A stream that blocks fills the drain, whose oldest entries are then dropped and
counted: a log sink can never slow a payment.

:class:`PipeHandler` sends the standard library's log records (uvicorn's, the store's) down the
same pipe, so the process writes one format.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import select
import threading
import time
import weakref
from collections.abc import Callable, Collection, Coroutine, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import structlog

from engine.contracts import ContractViolation, Severity
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from ingest.codec.event_json import event_fields, event_json, refilled_event_document
from ingest.observe import spans
from ingest.observe.drain import Drain
from ingest.parsing.masking import mask_card_numbers

#: The id of the request being served in the current task, where no server span holds it (set
#: by the HTTP guard around a refusal it logs; see :func:`served_request`).
current_request: ContextVar[str | None] = ContextVar("payorch_request_id", default=None)
#: The server span's attribute holding the id its request is answered with (the app's front sets it).
SERVED_REQUEST = "payorch.request_id"

#: What is put on the drain: (unix time, level, event name, fields or the object to render them
#: from, request id, trace id, span id). A DomainEvent's line has the event's own time: its
#: entry's is 0.0, unread.
Entry = tuple[float, str, str, object, str | None, int, int]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

#: A ContractViolation line's level, from its contract's severity: a log alert on ``error`` fires
#: for a customer charged wrongly, not for every merchant request that needed a correction.
VIOLATION_LEVELS = {Severity.CRITICAL: "error", Severity.MAJOR: "warning", Severity.MINOR: "info"}


def _masked(value: object) -> object:
    if isinstance(value, str):
        return value if len(value) < _SHORTEST_CARD else mask_card_numbers(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


#: The fields that can hold text from outside (a merchant's request, a processor's answer, an
#: exception): the only places a card number can reach a line. The others are payorch's own ids,
#: amounts, codes and times.
#: (A validation issue's text is masked by the parser before any event holds it.)
FREE_TEXT = ("event", "message", "exception", "detail", "idempotency_key")
#: Shorter text cannot hold a card number (13 digits at least).
_SHORTEST_CARD = 13


def mask_cards(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no card number leaves in a log line (see :data:`FREE_TEXT`)."""
    for key in FREE_TEXT:
        value = event_dict.get(key)
        if value is not None:
            event_dict[key] = _masked(value)
    return event_dict


def _tagger(tags: Mapping[str, str]) -> Callable[..., MutableMapping[str, Any]]:
    def add_tags(
        _logger: object, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.update(tags)
        return event_dict

    return add_tags


def violation_fields(violation: ContractViolation) -> dict[str, object]:
    return {
        "contract_id": violation.contract_id,
        "severity": violation.severity.value,
        "owner": violation.owner,
        "message": violation.message,
        "payment_id": violation.payment_id,
        "merchant_id": violation.merchant_id,
        "event_time": violation.timestamp,
    }


#: Events whose fields hold nothing from outside: their lines splice the event's own JSON in, with
#: no masking to do. PaymentReceived holds the merchant's idempotency key: it is spliced when the
#: key holds no card number (:func:`_splices`), and goes field by field, masked, otherwise.
_SPLICED = frozenset(
    {PlanBuilt, StepAttempted, StepSucceeded, StepFailed, CompensationIssued, PaymentCompleted, PaymentFailed}
)


#: An id's bytes as lowercase hex, two digits a byte: the W3C form of a trace (16 bytes) and a
#: span (8 bytes) id, leading zeros kept.
_hex = binascii.hexlify
_dumps = orjson.dumps

#: Stand-ins for the ids while a header is rendered once (see ``LineWriter._header``).
_TRACE_MARK, _SPAN_MARK = "<payorch:trace-id>", "<payorch:span-id>"


def _splices(payload: object) -> bool:
    """A PaymentReceived whose idempotency key (its only text from outside: validation issues
    are masked by the parser) has nothing to mask."""
    if type(payload) is not PaymentReceived:
        return False
    key = payload.idempotency_key
    return key is None or _masked(key) == key


def _ids(name: str, level: str, trace_id: int, span_id: int) -> dict[str, Any]:
    return {
        "event": name,
        "level": level,
        "trace_id": f"{trace_id:032x}" if trace_id else None,
        "span_id": f"{span_id:016x}" if span_id else None,
    }


_STREAM_LOCKS: weakref.WeakKeyDictionary[IO[bytes], threading.Lock] = weakref.WeakKeyDictionary()
_STREAM_LOCKS_GUARD = threading.Lock()


def _lock_of(stream: IO[bytes]) -> threading.Lock:
    """The lock every :class:`LineWriter` of ``stream`` writes under."""
    with _STREAM_LOCKS_GUARD:
        return _STREAM_LOCKS.setdefault(stream, threading.Lock())


class LineWriter:
    """Renders entries through a structlog processor chain (the global tags, card masking, JSON by
    orjson) and writes each batch to ``stream`` (binary) in one write.

    The chain is applied here, not through a bound logger: a logger's per-call machinery and its
    write and flush per line (a system call each, and a hand-over of the interpreter lock) cost
    more than the rendering itself."""

    def __init__(self, stream: IO[bytes], tags: Mapping[str, str]) -> None:
        self._stream = stream
        self._lock = _lock_of(stream)
        self._processors: list[Callable[..., Any]] = [
            _tagger(dict(tags)),
            mask_cards,
            structlog.processors.JSONRenderer(serializer=orjson.dumps, option=orjson.OPT_UTC_Z),
        ]
        self._headers: dict[tuple[str, str], tuple[bytes, bytes, bytes] | None] = {}
        #: The codec's function giving each spliced kind's event as a dict, kept for one call a line:
        #: the same dict each time, refilled, which is encoded at once (this writer's lines are
        #: rendered on one thread, its drain's).
        self._documents: dict[type, Callable[[Any], dict[str, object]]] = {
            kind: refilled_event_document(kind) for kind in (*_SPLICED, PaymentReceived)
        }

    def _render(self, level: str, event_dict: dict[str, Any]) -> bytes:
        rendered: Any = event_dict
        for processor in self._processors:
            rendered = processor(None, level, rendered)
        line: bytes = rendered
        return line

    def _header(self, level: str, name: str) -> tuple[bytes, bytes, bytes] | None:
        """The chain's header of an event line cut around its trace and span ids, rendered once
        per event name and level: what lies between the ids is the same on every such line.
        ``None`` when the cut fails (the line is then rendered whole)."""
        key = (level, name)
        if key not in self._headers:
            marked = {"event": name, "level": level, "trace_id": _TRACE_MARK, "span_id": _SPAN_MARK}
            rendered = self._render(level, marked)
            trace, span = _TRACE_MARK.encode(), _SPAN_MARK.encode()
            before, _, after = rendered.partition(trace)
            middle, _, tail = after.partition(span)
            once = rendered.count(trace) == 1 and rendered.count(span) == 1 and span not in before
            self._headers[key] = (before, middle, tail[:-1] + b",") if once and tail.endswith(b"}") else None
        return self._headers[key]

    def write(self, entries: Sequence[Entry]) -> None:
        # The batch's pieces, joined once: a spliced line is seven pieces, and joining them line by
        # line copied each line five times (about 0.5 µs a line, with the ids' formatting).
        parts: list[bytes] = []
        headers, documents = self._headers, self._documents
        # A trace id's hex, once a batch: a payment's seven lines are one trace, and hexlify of
        # its sixteen bytes cost about 700 instructions a line.
        traces: dict[int, bytes] = {}
        for when, level, name, payload, request, trace_id, span_id in entries:
            kind = type(payload)
            if kind in _SPLICED or _splices(payload):
                # An event without free text: its own JSON (payment, request and merchant ids,
                # its time as the line's) follows the header the chain rendered, its brace cut.
                if payload.timestamp.tzinfo is UTC:  # type: ignore[attr-defined]
                    members = _dumps(documents[kind](payload), option=orjson.OPT_UTC_Z)[1:]
                else:
                    members = event_json(payload)[1:]  # type: ignore[arg-type]
                if trace_id and span_id:
                    cut = headers.get((level, name)) or self._header(level, name)
                    if cut is not None:
                        before, middle, tail = cut
                        # hexlify of the big-endian bytes: 71 ns an id, against 188 for
                        # ``b"%032x" %``, which goes through a str (two ids a line).
                        trace = traces.get(trace_id)
                        if trace is None:
                            trace = traces[trace_id] = _hex(trace_id.to_bytes(16))
                        parts += (before, trace, middle, _hex(span_id.to_bytes(8)), tail, members, b"\n")
                        continue
                rendered = self._render(level, _ids(name, level, trace_id, span_id))
                parts += (rendered[:-1], b",", members, b"\n")
                continue
            header = _ids(name, level, trace_id, span_id)
            if isinstance(payload, DomainEvent):
                header.update(event_fields(payload))
                header["type"] = payload.event_type
            else:
                if isinstance(payload, ContractViolation):
                    header.update(violation_fields(payload))
                else:
                    header.update(payload if isinstance(payload, Mapping) else {"detail": str(payload)})
                header["timestamp"] = datetime.fromtimestamp(when, UTC)  # orjson writes it, with Z
                header["request_id"] = request
            parts += (self._render(level, header), b"\n")
        self._send(b"".join(parts))

    def _send(self, data: bytes) -> None:
        """``data`` written whole: a raw stream (``payorch serve``'s stderr) may take part of it
        (a signal during a write to a pipe). One writer at a time per stream: two threads' lines
        (the app's pipe and the process's :class:`DirectHandler`) never cut into each other."""
        stream = self._stream
        # The bytes themselves first, a view only for what a partial write left: a stream that
        # keeps what it is given (a test's, bench_observe's) would have to copy a view.
        left: bytes | memoryview = data
        with self._lock:
            while left:
                written: int | None = stream.write(left)
                if written is None:  # a non-blocking stream inherited full: wait until it takes more
                    select.select([], [stream.fileno()], [], 1.0)
                    continue
                if written >= len(left):
                    break
                left = memoryview(left)[written:]
            stream.flush()


def entry(level: str, name: str, fields: object, request: str | None = None) -> Entry:
    """An entry stamped now, with the current request and span (when there are)."""
    span = spans.current.get()
    if request is None:
        request = current_request.get()
    if span is None:
        return (time.time(), level, name, fields, request, 0, 0)
    if request is None:
        request = served_request(span)
    return (time.time(), level, name, fields, request, span.trace_id, span.span_id)


def served_request(span: spans.SpanRecord) -> str | None:
    """The id of the request whose server span ``span`` is, or lies under (``None`` outside one).

    The front keeps it on the span only, not in a context variable of its own as well: setting and
    resetting one cost about 2,300 instructions a request, and only a log record asks, which a
    payment seldom makes. A child span's ``parent_record`` leads to the server span, which is a
    trace's root in this process (a caller's parent span is known by its id only)."""
    while span.parent_record is not None:
        span = span.parent_record
    found = span._attributes.get(SERVED_REQUEST)
    return found if isinstance(found, str) else None


class LogPipe:
    """JSON lines to ``stream`` (binary), rendered and written by the drain's thread."""

    def __init__(
        self,
        stream: IO[bytes],
        tags: Mapping[str, str],
        *,
        capacity: int = 8192,
        interval_s: float = 0.2,
    ) -> None:
        self._writer = LineWriter(stream, tags)
        self.drain: Drain[Entry] = Drain("logs", self._writer.write, capacity=capacity, interval_s=interval_s)
        self._put = self.drain.put

    def put(self, level: str, name: str, fields: object, request: str | None = None) -> None:
        """Queue one line; ``fields`` is a dict, a DomainEvent or a ContractViolation."""
        self._put(entry(level, name, fields, request))

    def tee(
        self,
        emit: Callable[[DomainEvent], Coroutine[Any, Any, None]],
        watch: Callable[[DomainEvent], None],
        watched: Collection[type],
    ) -> Callable[[DomainEvent], Coroutine[Any, Any, None]]:
        """The records' ``emit``, each event first shown to ``watch`` (the kinds in ``watched``)
        and queued as a line: the payment path's one Python call an event (seven a two-step
        payment) from the engine's sink to the drain, rather than three. The records' coroutine
        is returned itself, not one more around it. An event's line is stamped with the event's
        own time (:class:`LineWriter`), so the entry's is not read."""
        put, current_span = self._put, spans.current.get

        def emit_observed(event: DomainEvent) -> Coroutine[Any, Any, None]:
            if type(event) in watched:
                watch(event)
            span = current_span()
            if span is None:
                put((0.0, "info", event.event_type, event, event.request_id, 0, 0))
            else:
                put((0.0, "info", event.event_type, event, event.request_id, span.trace_id, span.span_id))
            return emit(event)

        return emit_observed

    def violation(self, violation: ContractViolation, *, only_if_room: bool = False) -> None:
        """Queue a violation's line; with ``only_if_room`` it is skipped (not counted as dropped)
        when the buffer is full: a report of dropped telemetry must not push out, and so cause,
        the next drop."""
        line = entry(
            VIOLATION_LEVELS[violation.severity], "ContractViolation", violation, violation.request_id
        )
        if only_if_room:
            self.drain.offer(line)
        else:
            self.drain.put(line)

    @property
    def dropped(self) -> int:
        return self.drain.dropped

    def drop_counts(self) -> tuple[int, int]:
        """The lines dropped, and of those, the ones the stream failed to take."""
        return self.drain.drop_counts()

    def close(self, timeout_s: float = 5.0) -> None:
        self.drain.close(timeout_s)


def _record_fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {"logger": record.name}
    if record.exc_info:
        fields["exception"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _level(record: logging.LogRecord) -> str:
    level = record.levelname.lower()
    return level if level in _LEVELS else "error"


#: How long a :class:`DirectHandler` record waits for its line to be written, at most.
DIRECT_WAIT_S = 1.0


class DirectHandler(logging.Handler):
    """A ``logging`` handler for a process's records outside its app's pipe (start-up, the last
    lines of a stop, the records of loggers the pipe does not take), written in order by a thread
    of its own.

    A record waits until its line is written, so that the line comes before what its caller does
    next (a process that ends after it), but for :data:`DIRECT_WAIT_S` at most: it was written
    on the caller's thread, and a stream whose reader had stopped reading (a full pipe) held the
    stop of ``payorch serve`` for ever, after the store had closed. Once a wait has run out, a
    record waits again only when the stream has taken a line since (its reader is slow, not
    gone); and a record logged on an event loop never waits, every request waiting with it. What
    the stream has not taken when :meth:`close` stops waiting is dropped and counted."""

    def __init__(
        self,
        stream: IO[bytes],
        tags: Mapping[str, str],
        level: int = logging.INFO,
        wait_s: float = DIRECT_WAIT_S,
    ) -> None:
        super().__init__(level)
        self.wait_s = wait_s
        self._lines: Drain[Entry] = Drain("direct-log", LineWriter(stream, tags).write, capacity=1024)
        self._stuck_at: int | None = None  # lines written when a wait last ran out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(entry(_level(record), record.getMessage(), _record_fields(record)))
        except Exception:  # noqa: BLE001 - a log record must never break its caller
            self.handleError(record)
            return
        if self._stuck_at == self._lines.delivered or asyncio_running():
            self._lines.flush(0.0)  # written now, not at the thread's next look: in order with the pipe's
            return
        self._stuck_at = None if self._lines.flush(self.wait_s) else self._lines.delivered

    @property
    def dropped(self) -> int:
        """The lines dropped: not written by the stream in time, or refused by it."""
        return self._lines.dropped

    def close(self) -> None:
        """Wait for the lines not written yet (:data:`DIRECT_WAIT_S` at most, less when a wait
        has already run out with nothing taken since), then stop the thread."""
        stuck = self._stuck_at is not None and self._stuck_at == self._lines.delivered
        self._lines.close(0.0 if stuck else self.wait_s)
        super().close()


def asyncio_running() -> bool:
    """Whether this thread runs an event loop now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class PipeHandler(logging.Handler):
    """A ``logging`` handler that puts records on a :class:`LogPipe` (never waits)."""

    def __init__(self, pipe: LogPipe, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._pipe = pipe

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pipe.put(_level(record), record.getMessage(), _record_fields(record))
        except Exception:  # noqa: BLE001 - a log record must never break its caller
            self.handleError(record)


#: The loggers whose records become JSON lines while a pipe is attached.
PIPED_LOGGERS = ("payorch", "uvicorn")


def attach_log_handler(handler: PipeHandler) -> None:
    """Send the records of :data:`PIPED_LOGGERS` to ``handler`` only (not to their parents too)."""
    for name in PIPED_LOGGERS:
        named = logging.getLogger(name)
        named.addHandler(handler)
        named.propagate = False
        if named.level == logging.NOTSET or named.level > logging.INFO:
            named.setLevel(logging.INFO)


def detach_log_handler(handler: PipeHandler) -> None:
    for name in PIPED_LOGGERS:
        named = logging.getLogger(name)
        named.removeHandler(handler)
        named.propagate = True
