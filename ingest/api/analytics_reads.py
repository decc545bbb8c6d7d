"""The ``/v1/analytics/*`` reads: a time window from the query, an input read through the
writer, and the table answered as JSON rows or as an Arrow IPC stream.

The routes themselves (``ingest.api.app``) only check the key and pick the input. Reading and
rendering both run in worker threads: a 14-day window may hold millions of rows, and the event
loop keeps answering payments meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa
from starlette.responses import Response

from ingest.api.encoding import FastJSONResponse
from ingest.api.problems import ApiProblem, FieldError
from ingest.store.reads import Window
from ingest.store.writer import Writer

ARROW_STREAM = "application/vnd.apache.arrow.stream"
DEFAULT_SPAN = timedelta(days=14)

TableFormat = Literal["json", "arrow"]
Query = Callable[[duckdb.DuckDBPyConnection, Window], pa.Table]


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


async def table_answer(
    writer: Writer | None, query: Query, key: str, window: Window, output: TableFormat
) -> Response:
    """``query``'s rows in ``window`` as ``{key: [rows]}`` or an Arrow IPC stream; 503 without a store."""
    if writer is None:
        raise ApiProblem(
            "service_unavailable",
            "This process runs without the event store (durable off): there is nothing to read.",
        )
    table: pa.Table = await writer.read(lambda connection: query(connection, window))
    if output == "arrow":
        return Response(await asyncio.to_thread(arrow_stream, table), media_type=ARROW_STREAM)
    return FastJSONResponse(await asyncio.to_thread(json_rows, table, key))


def json_rows(table: pa.Table, key: str) -> bytes:
    """``{key: [row, ...]}``, each row an object of the table's columns; timestamps RFC 3339 UTC
    with ``Z`` (the inputs' timestamps are all UTC)."""
    rows: list[dict[str, Any]] = table.to_pylist()
    return orjson.dumps({key: rows}, option=orjson.OPT_UTC_Z)


def arrow_stream(table: pa.Table) -> bytes:
    """``table`` in the Arrow IPC streaming format (what ``pyarrow.ipc.open_stream`` reads)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    body: bytes = sink.getvalue().to_pybytes()
    return body


def table_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 entry of the OpenAPI document: the route's JSON model, and the Arrow stream."""
    arrow = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"description": description, "content": {ARROW_STREAM: arrow}}}
