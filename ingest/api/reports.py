"""``GET /v1/reports/retrospective``: the window's violations and complaints, read through the
writer, handed to a renderer of the retrospective (PRODUCT.md section 10).

``ingest`` and ``analytics`` are separate layers (neither imports the other), so the renderer is
given to the app: ``payorch serve`` passes one built on ``analytics.report`` (see
``payorch.report.render_tables``). An app made without one answers 503 on this route, as an app
without the event store does.
"""

from __future__ import annotations

import asyncio
from typing import Literal, Protocol

import duckdb
import pyarrow as pa
from starlette.responses import Response

from ingest.api.problems import ApiProblem, FieldError
from ingest.store import reads
from ingest.store.reads import Window
from ingest.store.writer import Writer

ReportFormat = Literal["yaml", "json"]
#: YAML's media type is RFC 9512's.
MEDIA_TYPES: dict[ReportFormat, str] = {"yaml": "application/yaml", "json": "application/json"}


class ReportRenderer(Protocol):
    def __call__(
        self, violations: pa.Table, complaints: pa.Table, window: Window, output: ReportFormat
    ) -> bytes:
        """The report of ``window`` from its violations and complaints (the columns of
        ``ingest.store.reads``), encoded as ``output``."""
        ...


async def report_answer(
    writer: Writer | None, renderer: ReportRenderer | None, window: Window, output: ReportFormat
) -> Response:
    """The retrospective of ``window``; 422 for an empty one, 503 without a store or a renderer."""
    if window.since >= window.until:
        raise ApiProblem(
            "validation_failed",
            "`from` must be before `to`: the report's window would be empty.",
            errors=[FieldError("from", "not_before_to", "must be before `to`")],
        )
    if writer is None:
        raise ApiProblem(
            "service_unavailable",
            "This process runs without the event store (durable off): there is nothing to report on.",
        )
    if renderer is None:
        raise ApiProblem(
            "service_unavailable",
            "This process was started without a report renderer (payorch serve has one).",
        )

    def read(connection: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
        return reads.violations(connection, window), reads.complaints(connection, window)

    violations, complaints = await writer.read(read)
    body = await asyncio.to_thread(renderer, violations, complaints, window, output)
    return Response(body, media_type=MEDIA_TYPES[output])
