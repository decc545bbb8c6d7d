"""The manifest of a ``payorch export``: what wrote it, of which version, covering which rows.

Each export (each generation, :mod:`ingest.store.export`) holds ``_payorch_export.json``, and
``OUT/_payorch_export.json`` is a link to the published one's. The leading ``_`` is the mark
Spark, Hive and pyarrow's datasets skip as metadata. A reader checks ``export_version`` before it
reads a file: an export of a newer payorch is then told apart from a damaged one, in one line.

``export_version`` counts changes to what an export holds (its folders, columns and types); it
is 1 for the columns listed in the README ("Events keep their queryable columns"), the
first export with a manifest. A change a reader of the previous version would misread raises it:
a column removed, renamed or retyped, a folder moved, and a column added to an input whose files
a payorch reader holds to exactly its columns (``violations`` and ``complaints``: the report
refuses a file with a column it does not know). A column added to ``events`` does not (as a
property added to a JSON Schema is no breaking change to ``tools.schema_check``): no payorch reads
that input, and the readers that do (DuckDB, Polars, Spark) find columns by name.
``failure_details`` (database version 12) left it at 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb
import orjson

from ingest.store.reads import Input

#: The manifest's file name, in each generation and (a link) at the top of the export folder.
MANIFEST = "_payorch_export.json"
#: What the manifest's ``format`` says: a file of that name that says otherwise is no payorch's.
FORMAT = "payorch-export"
#: The version of what this payorch's exports hold (see the module docstring).
EXPORT_VERSION = 1


def time_span(
    connection: duckdb.DuckDBPyConnection, source: Input, select: str
) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest time of ``source``'s rows, as ``select`` reads them (none: ``None``)."""
    row = connection.execute(
        f'SELECT min("{source.time}"), max("{source.time}") FROM ({select})'  # noqa: S608 - constant SQL
    ).fetchone()
    if row is None:
        return None, None
    return row[0], row[1]


def write_manifest(
    folder: Path,
    *,
    database_version: int,
    rows: Mapping[str, int],
    spans: Mapping[str, tuple[datetime | None, datetime | None]],
    written_at: datetime,
) -> None:
    """Write the manifest of the export in ``folder``: ``rows`` and ``spans`` per input."""
    starts = [start for start, _ in spans.values() if start is not None]
    ends = [end for _, end in spans.values() if end is not None]
    document = {
        "format": FORMAT,
        "export_version": EXPORT_VERSION,
        "payorch_version": _payorch_version(),
        "database_version": database_version,
        "written_at": _instant(written_at),
        "window": {"from": _instant(min(starts, default=None)), "to": _instant(max(ends, default=None))},
        "inputs": {
            name: {"rows": count, "from": _instant(spans[name][0]), "to": _instant(spans[name][1])}
            for name, count in rows.items()
        },
    }
    (folder / MANIFEST).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def _instant(moment: datetime | None) -> str | None:
    """``moment`` in UTC as RFC 3339 with a ``Z`` (DuckDB gives a ``TIMESTAMPTZ`` in local time)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _payorch_version() -> str:
    try:
        return version("payorch")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"
