"""The ``/v1/analytics/*`` reads: a time window from the query, an input read through the
writer, and the table answered as JSON rows or as an Arrow IPC stream.

The routes (one per :class:`AnalyticsTable`, added by :func:`add_analytics_route`) only check
the key and pick the input. Reading and rendering both run in worker threads, a batch of rows at
a time, streamed as it is made: a 14-day window may hold millions of rows, and neither the event
loop (which keeps answering payments) nor the process's memory (one Python object per row:
gigabytes) takes them at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import duckdb
import orjson
import polars as pl
import pyarrow as pa
from fastapi import FastAPI, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ingest.api.admin_reads import (
    CUT_SHORT_KEY,
    AdminReadCutError,
    AdminReadGate,
    Pace,
    headers_only,
    is_head,
    unserved,
)
from ingest.api.guards import ADMIN_ONLY, Since, Until
from ingest.api.parts import Parts
from ingest.api.problems import ApiProblem, FieldError
from ingest.api.schemas import AnalyticsComplaintsOut, AnalyticsEventsOut, AnalyticsViolationsOut
from ingest.store import reads
from ingest.store.reads import Input, Window, WindowReader, window_reader
from ingest.store.writer import Writer

logger = logging.getLogger("payorch.api")

ARROW_STREAM = "application/vnd.apache.arrow.stream"
DEFAULT_SPAN = timedelta(days=14)

TableFormat = Literal["json", "arrow"]
Format = Annotated[
    TableFormat,
    Query(alias="format", description="`json` rows, or `arrow`: an Arrow IPC stream of the same columns."),
]


def window_between(
    since: datetime | None, until: datetime | None, now: datetime, span: timedelta = DEFAULT_SPAN
) -> Window:
    """The window ``[since, until)``; a naive bound means UTC, ``until`` defaults to ``now`` and
    ``since`` to ``span`` before ``until``. Raises a 422 :class:`ApiProblem` naming the parameter."""
    end = now if until is None else _utc(until, "to")
    start = _utc(since, "from") if since is not None else _before(end, span)
    if start > end:
        detail = "`from` is after `to`" + (" (which defaults to now)" if until is None else "")
        raise ApiProblem(
            "validation_failed",
            f"{detail}: the window would be empty.",
            errors=[FieldError("from", "after_to", "must not be after `to`")],
        )
    return Window(start, end)


def bounds(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` in UTC, each optional (a naive one is UTC); a 422 :class:`ApiProblem`
    when ``since`` is after ``until``, as for :func:`window_between`."""
    start = None if since is None else _utc(since, "from")
    end = None if until is None else _utc(until, "to")
    if start is not None and end is not None and start > end:
        raise ApiProblem(
            "validation_failed",
            "`from` is after `to`: the window would be empty.",
            errors=[FieldError("from", "after_to", "must not be after `to`")],
        )
    return start, end


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ApiProblem(
            "validation_failed",
            f"`{name}` is outside the years 1 to 9999 in UTC.",
            errors=[FieldError(name, "out_of_range", "is outside the years 1 to 9999 in UTC")],
        ) from None


def _before(end: datetime, span: timedelta) -> datetime:
    try:
        return end - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


#: Rows per streamed batch: each is turned into JSON (or Arrow IPC) and sent before the next is
#: read, so a read holds about this many rows at a time, whatever its window.
BATCH_ROWS = 16_384


async def table_answer(
    writer: Writer | None,
    source: Input,
    window: Window,
    output: TableFormat,
    gate: AdminReadGate,
    *,
    head: bool = False,
) -> Response:
    """``source``'s rows in ``window``, streamed as ``{name: [rows]}`` or an Arrow IPC stream, one
    batch of rows at a time (bounded memory, whatever the window holds); 503 without a store, or
    while ``gate`` has no place for one more read (``ingest.api.admin_reads``). The answer is cut
    short when its client takes it slower than ``gate.pace`` allows. For a ``head`` request, the
    headers alone: nothing is read."""
    if writer is None:
        raise unserved("This process runs without the event store (durable off): there is nothing to read.")
    media_type = ARROW_STREAM if output == "arrow" else "application/json"
    if head:
        return headers_only(media_type)
    leave = gate.enter()
    cut_at = asyncio.get_running_loop().time() + gate.pace.max_s
    try:
        cursor = writer.cursor()
    except BaseException:
        leave()
        raise
    try:
        reader = await asyncio.to_thread(window_reader, cursor, source, window, BATCH_ROWS)
    except BaseException:
        cursor.close()
        leave()
        raise
    encode = arrow_chunks(reader.schema) if output == "arrow" else json_chunks(source.name)
    held = Held(cursor, reader, leave)
    return ClosingStream(_stream(held, encode), held, (gate.pace, cut_at), media_type=media_type)


class Held:
    """What a streamed read holds until it ends: its reader and cursor (and with them its read
    transaction and DuckDB's sort of the window), and its place among the admin reads. Let go of
    once, by whichever end of the answer comes first; while a worker thread still reads a batch
    for it, once that thread is done (closed under it, the reader and the cursor would be pulled
    from a thread still using them)."""

    def __init__(
        self, cursor: duckdb.DuckDBPyConnection, reader: WindowReader, leave: Callable[[], None]
    ) -> None:
        self.cursor = cursor
        self.reader = reader
        self._leave = leave
        #: The worker thread's read of the next batch, while there is one.
        self.reading: asyncio.Future[bytes | None] | None = None
        self.let_go = False

    def close(self) -> None:
        """Let go of everything now, or once the batch being read is done."""
        if self.reading is not None and not self.reading.done():
            self.reading.add_done_callback(self._close)
        else:
            self._close()

    def _close(self, reading: asyncio.Future[bytes | None] | None = None) -> None:
        if reading is not None and not reading.cancelled():
            reading.exception()  # what the abandoned read raised is of no use to anyone now
        if self.let_go:
            return
        self.let_go = True
        try:
            self.reader.close()
            self.cursor.close()
        finally:
            self._leave()


class ClosingStream(StreamingResponse):
    """A streamed body closed as soon as the answer ends, however it ends.

    A client that goes away while an answer waits to be sent (it stopped reading) cancels the
    answer outside the body's generator, which is then left suspended with its reader and cursor
    open, and with them DuckDB's sort of the whole window, until the collector found the
    generator (the service's full collections are rare): with no read running, 25-50 MB of
    ``ORDER_BY`` memory stayed held after cancelled reads of 115,000 events. A client gone before
    the body began (while the window was sorted) leaves a generator that never ran, whose own
    ending lets nothing go: what it would have read with (``held``) is let go of here.

    With a ``pace`` (and the event loop's time at which the read took its place), an answer its
    client takes too slowly is cut short (``ingest.api.admin_reads.Pace``): it ends without its
    last chunk, and a WARNING says why."""

    body_iterator: AsyncGenerator[bytes, None]

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        held: Held | None = None,
        pace: tuple[Pace, float] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(content, **options)
        self._held = held
        self._pace = pace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self._pace is None:
                await super().__call__(scope, receive, send)
            else:
                await self._paced(scope, receive, send, *self._pace)
        finally:
            await self.body_iterator.aclose()
            if self._held is not None:
                self._held.close()

    async def _paced(self, scope: Scope, receive: Receive, send: Send, pace: Pace, cut_at: float) -> None:
        deadline = asyncio.timeout_at(cut_at)
        try:
            async with deadline:
                await super().__call__(scope, receive, pace.paced(send))
        except AdminReadCutError as cut:
            _say_cut(scope, str(cut))
        except TimeoutError:
            if not deadline.expired():
                raise
            _say_cut(scope, f"it was not all taken within {pace.max_s:g} s (store.admin_read_max_s)")


def _say_cut(scope: Scope, why: str) -> None:
    scope.setdefault("state", {})[CUT_SHORT_KEY] = True  # the server resets the connection
    logger.warning("admin read %s cut short: %s; its place is free", scope.get("path", "?"), why)


#: Turns each batch into the bytes that follow the previous ones; ``None`` at the end.
Encoder = Callable[[pa.RecordBatch | None], bytes]


async def _stream(held: Held, encode: Encoder) -> AsyncGenerator[bytes, None]:
    """The body, one batch at a time: DuckDB makes each in a worker thread while the event loop
    goes on; what the read holds is let go of at the end, or when the client goes away."""
    try:
        while True:
            held.reading = asyncio.ensure_future(asyncio.to_thread(_next_chunk, held.reader, encode))
            batch = await asyncio.shield(held.reading)
            if batch is None:
                break
            if batch:
                yield batch
        yield encode(None)
    finally:
        held.close()


def _next_chunk(reader: WindowReader, encode: Encoder) -> bytes | None:
    try:
        batch = reader.read_next_batch()
    except StopIteration:
        return None
    return encode(batch)


#: Rows Polars writes at once: the lock is held about 5 ms per piece, and the batch is written as
#: fast as whole.
JSON_ROWS = 4096


def json_chunks(key: str) -> Encoder:
    """``{key: [row, ...]}`` in pieces, each row an object of the table's columns; timestamps
    RFC 3339 UTC with ``Z`` (the inputs' timestamps are all UTC), as orjson writes them.

    Polars writes the rows, not orjson over one Python dict per row: making the dicts held the
    interpreter's lock for the whole batch (97 ms for 16,384 events), and the event loop, which
    answers the payments, waited on it batch after batch: one dashboard polling a 14-day window
    of 500,000 events took payments' median from 82 to 525 ms, four took it to 2 s. Polars lets
    the lock go while it writes, in a third of the time; what it still holds the lock for grows
    with the rows written at once (12 ms for 16,384 events), hence pieces of :data:`JSON_ROWS`."""
    before = b"{" + orjson.dumps(key) + b":["  # what goes before the next rows

    def encode(batch: pa.RecordBatch | None) -> bytes:
        nonlocal before
        if batch is None:
            return before.rstrip(b",") + b"]}"
        if batch.num_rows == 0:
            return b""
        rows = (
            memoryview(json_rows(batch.slice(start, JSON_ROWS)))[1:-1]  # the rows, without [ ]
            for start in range(0, batch.num_rows, JSON_ROWS)
        )
        chunk = before + b",".join(rows)
        before = b","
        return chunk

    return encode


def json_rows(batch: pa.RecordBatch) -> bytes:
    """``batch`` as a JSON array of row objects, byte for byte what ``orjson.dumps`` makes of
    ``batch.to_pylist()`` with ``OPT_UTC_Z``; written without holding the interpreter's lock."""
    frame = pl.DataFrame(batch)
    stamps = [name for name, kind in frame.schema.items() if isinstance(kind, pl.Datetime)]
    # orjson's form: microseconds only when there are any.
    frame = frame.with_columns(
        pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").str.replace(".000000Z", "Z", literal=True)
        for name in stamps
    )
    out = io.BytesIO()
    frame.write_json(out)
    return out.getvalue()


class _Pieces:
    """A file that keeps what is written to it until :meth:`take` hands it over."""

    closed = False

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        taken = b"".join(self._pieces)
        self._pieces.clear()
        return taken


def arrow_chunks(schema: pa.Schema) -> Encoder:
    """The Arrow IPC streaming format (what ``pyarrow.ipc.open_stream`` reads) in pieces: the
    schema with the first, then each batch, then the end-of-stream marker."""
    pieces = _Pieces()
    stream = pa.ipc.new_stream(pa.PythonFile(pieces, mode="w"), schema)

    def encode(batch: pa.RecordBatch | None) -> bytes:
        if batch is None:
            stream.close()
        elif batch.num_rows:
            stream.write_batch(batch)
        return pieces.take()

    return encode


def table_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 entry of the OpenAPI document: the route's JSON model, and the Arrow stream."""
    arrow = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"description": description, "content": {ARROW_STREAM: arrow}}}


@dataclass(frozen=True, slots=True)
class AnalyticsTable:
    """One ``GET /v1/analytics/{name}`` route: what it reads and how OpenAPI describes it."""

    name: str
    operation_id: str
    summary: str
    description: str
    model: type[Any]
    source: Input


ANALYTICS_TABLES = (
    AnalyticsTable(
        "events",
        "listAnalyticsEvents",
        "Domain events of a time window, for analytics",
        "The window's events, in the order they were written",
        AnalyticsEventsOut,
        reads.EVENTS,
    ),
    AnalyticsTable(
        "violations",
        "listAnalyticsViolations",
        "Contract violations of a time window, for analytics",
        "The window's violations, oldest first",
        AnalyticsViolationsOut,
        reads.VIOLATIONS,
    ),
    AnalyticsTable(
        "complaints",
        "listAnalyticsComplaints",
        "Complaints received in a time window, for analytics",
        "The window's complaints, oldest first",
        AnalyticsComplaintsOut,
        reads.COMPLAINTS,
    ),
)


def add_analytics_route(
    app: FastAPI, parts: Parts, table: AnalyticsTable, problems: dict[int | str, dict[str, Any]]
) -> None:
    """Route ``GET /v1/analytics/{table.name}`` (admin keys only) to :func:`table_answer`."""

    async def answer(
        request: Request, since: Since = None, until: Until = None, output: Format = "json"
    ) -> Response:
        window = window_between(since, until, parts.clock.now())
        head = is_head(request.scope)
        return await table_answer(parts.writer, table.source, window, output, parts.admin_reads, head=head)

    app.get(
        f"/v1/analytics/{table.name}",
        summary=table.summary,
        operation_id=table.operation_id,
        response_model=table.model,
        responses=table_responses(table.description) | problems,
        dependencies=ADMIN_ONLY,
    )(answer)
