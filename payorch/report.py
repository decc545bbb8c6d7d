"""``payorch report``: where the inputs come from, and the report written out.

The violations and complaints of the window are read from a running service (its admin-only
``GET /v1/analytics/violations`` and ``/complaints`` as Arrow streams) or, when no service runs,
from ``DATA/payorch.duckdb`` opened read-only. DuckDB lets no second process open a file that a
server holds, so a held file is reported as such, with the way round it (``--api``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import duckdb
import httpx
import polars as pl
import pyarrow as pa
from pyarrow import ipc

from analytics import report as reports
from engine.config import PlatformConfig
from engine.contracts import default_registry
from engine.monitor import ReportWindow
from ingest.store import reads
from ingest.store.schema import FILE_NAME
from payorch.output import OutputError, write_text

Format = Literal["yaml", "json"]
#: The formats that are built; Markdown and HTML (charts and the routing summary) are not yet.
FORMATS: tuple[Format, ...] = ("yaml", "json")
Query = Callable[[duckdb.DuckDBPyConnection, reads.Window], pa.Table]
READ_TIMEOUT_S = 120.0  # a fortnight of a busy service is millions of rows


class ReportError(Exception):
    """The report could not be made; the message is one line for the operator."""


class Source(Protocol):
    def violations(self, window: ReportWindow) -> pl.DataFrame: ...

    def complaints(self, window: ReportWindow) -> pl.DataFrame: ...


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table gives a frame
    return frame


@dataclass(frozen=True, slots=True)
class ServiceSource:
    """A running ``payorch serve`` at ``url``, read with an admin key."""

    url: str
    api_key: str

    def violations(self, window: ReportWindow) -> pl.DataFrame:
        return self._read("violations", window)

    def complaints(self, window: ReportWindow) -> pl.DataFrame:
        return self._read("complaints", window)

    def _read(self, name: str, window: ReportWindow) -> pl.DataFrame:
        address = f"{self.url.rstrip('/')}/v1/analytics/{name}"
        params = {"from": window.start.isoformat(), "to": window.end.isoformat(), "format": "arrow"}
        try:
            answer = httpx.get(
                address,
                params=params,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=READ_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            raise ReportError(f"cannot read {address}: {error or type(error).__name__}") from None
        if answer.status_code in (401, 403):
            raise ReportError(f"the service at {self.url} refused the API key: an admin key is needed")
        if answer.status_code != 200:
            raise ReportError(f"{address} answered {answer.status_code}: {_detail(answer)}")
        try:
            return _frame(ipc.open_stream(answer.content).read_all())
        except pa.ArrowInvalid as error:
            raise ReportError(f"{address} did not answer an Arrow stream: {error}") from None


def _detail(answer: httpx.Response) -> str:
    try:
        problem = answer.json()
    except ValueError:
        return answer.text[:200] or "(no body)"
    if isinstance(problem, dict):
        return str(problem.get("detail") or problem.get("title") or problem)[:200]
    return str(problem)[:200]


@dataclass(frozen=True, slots=True)
class FileSource:
    """``DATA/payorch.duckdb``, opened read-only for each input (no service holds it)."""

    data_dir: Path

    def violations(self, window: ReportWindow) -> pl.DataFrame:
        return self._read(reads.violations, window)

    def complaints(self, window: ReportWindow) -> pl.DataFrame:
        return self._read(reads.complaints, window)

    def _read(self, query: Query, window: ReportWindow) -> pl.DataFrame:
        try:
            connection = reads.open_read_only(self.data_dir)
        except reads.DatabaseHeldError as error:
            raise ReportError(f"{error}: read through it with --api URL --api-key K") from None
        except reads.DatabaseUnavailableError as error:
            raise ReportError(str(error)) from None
        try:
            return _frame(query(connection, reads.Window(window.start, window.end)))
        except duckdb.Error as error:
            raise ReportError(f"cannot read {self.data_dir / FILE_NAME}: {reads.first_line(error)}") from None
        finally:
            connection.close()


def report_window(
    since: datetime | None, until: datetime | None, span_days: int, now: datetime
) -> ReportWindow:
    """``[since, until)`` in UTC (a naive bound is UTC); ``until`` defaults to now, ``since`` to
    ``span_days`` before ``until``. Raises :class:`ValueError` for a window that would be empty."""
    end = now if until is None else _aware(until)
    start = end - timedelta(days=span_days) if since is None else _aware(since)
    if start >= end:
        raise ValueError(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    return ReportWindow(start, end)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def make_report(source: Source, config: PlatformConfig, window: ReportWindow, output: Format) -> str:
    """The retrospective of ``window``, read from ``source``, in ``output`` form."""
    return _render(source.violations(window), source.complaints(window), config, window, output)


def render_tables(
    config: PlatformConfig, violations: pa.Table, complaints: pa.Table, window: reads.Window, output: Format
) -> bytes:
    """The retrospective of the service's own tables (what ``GET /v1/reports/retrospective`` answers,
    through ``ingest.api.reports.ReportRenderer``)."""
    text = _render(
        _frame(violations), _frame(complaints), config, ReportWindow(window.since, window.until), output
    )
    return text.encode("utf-8")


def _render(
    violations: pl.DataFrame,
    complaints: pl.DataFrame,
    config: PlatformConfig,
    window: ReportWindow,
    output: Format,
) -> str:
    retrospective = reports.build(
        violations,
        complaints,
        window=window,
        categories=config.complaint_taxonomy,
        rule=config.reports.mismatch,
        registry=default_registry(),
        now=datetime.now(UTC),
    )
    return reports.to_yaml(retrospective) if output == "yaml" else reports.to_json(retrospective)


def write_report(text: str, out: Path | None) -> None:
    """``text`` to ``out``, or stdout without: a file is replaced whole or not at all, a link's
    target is written, a FIFO or device is written into (``payorch.output``)."""
    try:
        write_text(text, out)
    except OutputError as error:
        raise ReportError(str(error)) from None
