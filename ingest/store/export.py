"""``payorch export``: the analytics inputs as hive-partitioned Parquet, one folder per UTC date.

``OUT/events/date=2026-11-26/data_0.parquet`` and the same for ``violations`` and ``complaints``:
the columns of the read endpoints (``ingest.store.reads``), so that the Polars jobs, DuckDB, Trino
or Spark scan an export as they would the service. Each run replaces those three folders (a
snapshot, not an append) and leaves everything else in ``OUT`` alone. An input without rows is
one Parquet file of no rows at the top of its folder (``OUT/complaints/data_0.parquet``), so
that it still reads as a table with its columns.

A reader never sees half of an export, nor two exports mixed. Each run writes a whole export
(its three inputs) into a generation of its own, ``OUT/.payorch-export/<generation>.partial``,
renames it to ``<generation>`` when it is complete, and then publishes it with one atomic rename:
of the link ``OUT/.payorch-export/current``, through which ``OUT/events``, ``OUT/violations`` and
``OUT/complaints`` are links (``.payorch-export/current/events``...). All three inputs change at
that one instant, no input's folder is ever missing, and nothing half written has a final name.
The export it replaces stays on disk until the next run (a reader that pinned it, by reading
through the target of ``current``, finishes), and beyond while a reader holds a shared lock
(``flock``) on its folder, as :mod:`analytics.export_source` does; older ones are removed.

Replacing deletes, so it is done only to an earlier export: a folder that is a link elsewhere, or
that holds anything but ``date=...`` folders of Parquet files (and the empty input's file), is
refused before anything is written, with the first thing found named. The folders of an export
of a payorch before the generations are replaced by the links once (each is missing for the
instant between two renames).

Stopped half way (Ctrl-C; ``payorch export`` takes SIGTERM as Ctrl-C), or failing, it removes the
generation it was writing and raises (:class:`ExportInterruptedError` for a stop): ``OUT`` is
then the earlier export whole, or, stopped after the publishing rename, this one whole.

Two exports into one ``OUT`` at once would undo each other (each clears the other's unfinished
generation at its start): an export holds a lock on ``OUT`` (``flock``) while it runs, and a
second one is refused at once.

The database is opened read-only. DuckDB lets no other process open a file that a server holds,
not even to read, so a running ``payorch serve`` is reported as such rather than waited for.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingest.errors import IngestError
from ingest.private_files import private_umask
from ingest.store.export_manifest import MANIFEST, time_span, write_manifest
from ingest.store.reads import (
    INPUTS,
    DatabaseHeldError,
    DatabaseUnavailableError,
    Input,
    first_line,
    open_read_only,
)
from ingest.store.schema import FILE_NAME, applied_versions, has_first_release_events

#: The hive partition column: the UTC date of each input's time column.
PARTITION = "date"
#: The one file of an input without rows (at the top of its folder: it has no date).
EMPTY_FILE = "data_0.parquet"
#: The hidden folder of ``OUT`` holding the generations, each an export whole.
GENERATIONS = ".payorch-export"
#: The link in :data:`GENERATIONS` to the generation published; the inputs' links go through it.
CURRENT = "current"
#: What a generation is named while it is written (and what a stopped run leaves, removed next run).
UNFINISHED = ".partial"


class ExportError(IngestError):
    """The export could not run; the message is one line for the operator."""


class ExportInterruptedError(ExportError):
    """The export was stopped (Ctrl-C) before it was done."""


#: What DuckDB raises when a signal's Python handler raises :class:`KeyboardInterrupt` while it
#: runs a query: a ``RuntimeError`` with this message, not the ``KeyboardInterrupt`` itself.
QUERY_INTERRUPTED = "Query interrupted"


@private_umask()  # the payments' data, as in the data folder: for the owner only (pg_dump -Fd's 0700)
def export_parquet(data_dir: Path, out: Path, memory_limit: str | None = None) -> dict[str, int]:
    """Write every input of ``DATA_DIR/payorch.duckdb`` under ``out``; the rows written per input.
    What it creates is its owner's only: an existing ``out`` is left as it is. DuckDB holds at
    most ``memory_limit`` meanwhile (``reads.open_read_only``)."""
    try:
        connection = open_read_only(data_dir, memory_limit)
    except DatabaseHeldError as error:
        raise ExportError(
            f"{error}: stop it first, or read through the service (GET /v1/analytics/...)"
        ) from None
    except DatabaseUnavailableError as error:
        raise ExportError(str(error)) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        held = _hold(out)
    except OSError as exc:
        connection.close()
        raise ExportError(f"cannot create the folder {out}: {exc.strerror}") from None
    except ExportError:
        connection.close()
        raise
    try:
        # A database of an earlier version is read as it is (it is not migrated): the columns
        # added since are exported empty.
        applied = applied_versions(connection)
        # One the first releases wrote (568669e to 091d8ab) keeps each event's JSON in place of
        # ``accepted``: read as the later ones, it failed on a DuckDB Binder Error.
        first = has_first_release_events(connection)
        for source in INPUTS:
            _check_replaceable(out / source.name)
        _check_manifest_replaceable(out / MANIFEST)
        return _write_generation(connection, out, applied, first=first)
    except duckdb.Error as exc:
        raise ExportError(f"cannot export {data_dir / FILE_NAME} to {out}: {first_line(exc)}") from None
    except RuntimeError as exc:
        if str(exc) != QUERY_INTERRUPTED:
            raise
        raise _interrupted(out) from None
    except KeyboardInterrupt:
        raise _interrupted(out) from None
    finally:
        connection.close()
        os.close(held)


def _hold(out: Path) -> int:
    """A descriptor of the folder ``out`` holding its exclusive lock (released when it is closed);
    :class:`ExportError` when another export holds it: each removes the other's ``.NAME.partial``
    at its start, and could swap in one still being written."""
    descriptor = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise ExportError(f"another payorch export is writing to {out}: wait for it to end") from None
    except OSError:
        pass  # a file system without locks (some FUSE mounts of object storage): export unguarded
    return descriptor


def _interrupted(out: Path) -> ExportInterruptedError:
    names = ", ".join(source.name for source in INPUTS)
    return ExportInterruptedError(
        f"interrupted before it was done: {out} holds nothing half written, and its {names} are "
        "one export's whole (the earlier one, or this one if it was stopped as it ended): export again"
    )


def _copy(connection: duckdb.DuckDBPyConnection, source: Input, select: str, folder: Path) -> int:
    """Write ``source``'s rows, as ``select`` reads them from this database, into ``folder``."""
    rows = (
        f"SELECT *, CAST(timezone('UTC', \"{source.time}\") AS DATE) AS {PARTITION} "  # noqa: S608 - constant SQL
        f"FROM ({select})"
    )
    row = connection.execute(
        f"COPY ({rows} ORDER BY {source.order}) "
        f"TO '{_literal(folder)}' (FORMAT parquet, PARTITION_BY ({PARTITION}), OVERWRITE)"
    ).fetchone()
    written = 0 if row is None else int(row[0])
    if written == 0:
        # A partitioned COPY of no rows writes no file, and a folder without one is no table:
        # Polars and DuckDB refuse to scan it. One file of no rows, beside where the partitions
        # go, keeps the columns (a later export with rows replaces it).
        folder.mkdir(exist_ok=True)
        connection.execute(f"COPY ({rows} LIMIT 0) TO '{_literal(folder / EMPTY_FILE)}' (FORMAT parquet)")
    return written


def _check_replaceable(folder: Path) -> None:
    """Raise :class:`ExportError` unless ``folder`` is missing or holds only an earlier export."""
    # An earlier export's link to its generation is followed: what it holds (seen under the final
    # names, where a user may have put something) is checked as an earlier payorch's folder is.
    if folder.is_symlink() and os.readlink(folder) != _link_target(folder.name):
        raise ExportError(f"{folder} is a link: the export replaces that folder and follows no link")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder: the export writes a folder there")
    for entry in sorted(folder.iterdir()):
        if entry.name == EMPTY_FILE and entry.is_file() and not entry.is_symlink():
            continue
        if entry.name.startswith(f"{PARTITION}=") and entry.is_dir() and not entry.is_symlink():
            foreign = [
                item
                for item in sorted(entry.iterdir())
                if item.suffix != ".parquet" or item.is_symlink() or not item.is_file()
            ]
            if not foreign:
                continue
            entry = foreign[0]  # noqa: PLW2901 - the first thing that is not an export's
        raise ExportError(
            f"{folder} holds {entry.name!r}, which is not an earlier export's; the export replaces "
            "that folder: move it away or choose another --out"
        )


def _check_manifest_replaceable(path: Path) -> None:
    """Raise :class:`ExportError` unless ``path`` is missing or an earlier export's link."""
    if (path.exists() or path.is_symlink()) and not (
        path.is_symlink() and os.readlink(path) == _link_target(path.name)
    ):
        raise ExportError(
            f"{path} is not an earlier export's link to its manifest; the export replaces it: "
            "move it away or choose another --out"
        )


def _write_generation(
    connection: duckdb.DuckDBPyConnection, out: Path, applied: set[int], *, first: bool
) -> dict[str, int]:
    """Write every input into a new generation of ``out``, publish it and remove the generations
    no reader needs; the rows written per input."""
    generations = out / GENERATIONS
    try:
        generations.mkdir(exist_ok=True)
        for entry in generations.iterdir():  # what a run stopped half way left
            if entry.name.endswith(UNFINISHED):
                _remove(entry)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"
        staging = generations / f"{name}{UNFINISHED}"
        staging.mkdir()
        try:
            selects = {source.name: source.select_for(applied, first_release=first) for source in INPUTS}
            written = {
                source.name: _copy(connection, source, selects[source.name], staging / source.name)
                for source in INPUTS
            }
            write_manifest(
                staging,
                database_version=max(applied, default=0),
                rows=written,
                spans={source.name: time_span(connection, source, selects[source.name]) for source in INPUTS},
                written_at=datetime.now(UTC),
            )
            staging.rename(generations / name)
            earlier = _publish(out, name)
        except BaseException:
            # Stopped or failed before the publishing rename: the generation goes too.
            if _published(generations) != name:
                _remove(generations / name)
            _remove(generations / f"{CURRENT}{UNFINISHED}")
            raise
        finally:
            _remove(staging)
    except OSError as exc:
        raise ExportError(f"cannot write the folder {out}: {exc.strerror}") from None
    _prune(generations, keep={name, earlier})
    return written


def _publish(out: Path, name: str) -> str:
    """Make the generation ``name`` of ``out`` the one its inputs' links reach (one atomic rename);
    the name of the generation it replaces (empty if none)."""
    generations = out / GENERATIONS
    earlier, link = _published(generations), generations / f"{CURRENT}{UNFINISHED}"
    link.symlink_to(name, target_is_directory=True)
    link.replace(generations / CURRENT)
    for entry in (*(source.name for source in INPUTS), MANIFEST):
        folder, target = out / entry, _link_target(entry)
        if folder.is_symlink() and os.readlink(folder) == target:
            continue
        # The first export here, or one of a payorch before the generations: its folder (checked
        # by _check_replaceable) goes, for the link; missing only between these two renames.
        aside, link = generations / f"{entry}{UNFINISHED}", out / f".{entry}{UNFINISHED}"
        _remove(link)
        link.symlink_to(target, target_is_directory=entry != MANIFEST)
        try:
            if folder.exists():
                folder.rename(aside)
        finally:
            link.replace(folder)  # also when stopped between the renames: this export is published
        _remove(aside)
    return earlier


def _published(generations: Path) -> str:
    """The name of the generation published in ``generations`` (empty if none)."""
    current = generations / CURRENT
    return os.readlink(current) if current.is_symlink() else ""


def _link_target(name: str) -> str:
    """What the link ``OUT/NAME`` holds: relative, so that a copy of ``OUT`` keeps working."""
    return f"{GENERATIONS}/{CURRENT}/{name}"


def _prune(generations: Path, keep: set[str]) -> None:
    """Remove the generations but those in ``keep`` and those a reader holds (a shared ``flock``).
    The export is published by now: a generation that cannot be removed is left to the next run."""
    for entry in sorted(generations.iterdir()):
        if entry.name in keep or entry.name == CURRENT or entry.name.endswith(UNFINISHED):
            continue
        try:
            descriptor = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue  # a reader is reading it
        except OSError:
            pass  # a file system without locks: no reader can hold it either
        try:
            shutil.rmtree(entry)
        except OSError:
            pass
        finally:
            os.close(descriptor)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _literal(path: Path) -> str:
    """``path`` as the SQL string literal COPY takes (it takes no parameter there), made absolute:
    DuckDB reads a leading ``~`` as the home folder, where ``--out '~'`` names ``./~``."""
    return str(path.absolute()).replace("'", "''")
