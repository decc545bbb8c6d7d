"""The retrospective's inputs from a ``payorch export`` folder, scanned lazily with Polars.

``payorch export --out DIR`` writes ``DIR/violations/date=2026-11-26/data_0.parquet`` (and the same
for ``events`` and ``complaints``): hive partitions by the UTC date of each row's time, with the
columns of the service's read endpoints; an input without rows is one file of no rows at the top
of its folder (``DIR/complaints/data_0.parquet``, its ``date`` column inside). The report reads
two of those inputs with :func:`polars.scan_parquet`: only the window's dates for the rows it
counts, and every date of ``violations`` for those its complaints name (a payment's violations
are often older than the complaint about it). The cuts are :mod:`analytics.report_inputs`'s.

Nothing half read makes a report. Before the scan, each input's folder must hold only what an
export writes (``date=YYYY-MM-DD`` folders of Parquet files, or the empty input's file), and each
file's footer must be Parquet with exactly the columns and types this payorch exports. Polars
itself takes a file of no bytes in a folder for a file of no rows (an export copied onto a full
disk would lose rows without a word), and names a file of other columns only by how it differs
from the first file it read. Pages damaged behind a sound footer fail the scan. Every such
problem is an :class:`~analytics.errors.UnreadableExportError`, one line naming the file. So is
an input whose files hold other than the rows its manifest counts (an export cut short, or partly
replaced by another's files), which would otherwise report fewer violations without a word.

Nothing of two exports makes a report either. ``payorch export`` writes each export whole into a
generation, ``DIR/.payorch-export/<generation>``, and publishes it by renaming the link
``DIR/.payorch-export/current``, through which ``DIR/violations`` and the others are links: a scan
through those links that a new export crosses would list one generation's files and open the
next one's. So the report reads the target of ``current`` once and scans that generation alone,
holding a shared lock (``flock``) on its folder, which ``payorch export`` does not remove while
it is held. An export without ``current`` (of an earlier payorch, or copied with its links
followed) is read at its top. Its manifest is checked first (:mod:`analytics.export_manifest`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import TypeVar

import polars as pl
from polars.exceptions import PanicException

from analytics.errors import NotAnExportError, UnreadableExportError
from analytics.export_manifest import MANIFEST, check_manifest
from analytics.report_inputs import in_window, named_violations
from engine.monitor import ReportWindow

#: The hive partition column: the UTC date of each row's time column.
PARTITION = "date"
PARTITION_TYPE = pl.Date
#: The one file of an input without rows, at the top of its folder (it has no date).
EMPTY_FILE = "data_0.parquet"
#: The link to the generation an export folder publishes, as ``ingest.store.export`` names it.
CURRENT = Path(".payorch-export", "current")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExportInput:
    """One input of an export: its folder's ``name``, the ``columns`` of its files (the partition
    column aside), the ``time`` column a window filters on and its rows' ``order``."""

    name: str
    columns: pl.Schema
    time: str
    order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportFrames:
    """The retrospective's inputs, with the columns of ``ExportInput.columns``: the ``violations``
    counted, the ``complaints`` mapped and the ``named_violations`` they are mapped through."""

    violations: pl.DataFrame
    complaints: pl.DataFrame
    named_violations: pl.DataFrame


def report_frames(
    export: Path, window: ReportWindow, *, violations: ExportInput, complaints: ExportInput
) -> ReportFrames:
    """The retrospective's inputs for ``window`` from the export folder ``export``; raises
    :class:`~analytics.errors.UnreadableExportError` (one line)."""
    if not export.is_dir():
        raise NotAnExportError(f"no export at {export}: give the folder `payorch export --out` wrote")
    with _pinned(export) as root:
        rows = check_manifest(root, export)
        try:
            return _frames(root, window, violations, complaints, rows)
        except UnreadableExportError as error:
            if root == export:
                raise
            # Named as the reader knows them: through the links, under the export's own folder.
            shown = str(error).replace(str(root), str(export))
            raise type(error)(shown) from None


@contextmanager
def _pinned(export: Path) -> Iterator[Path]:
    """The folder holding the inputs of the export ``export`` publishes now, kept from removal
    (a shared lock on it) while the block runs: its generation, or ``export`` itself."""
    current = export / CURRENT
    for _ in range(3):
        if not current.is_symlink():
            yield export
            return
        try:
            root = current.parent / os.readlink(current)
            descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue  # replaced and removed since the link was read: read the link again
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue  # being removed
        except OSError:
            pass  # a file system without locks
        try:
            yield root
        finally:
            os.close(descriptor)
        return
    raise UnreadableExportError(
        f"{export} was replaced by new exports three times while it was being opened: read it again"
    )


def _frames(
    export: Path,
    window: ReportWindow,
    violations: ExportInput,
    complaints: ExportInput,
    rows: dict[str, int] | None,
) -> ReportFrames:
    """:func:`report_frames` from the inputs in the folder ``export``, whose manifest says each
    holds ``rows`` (``None``: an export without a manifest)."""
    missing = [source.name for source in (violations, complaints) if not (export / source.name).is_dir()]
    if missing:
        raise NotAnExportError(
            f"{export} is not a payorch export: it has no {' or '.join(missing)} folder "
            "(`payorch export --out` writes events, violations and complaints)"
        )
    files = {source.name: _files(export / source.name, source.columns) for source in (violations, complaints)}
    for source in (violations, complaints):
        _check_files(
            export / source.name, files[source.name], None if rows is None else rows.get(source.name, -1)
        )
    recorded = _scan(export / violations.name)
    received = in_window(
        _scan(export / complaints.name).filter(_dates(window)),
        complaints.time,
        window,
    )
    queries = (
        (in_window(recorded.filter(_dates(window)), violations.time, window), violations),
        (received, complaints),
        (named_violations(recorded, received), violations),
    )
    try:
        counted, mapped, named = pl.collect_all(
            [query.drop(PARTITION).sort(list(source.order)) for query, source in queries]
        )
    except (pl.exceptions.PolarsError, OSError, PanicException) as error:
        # Pages damaged behind a sound footer: the scan does not say in which file.
        for path, _ in (entry for found in files.values() for entry in found):
            _read_whole(path)
        raise UnreadableExportError(f"cannot read the export {export}: {_first_line(error)}") from None
    return ReportFrames(counted, mapped, named)


def _dates(window: ReportWindow) -> pl.Expr:
    """The partitions that can hold a row of ``window``: a filter on the hive column alone, which
    the scan applies to the folders' names before it opens a file."""
    return pl.col(PARTITION).is_between(
        window.start.astimezone(UTC).date(), window.end.astimezone(UTC).date()
    )


def _check_files(folder: Path, files: list[tuple[Path, pl.Schema]], rows: int | None) -> None:
    """Raise :class:`~analytics.errors.UnreadableExportError` unless each of ``files`` (the input
    in ``folder``, :func:`_files`) has the columns it must, and all hold the ``rows`` the manifest
    counts (``None``: no manifest; negative: none for this input). Fewer or more rows is an export
    cut short (a copy that stopped, a date folder lost) or partly replaced by another's files,
    which the scan would read without a word as a window with fewer or other violations."""
    found = sum(_check_file(path, expected) for path, expected in files)
    if rows is not None and rows < 0:
        raise UnreadableExportError(
            f"{folder.parent / MANIFEST} counts no rows for {folder.name}: "
            "export again, or copy the export again"
        )
    if rows is not None and found != rows:
        raise UnreadableExportError(
            f"{folder} holds {found} rows where the export's manifest says {rows}: an export cut "
            "short or partly replaced by another's files; export again, or copy the export again"
        )


def _scan(folder: Path) -> pl.LazyFrame:
    """Every row of the input in ``folder`` (its files checked by :func:`_check_files`), the
    partition column included."""
    # Absolute: Polars reads a leading ``~`` as the home folder, where ``--export '~/x'`` names ``./~/x``.
    return pl.scan_parquet(folder.absolute(), hive_partitioning=True, hive_schema={PARTITION: PARTITION_TYPE})


def _files(folder: Path, columns: pl.Schema) -> list[tuple[Path, pl.Schema]]:
    """Each Parquet file of the input in ``folder`` with the columns it must have; raises
    :class:`~analytics.errors.UnreadableExportError` for anything an export does not write."""
    with_partition = pl.Schema([*columns.items(), (PARTITION, PARTITION_TYPE)])
    found: list[tuple[Path, pl.Schema]] = []
    try:
        for entry in sorted(folder.iterdir()):
            if entry.name == EMPTY_FILE and entry.is_file():
                found.append((entry, with_partition))
                continue
            if not (_is_date_folder(entry.name) and entry.is_dir()):
                raise _not_an_exports(folder, entry.name)
            files = sorted(entry.iterdir())
            stray = next((path for path in files if path.suffix != ".parquet" or not path.is_file()), None)
            if stray is not None:
                raise _not_an_exports(entry, stray.name)
            if not files:
                raise UnreadableExportError(
                    f"{entry} holds no Parquet file: an export's date folder holds one"
                )
            found.extend((path, columns) for path in files)
    except OSError as error:
        raise UnreadableExportError(f"cannot read {error.filename or folder}: {error.strerror}") from None
    if not found:
        raise UnreadableExportError(
            f"{folder} holds no Parquet file: an export writes one also for an input without rows"
        )
    return found


def _is_date_folder(name: str) -> bool:
    prefix, _, day = name.partition("=")
    try:
        return prefix == PARTITION and date.fromisoformat(day).isoformat() == day
    except ValueError:
        return False


def _not_an_exports(folder: Path, name: str) -> UnreadableExportError:
    return UnreadableExportError(
        f"{folder} holds {name!r}, which is not an export's "
        f"({PARTITION}=YYYY-MM-DD folders of Parquet files): move it away"
    )


def _check_file(path: Path, expected: pl.Schema) -> int:
    """The rows ``path``'s footer counts; raise :class:`~analytics.errors.UnreadableExportError`
    unless it is Parquet's with exactly the ``expected`` columns and types."""
    found = _read(path, pl.read_parquet_schema)
    difference = _difference(found, expected)
    if difference is not None:
        raise UnreadableExportError(
            f"{path} is not of this payorch's export schema ({difference}): "
            "an export of another payorch version? read it with that version, or export again"
        )
    return _read(path, _rows)


def _rows(path: Path) -> int:
    """The rows of the Parquet file ``path``, as its footer counts them (no page is read)."""
    counted: int = pl.scan_parquet(path).select(pl.len()).collect().item()
    return counted


def _read_whole(path: Path) -> None:
    """Read all of ``path``: :class:`~analytics.errors.UnreadableExportError` if it cannot be."""
    _read(path, pl.read_parquet)


def _read(path: Path, reader: Callable[[Path], T]) -> T:
    """``reader(path)``; a file that cannot be read is an
    :class:`~analytics.errors.UnreadableExportError` naming it."""
    try:
        return reader(path.absolute())  # as the scan reads it (see _scan)
    except OSError as error:
        raise UnreadableExportError(f"cannot read {path}: {error.strerror or _first_line(error)}") from None
    except (pl.exceptions.PolarsError, PanicException) as error:
        raise UnreadableExportError(
            f"{path} is damaged ({_first_line(error)}): export again, or copy the export again"
        ) from None


def _difference(found: dict[str, pl.DataType], expected: pl.Schema) -> str | None:
    """The first way ``found`` differs from ``expected``, in words; ``None`` when it does not."""
    for name, kind in expected.items():
        if name not in found:
            return f"no column {name!r}"
        if found[name] != kind:
            return f"column {name!r} is {found[name]}, not {kind}"
    extra = [name for name in found if name not in expected]
    return f"a column {extra[0]!r} it does not know" if extra else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
