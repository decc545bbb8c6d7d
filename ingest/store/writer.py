"""The single writer: one thread owns the read-write connection and commits in batches.

Whatever must be stored (an event, a violation, a payment's result, an idempotency key, a
complaint) is put on a queue as a :class:`Write`. The writer thread takes what has queued, up to
``max_rows`` writes or ``max_wait_ms`` after the first, inserts each table's rows as one Arrow
batch and commits them together (group commit: one transaction, one sync to disk for many
payments). A write submitted with :meth:`Writer.submit_and_wait` resolves once the commit holding
it (and everything queued before it) is durable.

Backpressure: :meth:`Writer.admit` refuses new work (``StoreSaturatedError``, which the API answers
with 503 and ``Retry-After``) while more than ``admit_limit`` writes are behind, and from
``fair_share_percent`` of that limit on (counting the batch being committed too) the work of a
merchant holding more than its share (``StoreShareError``; ``ingest.store.shares`` says who
does). The writes behind are those queued and those the work already admitted is still expected
to queue (``ingest.store.admission``): a burst is let in only as far as its writes fit. Writes of
work already admitted are always queued, never dropped: what was acknowledged is never lost, and
the queue stays bounded by the admitted work.

A disk that refuses a commit (full, read-only, failing: the commit itself or an I/O error of
DuckDB's) stops the writer for good (:attr:`Writer.failure`): the batch is lost, and so is what the
process holds in memory of it (answers of payments that charged), which only crash recovery at
the next start can settle. From then on every write fails at once, nothing new is admitted, the
writer no longer counts as alive, and :attr:`Writer.on_failure` is told (``payorch serve`` stops,
exit 1). A batch refused for another reason (a statement at fault) fails alone, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from engine.config import StoreConfig
from ingest.errors import IngestError
from ingest.store import admission, spill
from ingest.store import memory as store_memory
from ingest.store.admission import Admission, AdmittedWrites
from ingest.store.schema import migrate

logger = logging.getLogger("payorch.store")

#: Group commit and backpressure as the config file's ``store`` block sets them. With no wait (the
#: default) a batch is committed as soon as the queue is drained, and what arrives during a commit
#: makes the next batch: 17 ms against 28 ms for a lone payment, and 865 against 681 payments/s
#: with 32 in flight, than with a 2 ms wait (in process).
_STORE = StoreConfig()
DEFAULT_MAX_ROWS = _STORE.max_rows
DEFAULT_MAX_WAIT_MS = float(_STORE.max_wait_ms)
DEFAULT_ADMIT_LIMIT = _STORE.admit_limit
DEFAULT_FAIR_SHARE_PERCENT = _STORE.fair_share_percent
#: DuckDB's worker threads. The writer's statements are small: with one thread a batch commits in
#: about half the time (no hand-offs between DuckDB's threads and the writer, which shares its
#: core with the event loop): 1,310 against 818 payments/s in process, on one core.
DEFAULT_THREADS = 1
#: DuckDB copies its write-ahead log into the database file (a checkpoint) once the log passes
#: this size, inside the commit that crosses it, and every commit waits meanwhile: a checkpoint
#: is the worst latency of a payment. Each checkpoint appends its rows to a table as a new row
#: group, and DuckDB's vacuum then merges such row groups into full ones (122,880 rows) in the
#: same checkpoint, rewriting rows stored long before: that, not the log's size, made 16 MB
#: checkpoints take 0.1 to 1.7 s at random. With vacuum off (``max_vacuum_tasks``) a checkpoint
#: writes only the new rows, in time in proportion to the log. Rows of real payments at a steady
#: 350 a second, 300,000 of them (14 simulated minutes), commits timed in the writer: 16 MB and
#: no vacuum, a checkpoint every 11 s, 75 to 112 ms (208 once on this shared machine); with
#: vacuum, max 1.7 s and 64 commits over 100 ms; 256 MB (before), 1.0 to 1.4 s every 3.5
#: minutes, with or without vacuum (it was chosen so that the 6-second bench runs saw no
#: checkpoint). Commits' p99 6 to 9 ms in all. Row groups stay as checkpoints cut them (~3,800
#: payments): the file is 381 MB against 347 with vacuum, a scan of every event 18 ms against 15,
#: lookups as fast or faster. Row groups that deletes empty (expired keys) are still dropped.
DEFAULT_CHECKPOINT_MB = 16


class StoreSaturatedError(IngestError):
    """The writer is behind by more than its admission limit: take no new work now."""


class StoreShareError(StoreSaturatedError):
    """The writer is behind, and the work is of a merchant holding more than its share of it."""


class StoreStoppedError(StoreSaturatedError):
    """The disk stopped the writer for good (:attr:`Writer.failure`): no new work is ever taken."""


class StoreError(IngestError):
    """A batch could not be committed; the writes in it are not durable."""


class _CommitRefusedError(Exception):
    """The disk refused a batch's commit (the statements before it ran)."""


#: DuckDB's errors that say the disk failed, wherever in a batch they come (a spill, a checkpoint).
_DISK_ERRORS = (duckdb.IOException, duckdb.FatalException, _CommitRefusedError)


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    """How rows of one kind are written: the table, its columns (Arrow types), the SQL that
    takes a batch (registered as ``batch``), and what turns a submitted value into the row (run
    on the writer thread, off the event loop)."""

    name: str
    schema: pa.Schema
    sql: str
    convert: Callable[[Any], tuple[Any, ...]] | None = None


class Write:
    """One row for ``table`` (its values in column order, or what the table's ``convert`` takes);
    or, with ``apply``, statements run on the connection in queue order (rare writes such as a
    key's deletion: the rows queued before are inserted first); or, with neither, a marker whose
    ``done`` resolves with the commit of everything queued before it. :meth:`together` joins
    rows that must be committed in one transaction.

    A plain class: one is made for every event, and a dataclass's constructor cost several times
    as much."""

    __slots__ = ("apply", "done", "joined", "row", "table")

    def __init__(
        self,
        table: Table | None,
        row: Any = (),
        apply: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
    ) -> None:
        self.table = table
        self.row = row
        self.apply = apply
        self.done: asyncio.Future[None] | None = None
        self.joined: tuple[tuple[Table, Any], ...] = ()  # (table, row) of each write joined

    @classmethod
    def together(cls, *writes: Write) -> Write:
        """One write of the rows of ``writes`` (each a row for a table), committed in the same
        transaction whatever the batch around them: a crash keeps all of them or none."""
        joined = cls(None)
        for write in writes:
            if write.table is None or write.apply is not None:
                raise ValueError("only rows for tables can be written together")
            joined.joined += ((write.table, write.row),)
        return joined


_STOP = object()


class Writer:
    """Owns ``DIR/payorch.duckdb``; see the module text."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        admit_limit: int = DEFAULT_ADMIT_LIMIT,
        fair_share_percent: int = DEFAULT_FAIR_SHARE_PERCENT,
        threads: int = DEFAULT_THREADS,
        checkpoint_mb: int = DEFAULT_CHECKPOINT_MB,
        memory_limit: str | None = None,
    ) -> None:
        if min(max_rows, admit_limit, threads, checkpoint_mb) < 1 or max_wait_ms < 0:
            raise IngestError(
                "store: max_rows, admit_limit, threads and checkpoint_mb must be positive, "
                "max_wait_ms not negative"
            )
        if not 1 <= fair_share_percent <= 100:
            raise IngestError("store: fair_share_percent must be 1 to 100")
        self.path = path
        self._max_rows = max_rows
        self._max_wait_s = max_wait_ms / 1000
        self._admit_limit = admit_limit
        #: Past this many writes waiting, only work within its merchant's share is let in.
        self._share_limit = admit_limit * fair_share_percent // 100
        settings: dict[str, str | bool | int | float | list[str]] = {
            "threads": threads,
            "checkpoint_threshold": f"{checkpoint_mb}MB",
            # No merging of row groups in checkpoints (see DEFAULT_CHECKPOINT_MB).
            "max_vacuum_tasks": 0,
            # Never DuckDB's own default, 80% of the host's memory (``ingest.store.memory``).
            "memory_limit": memory_limit or store_memory.memory_limit(_STORE),
        }
        # Inside the data folder and its owner's only; cleared of a dead process's spill once the
        # lock is held (``ingest.store.spill``).
        settings["temp_directory"] = spill.prepare(path)
        try:
            # Absolute: DuckDB reads a leading ``~`` as the home folder, where ``--data '~'``
            # names ``./~`` (it created HOME/payorch.duckdb, then failed on ./~/payorch.duckdb).
            self._connection = duckdb.connect(str(path.absolute()), config=settings)
        except duckdb.Error as error:
            raise IngestError(f"cannot open the database {path}: {_unopened(error)}") from None
        #: Files a dead process spilled, removed at the open (its lock held: none is another's).
        self.spills_cleared = spill.clear(path)
        #: One line for the operator when DuckDB could not replay the log a crash left to its end
        #: (see :func:`_check_replayed`); logged by the start, once logging is set up.
        self.log_warning: str | None = None
        try:
            self.log_warning = _check_replayed(
                self._connection, path.with_name(path.name + ".wal"), settings["checkpoint_threshold"]
            )
            self.applied_migrations = migrate(self._connection)
        except (duckdb.Error, IngestError) as error:
            # A file DuckDB opens but cannot read through (a truncated or damaged block, a disk
            # that refuses the migration's commit), or a newer payorch's database.
            with contextlib.suppress(duckdb.Error):
                self._connection.close()
            raise IngestError(f"cannot use the database {path}: {_one_line(error)}") from None
        #: The file opened (device, inode): a file deleted or replaced under the running writer
        #: is a disk failure (see :meth:`_check_file`).
        self._identity = _identity(path)
        self._reader = self._connection.cursor()
        # The optimizer off on the writer's own connection (its readers' cursors keep theirs): its
        # statements are INSERTs of a batch, which no optimizer rule changes, and each paid it
        # about 0.15 ms of the 1.1 ms it costs. The rare statements of a write's ``apply`` (a
        # DELETE with a subquery) run with it on (see :meth:`_apply`).
        self._connection.execute("PRAGMA disable_optimizer")
        self._read_lock = threading.Lock()
        self._queue: queue.SimpleQueue[Write | object] = queue.SimpleQueue()
        #: The writes of the batch being committed (0 between batches), set by the writer thread.
        self._committing = 0
        #: The writes the work admitted has yet to queue (see ``ingest.store.admission``).
        self._admitted = AdmittedWrites()
        self._closed = False
        #: Why the disk stopped the writer (one line, naming the file); ``None`` while it works.
        self.failure: str | None = None
        #: Told the failure once, from the writer thread, when the disk stops the writer.
        self.on_failure: Callable[[str], None] | None = None
        self.rows_written = 0
        self.batches_written = 0
        #: Rows committed, by table name.
        self.rows_by_table: dict[str, int] = {}
        #: Told the rows of each commit by table name, from the writer thread once it is durable.
        self.on_commit: Callable[[Mapping[str, int]], None] | None = None
        self._thread = threading.Thread(target=self._run, name="payorch-writer", daemon=True)
        self._thread.start()

    # -- the event loop's side ---------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Writes queued and not yet committed (approximate)."""
        return self._queue.qsize()

    @property
    def unwritten(self) -> int:
        """Writes the work admitted is still expected to queue (see ``ingest.store.admission``)."""
        return self._admitted.unwritten

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed and self.failure is None

    def admit(self, *, over_share: bool = False, writes: int = 0) -> Admission:
        """Raise :class:`StoreSaturatedError` when new work should wait (see the module text);
        ``over_share``: the work is of a merchant holding more than its share. Judged as things
        stood before the work, so that a lone piece of work on an idle writer is always let in.

        Let in, the work is counted as ``writes`` still to come (see ``ingest.store.admission``)
        until it queues them in the caller's context or :meth:`Admission.end` is called, which the
        caller must do when the work ends (0: a check only, nothing to end)."""
        if self.failure is not None:
            raise StoreStoppedError(self.failure)
        if self._closed:
            raise StoreSaturatedError("the store is closed")
        behind = self._queue.qsize() + self._admitted.unwritten
        if behind > self._admit_limit:
            raise StoreSaturatedError(f"{behind} writes are waiting for the disk or to come")
        # The share mark counts the batch being committed too: the queue alone empties at the
        # start of every commit, and read then it let a flood in whole at each commit, whose
        # writes took every merchant past ``admit_limit`` (see ``ingest.store.shares``).
        if over_share and behind + self._committing > self._share_limit:
            raise StoreShareError(f"{behind + self._committing} writes are waiting for the disk or to come")
        return self._admitted.admit(writes)

    def submit(self, write: Write) -> None:
        """Queue ``write``; it is committed in order with everything queued before it."""
        if self._closed:
            raise StoreError("the store is closed")
        admission.queued()
        self._queue.put(write)

    async def submit_and_wait(self, write: Write) -> None:
        """Queue ``write`` and return once the commit holding it is durable."""
        write.done = asyncio.get_running_loop().create_future()
        self.submit(write)
        await write.done

    async def read(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run ``query`` on a reading connection, in a worker thread (it sees every commit)."""
        return await asyncio.to_thread(self.read_now, query)

    def read_now(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        # A cursor of its own per read: a result left unfinished (``fetchone``) would make the
        # next statement on a shared cursor fail.
        with self._read_lock, self._reader.cursor() as cursor:
            return query(cursor)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A reading connection of the caller's own, for a read that outlives one call (a result
        streamed to a client); it sees every commit up to its first statement. Close it."""
        with self._read_lock:
            return self._reader.cursor()

    def close(self, timeout_s: float = 30.0) -> bool:
        """Commit everything queued, then close the database (at shutdown). Returns whether the
        writer finished: ``False`` when writes were still queued after ``timeout_s``, or when the
        disk stopped it (:attr:`failure`)."""
        if self._closed:
            return not self._thread.is_alive() and self.failure is None
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.error("store: the writer did not finish within %.0f s", timeout_s)
            return False
        with self._read_lock:
            self._reader.close()
            with contextlib.suppress(duckdb.Error):  # a failed disk may refuse the last checkpoint
                self._connection.close()
        return self.failure is None

    # -- the writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[Write] = [first]  # type: ignore[list-item]
            stopping = self._gather(batch) if self._max_wait_s > 0 else self._take_queued(batch)
            self._committing = len(batch)
            self._commit(batch)

    def _gather(self, batch: list[Write]) -> bool:
        """Add to ``batch`` (its first write just taken) what queues until ``max_wait_ms`` after
        it, up to ``max_rows`` writes; returns whether the stop came meanwhile."""
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._max_rows:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)  # type: ignore[arg-type]
        return False

    def _take_queued(self, batch: list[Write]) -> bool:
        """:meth:`_gather` with no wait (the default): add what is queued now, up to ``max_rows``
        writes; returns whether the stop was among it. Taken with no clock read and no length
        check per write: they cost this loop half its time, 0.18 of 0.36 µs a write."""
        take, add = self._queue.get_nowait, batch.append
        try:
            for _ in range(self._max_rows - 1):
                item = take()
                if item is _STOP:
                    return True
                add(item)  # type: ignore[arg-type]
        except queue.Empty:
            pass
        return False

    def _commit(self, batch: Sequence[Write]) -> None:
        error: BaseException | None = None
        try:
            if self.failure is not None:
                raise StoreError(self.failure)
            self.rows_written += len(batch) + self._write(batch)
            self.batches_written += 1
        except StoreError as exc:
            error = exc
        except _DISK_ERRORS as exc:
            self._fail(exc)
            error = StoreError(f"the batch could not be committed: {self.failure}")
        except Exception as exc:
            logger.exception("store: a batch of %d writes could not be committed", len(batch))
            error = StoreError(f"the batch could not be committed: {type(exc).__name__}")
        self._committing = 0  # before its waiters hear of it: what they do next sees it gone
        waiting = [write.done for write in batch if write.done is not None]
        if waiting:
            loop = waiting[0].get_loop()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                loop.call_soon_threadsafe(_settle, waiting, error)

    def _write(self, batch: Sequence[Write]) -> int:
        """Commit ``batch``; returns how many more rows than writes it held (joined writes)."""
        connection = self._connection
        extra = 0
        connection.begin()
        written: dict[str, int] = {}
        try:
            rows: dict[Table, list[tuple[Any, ...]]] = {}
            for write in batch:
                if write.apply is not None:
                    self._flush(rows, written)  # statements see every row queued before them
                    self._apply(write.apply)
                    continue
                if write.table is not None:
                    convert = write.table.convert
                    row = write.row if convert is None else convert(write.row)
                    rows.setdefault(write.table, []).append(row)
                elif write.joined:
                    extra += len(write.joined) - 1
                    for table, joined_row in write.joined:
                        convert = table.convert
                        rows.setdefault(table, []).append(
                            joined_row if convert is None else convert(joined_row)
                        )
            self._flush(rows, written)
            self._check_file()
            try:
                connection.commit()
            except duckdb.Error as exc:
                raise _CommitRefusedError(str(exc)) from exc
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # a refused commit leaves no transaction
                connection.rollback()
            with contextlib.suppress(duckdb.Error):  # a failed apply left it on (see _apply)
                connection.execute("PRAGMA disable_optimizer")
            raise
        counts = self.rows_by_table
        for name, count in written.items():
            counts[name] = counts.get(name, 0) + count
        if self.on_commit is not None:
            self.on_commit(written)
        return extra

    def _apply(self, apply: Callable[[duckdb.DuckDBPyConnection], object]) -> None:
        """Run a write's own statements with the optimizer on, as any other connection would. One
        that fails leaves it on until the batch's rollback (:meth:`_write`): a transaction it
        aborted refuses every statement but the rollback, and the error must stay the apply's."""
        connection = self._connection
        connection.execute("PRAGMA enable_optimizer")
        apply(connection)
        connection.execute("PRAGMA disable_optimizer")

    def _check_file(self) -> None:
        """Refuse to commit into a database file no longer at its path: DuckDB keeps writing to
        the file it opened, and a deleted one (the data folder removed) or one renamed away (a
        backup restored over it) would take every later payment with it at the stop."""
        try:
            now = _identity(self.path)
        except OSError as error:
            raise _CommitRefusedError(f"the file is gone: {error.strerror}") from None
        if now != self._identity:
            raise _CommitRefusedError("another file has replaced it")

    def refuse(self, failure: str) -> None:
        """Stop the writer for good, as a refused commit does, for another file of the data folder
        that the disk refused (``failure``, one line naming it: the simulated processors' books).
        Safe from any thread; a writer stopped already keeps its first reason."""
        if self.failure is None:
            self._stop(failure)

    def _fail(self, error: Exception) -> None:
        """Stop the writer for good: the disk refused a batch (see the module text)."""
        self._stop(f"the database {self.path} could not be written ({_one_line(error)})")

    def _stop(self, failure: str) -> None:
        self.failure = failure
        logger.error(
            "store: %s; nothing more is written, and the service stops "
            "(the next start settles the payments cut short)",
            self.failure,
        )
        if self.on_failure is not None:
            self.on_failure(self.failure)

    def _flush(self, rows: dict[Table, list[tuple[Any, ...]]], written: dict[str, int]) -> None:
        for table, table_rows in rows.items():
            written[table.name] = written.get(table.name, 0) + len(table_rows)
            batch = arrow_batch(table, table_rows)  # noqa: F841 - read by the SQL
            # DuckDB finds ``batch`` among this frame's variables (a replacement scan): cheaper
            # than registering and unregistering a view for every statement.
            self._connection.execute(table.sql)
        rows.clear()


def arrow_batch(table: Table, rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """``rows`` (each a tuple in ``table``'s column order) as an Arrow table of its schema.

    Read by Arrow as the values of one struct column, whose fields are then the table's columns
    (no copy): 0.18 µs an event less than turning the rows into columns in Python (``zip``) and
    each column into an array, and the same arrays. A row of the wrong length is refused."""
    return pa.Table.from_struct_array(pa.array(rows, type=pa.struct(table.schema)))


def _read_log(log: Path) -> bytes:
    """What the write-ahead log holds (empty when there is none)."""
    try:
        return log.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as error:
        raise IngestError(f"cannot read the database's log {log}: {error.strerror}") from None


def _check_replayed(connection: duckdb.DuckDBPyConnection, log: Path, threshold: object) -> str | None:
    """What to say when DuckDB replayed only part of the log it opened the database with
    (``None`` when it replayed it all, or there was none), having kept the whole of it.

    DuckDB stops replaying a log at the first entry it cannot read (a torn or damaged end, or a
    file that is not its log at all), drops the rest without a word, and cuts the file there at
    its next write: committed payments would be gone silently. Its first write after a whole
    replay appends to the log; after a partial one it overwrites it from where it stopped. So one
    write (a table made and dropped, no checkpoint meanwhile) tells which it was.

    The log is read once the database is open, not before: opening it may have settled a
    checkpoint a crash interrupted. A log whose checkpoint had finished writing the database file
    is removed then (all of it is in the file), and a checkpoint's own log of the commits made
    during it takes the log's place: the log DuckDB replayed is the one found after the open. (Read
    before, a removed log failed the start with FileNotFoundError, or, once the probe had made a
    new one, passed for a log replayed in part.)"""
    logged = _read_log(log)
    if not logged:
        return None
    connection.execute("SET checkpoint_threshold = '1TB'")
    connection.execute(
        "BEGIN; CREATE TABLE payorch_log_probe (x INTEGER); DROP TABLE payorch_log_probe; COMMIT"
    )
    connection.execute(f"SET checkpoint_threshold = '{threshold}'")
    # Gone after the probe (no checkpoint can run meanwhile, with the threshold above): nothing is
    # left to compare and nothing says a part was dropped, so the start goes on.
    now = _read_log(log)
    if not now or now[: len(logged)] == logged:
        return None
    kept = log.with_name(f"{log.name}.unreadable-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    try:
        kept.write_bytes(logged)
        where = f"kept whole as {kept}"
    except OSError as error:
        where = f"and could not be kept as {kept}: {error.strerror}"
    return (
        f"database {log.with_suffix('')}: its log {log} could not be replayed to its end, and DuckDB "
        "dropped what it could not read (a crash during a commit leaves such an end; else committed "
        f"payments are lost): {where}"
    )


def _identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


#: DuckDB's words for a file another process has open, read-only or not (it names the PID).
_HELD = re.compile(r"Conflicting lock is held in .* \(PID (\d+)\)")


def _unopened(error: duckdb.Error) -> str:
    """Why DuckDB could not open the file, in payorch's words when another process holds it
    (DuckDB's own pointed to the read-only mode of its command line)."""
    held = _HELD.search(str(error))
    if held is None:
        return str(error)
    return (
        f"another process has it open (PID {held.group(1)}): a payorch export or payorch report "
        "--data reading it, or another payorch serve; wait for it to end, or stop it"
    )


def _one_line(error: BaseException) -> str:
    """The first line of what ``error`` says (DuckDB's messages may go on over several)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _settle(waiting: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in waiting:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
