"""``payorch report``: where the report comes from, and the report written out.

With ``--api URL`` the running service makes the report (its admin-only
``GET /v1/reports/retrospective``, asked for ``--to``, by default now, and ``--from`` when given;
without it the service starts the window its own report span before the end). It renders with its
own configuration (taxonomy, mismatch rule, span), so the command and the endpoint say the same;
``--config`` has nothing to do there.

When no service runs, the tables are read from ``DATA/payorch.duckdb`` opened read-only
(``ingest.store.reads.report_tables``: the window's violations and complaints, and every violation
recorded, whenever, for the payments and requests those complaints name) and rendered here with
the config given (the sample config by default), by the same function the service renders with
(:func:`render_tables`). DuckDB lets no second process open a file that a server holds, so a held
file is reported as such, with the way round it (``--api``).

With ``--export DIR`` the same tables are cut from a folder ``payorch export --out`` wrote (an
export copied from a production cell), by ``analytics.export_source``'s lazy Parquet scan, and
rendered by the same function with the config given: the report of an export is the report of the
database it was made from, for any window.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

import duckdb
import httpx
import polars as pl
import pyarrow as pa

from analytics import report as reports
from analytics.errors import NotAnExportError, UnreadableExportError
from analytics.export_source import ExportInput, report_frames
from analytics.retrospective import COMPLAINT_COLUMNS, VIOLATION_COLUMNS, map_complaints, taxonomy
from engine.complaints import Complaint
from engine.config import PlatformConfig
from engine.contracts import ContractViolation, default_registry
from engine.monitor import ReportWindow
from ingest.api.reports import MEDIA_TYPES
from ingest.store import reads
from ingest.store.schema import FILE_NAME
from payorch.options import url_problem
from payorch.output import OutputError, write_text

Format = Literal["yaml", "json"]
#: The formats that are built; Markdown and HTML (charts and the routing summary) are not yet.
FORMATS: tuple[Format, ...] = ("yaml", "json")
READ_TIMEOUT_S = 120.0  # a fortnight of a busy service is millions of rows
#: A connection is made in milliseconds, or not at all: a host that drops it (a firewall, a wrong
#: address in a private network, a listen queue full) is given up after this, not READ_TIMEOUT_S.
CONNECT_TIMEOUT_S = 10.0
REPORT_PATH = "/v1/reports/retrospective"
#: How many times a service too busy to read (503 with ``Retry-After``) is asked, and the most
#: seconds of waiting it may ask for in all: a payorch service asks for 2 (``admin_reads``), and
#: 1 while it stops.
BUSY_TRIES = 4
BUSY_WAIT_S = 15
#: The most of a service's refusal quoted in an error (its first line).
DETAIL_LIMIT = 200
_TAG = re.compile(r"<[^>]*>")


class ReportError(Exception):
    """The report could not be made; the message is one line for the operator."""


class Source(Protocol):
    def report(self, config: PlatformConfig, window: ReportWindow, output: Format) -> str:
        """The retrospective of ``window`` in ``output`` form; raises :class:`ReportError`."""
        ...


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table gives a frame
    return frame


@dataclass(frozen=True, slots=True)
class ServiceSource:
    """A running ``payorch serve`` at ``url``, asked with an admin key for its report. It renders
    with its own configuration, so the ``config`` given to :meth:`report` is not used. Without
    ``given_from`` the window's start is left to the service too: its own ``reports.every_days``
    before the end, not the local config's."""

    url: str
    api_key: str
    given_from: bool = True
    #: How the wait a busy service asks for is waited (a test's records it instead).
    sleep: Callable[[float], None] = time.sleep
    connect_timeout_s: float = CONNECT_TIMEOUT_S

    def report(self, config: PlatformConfig, window: ReportWindow, output: Format) -> str:
        address = f"{self.url.rstrip('/')}{REPORT_PATH}"
        params = {"to": window.end.isoformat(), "format": output}
        if self.given_from:
            params["from"] = window.start.isoformat()
        answer, tries, waited = self._get(address, params), 1, 0
        while tries < BUSY_TRIES and answer.status_code == 503:
            # A service running its most admin reads at once (a dashboard polling, another report)
            # refuses one more with 503 and Retry-After, having read nothing: asking again after
            # that wait is safe, where the report failed at once.
            wait = _retry_after(answer)
            if wait is None or waited + wait > BUSY_WAIT_S:
                break
            self.sleep(wait)
            answer, tries, waited = self._get(address, params), tries + 1, waited + wait
        if answer.status_code == 503 and tries > 1:
            said = f"{_detail(answer)} (asked {tries} times over {waited} s, as its Retry-After said)"
            raise ReportError(f"{address} answered 503: {said}")
        return self._report_of(answer, address, output)

    def _get(self, address: str, params: dict[str, str]) -> httpx.Response:
        try:
            return httpx.get(
                address,
                params=params,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=httpx.Timeout(READ_TIMEOUT_S, connect=self.connect_timeout_s),
            )
        except httpx.ConnectTimeout:
            raise ReportError(
                f"cannot read {address}: no connection within {self.connect_timeout_s:g} s: is the host "
                "right, and reachable from here?"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise ReportError(
                f"cannot read {address}: {_one_line(str(error)) or type(error).__name__}{self._advice(error)}"
            ) from None

    def _advice(self, error: Exception) -> str:
        """What to do about ``error``, when it says: nothing listening is the usual first mistake
        (the service not started, another port), as the --data refusals say."""
        if not isinstance(error, httpx.ConnectError):
            return ""
        if _caused_by(error, ssl.SSLCertVerificationError):
            # The service answered, behind a certificate of a private CA: asking whether it runs
            # sent the operator looking for a stopped service.
            return (
                ": the service's certificate is not one this machine trusts: name the file of its CA "
                "in SSL_CERT_FILE"
            )
        return f": is `payorch serve` running at {self.url}? (a stopped one's data folder: --data DIR)"

    def _report_of(self, answer: httpx.Response, address: str, output: Format) -> str:
        """The report ``answer`` holds, or a :class:`ReportError` saying what it holds instead."""
        if answer.status_code in (401, 403):
            raise ReportError(f"the service at {self.url} refused the API key: an admin key is needed")
        if answer.is_redirect:
            raise ReportError(f"{address} answered {answer.status_code}: {_redirect(answer)}")
        if answer.status_code != 200:
            raise ReportError(f"{address} answered {answer.status_code}: {_detail(answer)}")
        media_type = answer.headers.get("content-type", "").partition(";")[0].strip()
        if media_type != MEDIA_TYPES[output]:
            raise ReportError(
                f"{address} answered {media_type or 'no content type'}, not a report "
                f"({MEDIA_TYPES[output]}): is {self.url} a payorch service?"
            )
        return answer.text


def _redirect(answer: httpx.Response) -> str:
    """Where a redirect points, and the ``--api`` that reads from there. It is not followed: the
    key would go wherever it points (a proxy's http-to-https redirect is the usual one)."""
    location = answer.headers.get("location", "")
    target = urlsplit(str(answer.url.join(location)))._replace(query="", fragment="").geturl()
    base = target.removesuffix(REPORT_PATH)
    if not location or base == target or url_problem(base) is not None:
        return f"a redirect to {_one_line(target) if location else 'nowhere'} (not followed)"
    return f"a redirect to {_one_line(target)}, not followed (the key would go there): give --api {base}"


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` came of a ``kind`` (httpx raises its own error from httpcore's, which
    was raised while handling the library's)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(answer: httpx.Response) -> int | None:
    """The whole seconds ``answer``'s ``Retry-After`` asks to wait, ``None`` without one (an HTTP
    date is not waited on: a payorch service gives seconds)."""
    value = answer.headers.get("retry-after", "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 6 else None


def _detail(answer: httpx.Response) -> str:
    """What a refusal says, on one line: a problem's ``detail`` (or ``title``), else the first
    line of the body that is not blank (of an HTML page's text, its tags taken out: a proxy's or
    another server's page has many lines)."""
    try:
        problem = answer.json()
    except ValueError:
        text = answer.text
        if answer.headers.get("content-type", "").startswith("text/html"):
            text = _TAG.sub(" ", text)  # a page's first line is often just <html>
        return _one_line(text) or "(no body)"
    if isinstance(problem, dict):
        return _one_line(str(problem.get("detail") or problem.get("title") or problem))
    return _one_line(str(problem))


def _one_line(text: str) -> str:
    """The first line of ``text`` that is not blank, cut to :data:`DETAIL_LIMIT` characters."""
    line = next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= DETAIL_LIMIT else f"{line[: DETAIL_LIMIT - 3]}..."


@dataclass(frozen=True, slots=True)
class FileSource:
    """``DATA/payorch.duckdb``, opened read-only (no service holds it); the report is rendered
    here with the ``config`` given. DuckDB holds at most ``memory_limit`` meanwhile
    (``reads.open_read_only``; ``None``: the default)."""

    data_dir: Path
    memory_limit: str | None = None

    def report(self, config: PlatformConfig, window: ReportWindow, output: Format) -> str:
        return _render(self.tables(window), config, window, output)

    def tables(self, window: ReportWindow) -> reads.ReportTables:
        """The report's tables for ``window`` (``ingest.store.reads.report_tables``)."""
        try:
            connection = reads.open_read_only(self.data_dir, self.memory_limit)
        except reads.DatabaseHeldError as error:
            raise ReportError(f"{error}: read through it with --api URL --api-key K") from None
        except reads.DatabaseUnavailableError as error:
            if not (self.data_dir / FILE_NAME).exists() and (self.data_dir / reads.VIOLATIONS.name).is_dir():
                raise ReportError(
                    f"no database at {self.data_dir / FILE_NAME}: {self.data_dir} holds a payorch export: "
                    f"read it with --export {self.data_dir}"
                ) from None
            raise ReportError(str(error)) from None
        try:
            return reads.report_tables(connection, reads.Window(window.start, window.end))
        except duckdb.Error as error:
            raise ReportError(f"cannot read {self.data_dir / FILE_NAME}: {reads.first_line(error)}") from None
        finally:
            connection.close()


def _export_input(source: reads.Input, order: tuple[str, ...]) -> ExportInput:
    """``source`` as an export holds it: the columns the database reads give, in ``order``."""
    return ExportInput(source.name, _frame(source.schema.empty_table()).schema, source.time, order)


#: The inputs the report reads from an export, ordered as ``reads`` orders them.
EXPORT_VIOLATIONS = _export_input(reads.VIOLATIONS, ("timestamp", "seq"))
EXPORT_COMPLAINTS = _export_input(reads.COMPLAINTS, ("received_at", "complaint_id"))


@dataclass(frozen=True, slots=True)
class ExportSource:
    """A folder ``payorch export --out`` wrote, read whole by a lazy Parquet scan (no database and
    no service needed); the report is rendered here with the ``config`` given, as from the file."""

    folder: Path

    def report(self, config: PlatformConfig, window: ReportWindow, output: Format) -> str:
        try:
            frames = report_frames(
                self.folder, window, violations=EXPORT_VIOLATIONS, complaints=EXPORT_COMPLAINTS
            )
        except NotAnExportError as error:
            # A data folder given where an export was meant: say which option reads it.
            held = (self.folder / FILE_NAME).exists()
            hint = f"; it holds {FILE_NAME}: read it with --data {self.folder}" if held else ""
            raise ReportError(f"{error}{hint}") from None
        except UnreadableExportError as error:
            raise ReportError(str(error)) from None
        return _render_frames(
            frames.violations, frames.complaints, frames.named_violations, config, window, output
        )


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
    """The retrospective of ``window`` from ``source``, in ``output`` form (``config`` renders it
    where the source does not render it itself)."""
    return source.report(config, window, output)


def render_tables(
    config: PlatformConfig, tables: reads.ReportTables, window: reads.Window, output: Format
) -> bytes:
    """The retrospective of the service's own tables (what ``GET /v1/reports/retrospective`` answers,
    through ``ingest.api.reports.ReportRenderer``)."""
    return _render(tables, config, ReportWindow(window.since, window.until), output).encode("utf-8")


def map_complaint(
    config: PlatformConfig, complaint: Complaint, violations: Sequence[ContractViolation]
) -> tuple[str, str]:
    """The contract ``complaint`` maps to and how, through ``violations`` (those recorded for its
    payment and request), by the report's rule and ``config``'s taxonomy: what
    ``GET /v1/complaints/{id}`` shows (``ingest.api.complaint_reads.ComplaintMapper``)."""
    complaints = pl.DataFrame(
        [{name: getattr(complaint, name) for name in COMPLAINT_COLUMNS}], schema=COMPLAINT_COLUMNS
    )
    recorded = pl.DataFrame(
        [
            {name: getattr(violation, name) for name in VIOLATION_COLUMNS}
            | {"severity": violation.severity.value}
            for violation in violations
        ],
        schema=VIOLATION_COLUMNS,
    )
    mapped = map_complaints(complaints, recorded, taxonomy(config.complaint_taxonomy)).row(0, named=True)
    return str(mapped["mapped_contract"]), str(mapped["mapped_by"])


def _render(tables: reads.ReportTables, config: PlatformConfig, window: ReportWindow, output: Format) -> str:
    violations, complaints = _frame(tables.violations), _frame(tables.complaints)
    return _render_frames(violations, complaints, _frame(tables.named_violations), config, window, output)


def _render_frames(
    violations: pl.DataFrame,
    complaints: pl.DataFrame,
    named_violations: pl.DataFrame,
    config: PlatformConfig,
    window: ReportWindow,
    output: Format,
) -> str:
    """The retrospective of ``window``'s tables (:class:`~ingest.store.reads.ReportTables`' columns),
    whichever source they were read from."""
    retrospective = reports.build(
        violations,
        complaints,
        named_violations=named_violations,
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
