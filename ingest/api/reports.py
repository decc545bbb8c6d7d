"""``GET /v1/reports/retrospective``: the window's violations and complaints, and the violations
recorded (whenever) for the payments and requests those complaints name, read through the writer
in one snapshot (``ingest.store.reads.report_tables``) and handed to a renderer of the
retrospective (PRODUCT.md section 10). ``payorch report --api`` asks for this report.

``ingest`` and ``analytics`` are separate layers (neither imports the other), so the renderer is
given to the app: ``payorch serve`` passes one built on ``analytics.report`` (see
``payorch.report.render_tables``). An app made without one answers 503 on this route, as an app
without the event store does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal, Protocol

import duckdb
from starlette.responses import Response

from ingest.api.admin_reads import AdminReadGate, headers_only, unserved
from ingest.api.problems import ApiProblem, FieldError
from ingest.store import reads
from ingest.store.reads import ReportTables, Window
from ingest.store.writer import Writer

ReportFormat = Literal["yaml", "json"]
#: The forms PRODUCT.md names that are not built yet: asked for, they are refused saying so.
UnbuiltFormat = Literal["md", "html"]
#: What ``format`` may ask for: one ``Literal``, so that any other value is one issue on
#: ``format`` naming the four (a union of the two was an issue per part, on fields named
#: ``format.literal['yaml','json']`` and ``format.literal['md','html']``).
AskedFormat = Literal["yaml", "json", "md", "html"]
#: YAML's media type is RFC 9512's.
MEDIA_TYPES: dict[ReportFormat, str] = {"yaml": "application/yaml", "json": "application/json"}


def negotiated_format(accept: str | None) -> ReportFormat:
    """The form an ``Accept`` header asks for when ``format`` is not given: JSON when it prefers
    ``application/json`` to ``application/yaml`` (a client generated from the OpenAPI document
    sends ``Accept: application/json``, and could not read the YAML it got), else YAML, the
    report's own form (also for ``*/*``, no header, or one naming neither)."""
    if not accept:
        return "yaml"
    weights = {form: _weight(accept, media_type) for form, media_type in MEDIA_TYPES.items()}
    return "json" if weights["json"] > weights["yaml"] else "yaml"


def _weight(accept: str, media_type: str) -> float:
    """The ``q`` that ``accept`` gives ``media_type``, by its most specific range (RFC 9110 section
    12.5.1); 0 when no range takes it, or a ``q`` cannot be read."""
    kind = media_type.split("/", 1)[0]
    best, weight = -1, 0.0
    for member in accept.split(","):
        media_range, *parameters = (part.strip().lower() for part in member.split(";"))
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(media_range, -1)
        if specificity <= best:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        best, weight = specificity, quality
    return weight


class ReportRenderer(Protocol):
    def __call__(self, tables: ReportTables, window: Window, output: ReportFormat) -> bytes:
        """The report of ``window`` from its tables (``ingest.store.reads.report_tables``),
        encoded as ``output``."""
        ...


async def report_answer(
    writer: Writer | None,
    renderer: ReportRenderer | None,
    window: Window,
    output: AskedFormat,
    gate: AdminReadGate,
    *,
    head: bool = False,
) -> Response:
    """The retrospective of ``window``; 422 for an empty one or a form not built yet, 503 without a
    store or a renderer, or while ``gate`` has no place for one more read (it reads and renders
    every violation and complaint of the window: ``ingest.api.admin_reads``). For a ``head``
    request, the headers alone: nothing is read or rendered."""
    if output == "md" or output == "html":  # noqa: PLR1714 - equality narrows the Literal for mypy
        raise ApiProblem(
            "validation_failed",
            "Markdown and HTML reports are not built yet; ask for format=yaml or format=json.",
            errors=[FieldError("format", "not_built", f"{output} is not built yet: use yaml or json")],
        )
    if window.since >= window.until:
        raise ApiProblem(
            "validation_failed",
            "`from` must be before `to`: the report's window would be empty.",
            errors=[FieldError("from", "not_before_to", "must be before `to`")],
        )
    if writer is None:
        raise unserved(
            "This process runs without the event store (durable off): there is nothing to report on."
        )
    if renderer is None:
        raise unserved("This process was started without a report renderer (payorch serve has one).")

    if head:
        return headers_only(MEDIA_TYPES[output])

    def read(connection: duckdb.DuckDBPyConnection) -> ReportTables:
        return reads.report_tables(connection, window)

    leave = gate.enter()
    # Each step runs in a worker thread, which cannot be stopped: the answer awaits it shielded, so
    # that an answer cancelled meanwhile (a server stopping, a caller's timeout) gives the place
    # back only once the thread is done, and never begins the next step.
    step: asyncio.Future[Any] = asyncio.ensure_future(writer.read(read))
    try:
        tables: ReportTables = await asyncio.shield(step)
        step = asyncio.ensure_future(asyncio.to_thread(renderer, tables, window, output))
        body: bytes = await asyncio.shield(step)
    finally:
        _leave_when_done(step, leave)
    return Response(body, media_type=MEDIA_TYPES[output])


def _leave_when_done(step: asyncio.Future[Any], leave: Callable[[], None]) -> None:
    """``leave`` now if ``step`` is done, else once it is.

    The place was given back at once: an answer cancelled while its thread read the window
    (1,000,000 violations: 0.45-0.53 s) or rendered it (0.13-0.22 s, some hundreds of MB held
    meanwhile) freed its place with the thread still at work, and a new read began beside it:
    more reads ran than ``admin_reads`` says. Stopping the thread instead is not possible for the
    rendering (Polars, in the renderer), and for the reading would gain half a second at most."""

    def done(finished: asyncio.Future[Any]) -> None:
        if not finished.cancelled():
            finished.exception()  # what an abandoned step raised is of no use to anyone now
        leave()

    if step.done():
        done(step)
    else:
        step.add_done_callback(done)
