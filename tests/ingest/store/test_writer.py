"""The single writer: batches, order, waiting for commits, failures and backpressure, against a
real DuckDB file."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ingest.errors import IngestError
from ingest.store.records import EVENTS
from ingest.store.schema import CURRENT_VERSION, FILE_NAME, MIGRATIONS, migrate
from ingest.store.writer import StoreError, StoreSaturatedError, Table, Write, Writer

NOTES = Table(
    "notes",
    pa.schema([("n", pa.int64()), ("text", pa.string())]),
    "INSERT INTO notes SELECT * FROM batch",
)


def _writer(path: Path, **options: float) -> Writer:
    writer = Writer(path, **options)  # type: ignore[arg-type]
    writer.submit(Write(None, apply=lambda c: c.execute("CREATE TABLE notes (n BIGINT, text VARCHAR)")))
    return writer


def _notes(path: Path) -> list[tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return [
            (int(n), str(text)) for n, text in connection.execute("SELECT * FROM notes ORDER BY n").fetchall()
        ]


def test_migrations_run_once_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    with duckdb.connect(str(path)) as connection:
        assert migrate(connection) == [migration.version for migration in MIGRATIONS]
        assert migrate(connection) == []
        tables = {
            row[0]
            for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        assert {"events", "violations", "payments", "idempotency_keys", "complaints"} <= tables
        connection.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [CURRENT_VERSION + 1]
        )
        with pytest.raises(IngestError, match="newer than this payorch knows"):
            migrate(connection)


def test_complaints_filed_before_the_per_merchant_ids_are_kept_and_ids_are_then_per_merchant(
    tmp_path: Path,
) -> None:
    path = tmp_path / "payorch.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.begin()
        for statement in MIGRATIONS[0].statements:  # a database as version 1 left it
            connection.execute(statement)
        connection.commit()
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL)"
        )
        connection.execute("INSERT INTO schema_migrations VALUES (1, 'first', now())")
        filed = (
            "INSERT INTO complaints (complaint_id, merchant_id, received_at, category, description, "
            "payment_id, request_id, contract_id) VALUES "
            "(?, ?, TIMESTAMPTZ '2026-11-20 08:00:00+00', 'timeout', ?, NULL, NULL, NULL)"
        )
        connection.execute(filed, ["c-1", "m_acme", "acme's"])
        with pytest.raises(duckdb.ConstraintException):
            connection.execute(filed, ["c-1", "m_globex", "globex's"])  # version 1: ids across merchants

        assert migrate(connection) == list(range(2, CURRENT_VERSION + 1))
        connection.execute(filed, ["c-1", "m_globex", "globex's"])
        with pytest.raises(duckdb.ConstraintException):
            connection.execute(filed, ["c-1", "m_acme", "acme's again"])
        rows = connection.execute(
            "SELECT merchant_id, complaint_id, received_at, description FROM complaints ORDER BY merchant_id"
        ).fetchall()

    assert [(merchant, complaint, text) for merchant, complaint, _, text in rows] == [
        ("m_acme", "c-1", "acme's"),
        ("m_globex", "c-1", "globex's"),
    ]
    assert rows[0][2].isoformat().startswith("2026-11-20T")


def as_version(connection: duckdb.DuckDBPyConnection, version: int) -> None:
    """Make the database as a payorch of schema ``version`` left it."""
    connection.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL)"
    )
    for migration in MIGRATIONS[:version]:
        for statement in migration.statements:
            connection.execute(statement)
        connection.execute("INSERT INTO schema_migrations VALUES (?, 'earlier', now())", [migration.version])


#: Version 1's tables as the first releases made them (568669e; 091d8ab already added the keys'
#: ``version`` and ``state``, 3e52d6f settled it): events kept their JSON, payments and keys were upserted.
FIRST_RELEASE = (
    """CREATE TABLE events (seq BIGINT NOT NULL, payment_id VARCHAR NOT NULL, request_id VARCHAR NOT NULL,
    merchant_id VARCHAR NOT NULL, event_type VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, step_index INTEGER,
    processor_id VARCHAR, amount_cents BIGINT, error_code VARCHAR, document VARCHAR NOT NULL,
    proto BLOB NOT NULL)""",
    """CREATE TABLE payments (payment_id VARCHAR PRIMARY KEY, merchant_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL, document VARCHAR NOT NULL)""",
    """CREATE TABLE idempotency_keys (merchant_id VARCHAR NOT NULL, key VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, status_code INTEGER, body BLOB,
    media_type VARCHAR, PRIMARY KEY (merchant_id, key))""",
    *(statement for statement in MIGRATIONS[0].statements if statement.startswith("CREATE TABLE complaints")),
    """CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL)""",
    "INSERT INTO schema_migrations VALUES (1, 'events, violations, payments, idempotency keys', now())",
)


def columns(connection: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in connection.execute(f"DESCRIBE {table}").fetchall()]


@pytest.mark.parametrize("migrated_as_it_was", [False, True])
def test_a_database_of_the_first_releases_is_given_version_1s_tables_with_its_rows(
    tmp_path: Path, migrated_as_it_was: bool
) -> None:
    with duckdb.connect(str(tmp_path / "payorch.duckdb")) as connection:
        for statement in FIRST_RELEASE:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO events VALUES "
            "(1, 'pay_1', 'req_1', 'm_acme', 'PaymentReceived', now(), NULL, NULL, 1250, NULL, "
            """'{"type": "PaymentReceived", "accepted": true}', 'envelope 1'), """
            "(2, 'pay_1', 'req_1', 'm_acme', 'StepFailed', now(), 0, 'stripe_sim', NULL, 'declined', "
            """'{"type": "StepFailed"}', 'envelope 2')"""
        )
        connection.execute("INSERT INTO payments VALUES ('pay_1', 'm_acme', 'failed', now(), '{}')")
        connection.execute(
            "INSERT INTO idempotency_keys VALUES "
            "('m_acme', 'k-1', 'f1', TIMESTAMPTZ '2026-11-20 08:00:00+00', 200, 'answer', 'text/plain'), "
            "('m_acme', 'k-2', 'f2', TIMESTAMPTZ '2026-11-20 09:00:00+00', NULL, NULL, NULL)"
        )
        later = MIGRATIONS[1:] if migrated_as_it_was else ()  # what a payorch without the fix left
        for migration in later:
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations VALUES (?, 'later', now())", [migration.version]
            )

        assert migrate(connection) == ([] if migrated_as_it_was else list(range(2, CURRENT_VERSION + 1)))
        events = connection.execute(
            "SELECT seq, event_type, accepted, proto FROM events ORDER BY seq"
        ).fetchall()
        keys = connection.execute(
            "SELECT version, key, state, fingerprint, status_code, body FROM idempotency_keys "
            "ORDER BY version"
        ).fetchall()
        connection.execute("INSERT INTO payments VALUES ('pay_1', 'm_acme', 'failed', now(), '{}', 1, 2)")
        payments = connection.execute("SELECT count(*) FROM payments WHERE payment_id = 'pay_1'").fetchone()
        migrated = {table: columns(connection, table) for table in ("events", "payments", "idempotency_keys")}
    with duckdb.connect(str(tmp_path / "new.duckdb")) as connection:
        migrate(connection)
        new = {table: columns(connection, table) for table in ("events", "payments", "idempotency_keys")}

    assert events == [(1, "PaymentReceived", True, b"envelope 1"), (2, "StepFailed", None, b"envelope 2")]
    assert keys == [(1, "k-1", "answered", "f1", 200, b"answer"), (2, "k-2", "in_flight", "f2", None, None)]
    assert payments == (2,)  # rows are added, no longer upserted
    # The writer inserts its rows by position: the tables have the columns of a new database's.
    assert migrated == new


def test_events_stored_before_the_decline_code_column_are_kept_and_take_the_writers_rows(
    tmp_path: Path,
) -> None:
    with duckdb.connect(str(tmp_path / "payorch.duckdb")) as connection:
        as_version(connection, 3)
        connection.execute(
            "INSERT INTO events VALUES (1, 'pay_1', 'req_1', 'm_acme', 'StepFailed', "
            "TIMESTAMPTZ '2026-11-20 08:00:00+00', 0, 'stripe_sim', NULL, 'declined', NULL, 'envelope')"
        )

        assert migrate(connection) == list(range(4, CURRENT_VERSION + 1))
        kept = connection.execute("SELECT seq, error_code, decline_code, proto FROM events").fetchall()
        migrated = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
    with duckdb.connect(str(tmp_path / "new.duckdb")) as connection:
        migrate(connection)
        new = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
    assert kept == [(1, "declined", None, b"envelope")]  # its reason is only in its envelope
    # The writer inserts its rows by position: a migrated table has the columns of a new one.
    assert migrated == new == EVENTS.schema.names


def test_a_database_of_version_5_loses_the_unused_key_index_and_keeps_its_keys(tmp_path: Path) -> None:
    def key_indexes(connection: duckdb.DuckDBPyConnection) -> list[str]:
        query = "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'idempotency_keys'"
        return [row[0] for row in connection.execute(query).fetchall()]

    with duckdb.connect(str(tmp_path / "payorch.duckdb")) as connection:
        as_version(connection, 5)
        connection.execute(
            "INSERT INTO idempotency_keys VALUES "
            "(1, 'm_acme', 'k-1', 'in_flight', 'f', now(), NULL, NULL, NULL)"
        )
        assert key_indexes(connection) == ["idempotency_keys_by_key"]

        assert migrate(connection) == list(range(6, CURRENT_VERSION + 1))
        assert key_indexes(connection) == []
        assert connection.execute("SELECT key, state FROM idempotency_keys").fetchall() == [
            ("k-1", "in_flight")
        ]
    with duckdb.connect(str(tmp_path / "new.duckdb")) as connection:
        migrate(connection)
        assert key_indexes(connection) == []


async def test_a_waited_write_is_durable_with_everything_queued_before_it(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path, max_wait_ms=5)
    for n in range(500):
        writer.submit(Write(NOTES, (n, f"note {n}")))
    await writer.submit_and_wait(Write(NOTES, (500, "last")))

    assert writer.read_now(lambda c: c.execute("SELECT count(*) FROM notes").fetchone()) == (501,)
    # Group commit: 502 writes (the table, 501 notes) in far fewer transactions.
    assert writer.rows_written == 502
    assert writer.batches_written < 20
    writer.close()
    assert _notes(path)[-1] == (500, "last")


async def test_statements_see_the_rows_queued_before_them(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    writer.submit(Write(NOTES, (1, "keep")))
    writer.submit(Write(NOTES, (2, "drop")))
    writer.submit(Write(None, apply=lambda c: c.execute("DELETE FROM notes WHERE text = 'drop'")))
    await writer.submit_and_wait(Write(NOTES, (3, "after")))
    writer.close()

    assert _notes(path) == [(1, "keep"), (3, "after")]


async def test_a_failed_batch_fails_its_waiters_and_the_next_batch_commits(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    await writer.submit_and_wait(Write(NOTES, (1, "before")))

    with pytest.raises(StoreError, match="could not be committed"):
        await writer.submit_and_wait(Write(None, apply=lambda c: c.execute("SELECT * FROM no_such_table")))
    await writer.submit_and_wait(Write(NOTES, (2, "after")))
    writer.close()

    assert _notes(path) == [(1, "before"), (2, "after")]


def _optimizer(connection: duckdb.DuckDBPyConnection) -> bool:
    row = connection.execute("SELECT current_setting('enable_optimizer')").fetchone()
    assert row is not None
    return bool(row[0])


async def test_statements_of_a_write_and_reads_run_optimized_and_a_failed_one_keeps_its_own_error(
    tmp_path: Path,
) -> None:
    """The writer's batch INSERTs run without DuckDB's optimizer (nothing in them to optimize); a
    write's own statements (the purge's DELETE) and every read keep it. A statement that fails
    aborts the transaction, which then refuses any other: the error said is still its own."""
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    seen: list[bool] = []
    writer.submit(Write(NOTES, (1, "before")))
    await writer.submit_and_wait(Write(None, apply=lambda c: seen.append(_optimizer(c))))

    with pytest.raises(StoreError, match="CatalogException"):
        await writer.submit_and_wait(Write(None, apply=lambda c: c.execute("SELECT * FROM no_such_table")))
    writer.submit(Write(NOTES, (2, "after")))
    await writer.submit_and_wait(Write(None, apply=lambda c: seen.append(_optimizer(c))))
    assert writer.read_now(_optimizer)
    with writer.cursor() as cursor:
        assert _optimizer(cursor)
    writer.close()

    assert seen == [True, True]
    assert _notes(path) == [(1, "before"), (2, "after")]


@contextlib.contextmanager
def full_disk(max_bytes: int = 256 * 1024) -> Iterator[None]:
    """A disk that refuses to grow any file of this process past ``max_bytes`` (RLIMIT_FSIZE:
    the write fails with EFBIG, as a full disk fails it with ENOSPC; Python ignores SIGXFSZ)."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)


async def test_a_disk_that_refuses_a_commit_stops_the_writer_for_good(tmp_path: Path) -> None:
    """The batch is lost, and what memory holds of it with it: nothing more may be written or
    admitted (only a restart's crash recovery settles it), and whoever runs the writer is told."""
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    told: list[str] = []
    writer.on_failure = told.append
    await writer.submit_and_wait(Write(NOTES, (1, "before")))

    refused = r"payorch\.duckdb could not be written \(.*File too large"
    with full_disk(), pytest.raises(StoreError, match=refused):
        await writer.submit_and_wait(Write(NOTES, (2, "x" * 1_000_000)))
    with pytest.raises(StoreError, match="could not be written"):  # room again: still refused
        await writer.submit_and_wait(Write(NOTES, (3, "after")))
    with pytest.raises(StoreSaturatedError, match="could not be written"):
        writer.admit()

    assert told == [writer.failure]
    assert not writer.alive
    assert writer.close() is False
    assert _notes(path) == [(1, "before")]


def delete(path: Path) -> None:
    for file in path.parent.iterdir():  # the data folder emptied: the database, its log, its spill folder
        if file.is_dir():
            shutil.rmtree(file)
        else:
            file.unlink()


def replace(path: Path) -> None:
    copy = path.with_name("copy.duckdb")
    copy.write_bytes(path.read_bytes())
    copy.replace(path)  # a backup restored over it


@pytest.mark.parametrize(
    ("change", "says"), [(delete, "the file is gone: No such file or directory"), (replace, "another file")]
)
async def test_a_database_file_deleted_or_replaced_while_serving_is_a_disk_failure(
    tmp_path: Path, change: Callable[[Path], None], says: str
) -> None:
    """DuckDB would go on committing into the file it opened, which no one will ever read again:
    every payment acknowledged from then on would be lost at the stop."""
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    await writer.submit_and_wait(Write(NOTES, (1, "before")))

    change(path)

    with pytest.raises(StoreError, match=f"payorch\\.duckdb could not be written \\({says}"):
        await writer.submit_and_wait(Write(NOTES, (2, "after")))
    assert not writer.alive
    assert writer.close() is False


async def test_a_full_queue_refuses_new_work_and_loses_nothing_already_taken(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path, admit_limit=50)
    stalled, disk = threading.Event(), threading.Event()  # the disk stalls until ``disk`` is set

    def stall(_: object) -> None:
        stalled.set()
        disk.wait(30)

    writer.submit(Write(None, apply=stall))
    # The writer holds nothing else: what it takes into a batch before it stalls would not count
    # against the queue, and how much that is depends on the threads' timing.
    assert stalled.wait(30)
    taken = []
    refused = 0
    for n in range(200):
        try:
            writer.admit()
        except StoreSaturatedError:
            refused += 1
            continue
        writer.submit(Write(NOTES, (n, "taken")))
        taken.append(n)

    assert len(taken) == 51  # admitted while at most 50 writes wait
    assert refused == 200 - len(taken)
    disk.set()
    await writer.submit_and_wait(Write(NOTES, (1000, "end")))
    writer.admit()  # caught up: new work is welcome again
    writer.close()

    assert [n for n, _ in _notes(path)] == [*taken, 1000]


async def test_closing_commits_what_is_queued_and_refuses_more(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path, max_wait_ms=50)
    for n in range(100):
        writer.submit(Write(NOTES, (n, "queued")))
    writer.close()

    assert len(_notes(path)) == 100
    with pytest.raises(StoreSaturatedError):
        writer.admit()
    with pytest.raises(StoreError):
        writer.submit(Write(NOTES, (101, "late")))


def test_a_database_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    path.write_bytes(b"this is not a database")

    with pytest.raises(IngestError, match=r"cannot open the database .*payorch\.duckdb"):
        Writer(path)


async def test_waiters_on_other_loops_are_not_mixed_up(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "payorch.duckdb")
    results = await asyncio.gather(*(writer.submit_and_wait(Write(NOTES, (n, "x"))) for n in range(50)))
    assert results == [None] * 50
    writer.close()


async def test_writes_joined_together_are_committed_in_one_batch_and_counted_each(tmp_path: Path) -> None:
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path, max_rows=1)
    await writer.submit_and_wait(Write(None))
    batches = writer.batches_written
    writer.submit(Write.together(Write(NOTES, (1, "ended")), Write(NOTES, (2, "its result"))))
    await writer.submit_and_wait(Write(None))

    assert writer.batches_written == batches + 2  # the joined rows, then the marker
    assert writer.rows_written == 1 + 1 + 2 + 1  # the table, a marker, two joined rows, a marker
    with pytest.raises(ValueError, match="only rows for tables"):
        Write.together(Write(None))
    writer.close()
    assert _notes(path) == [(1, "ended"), (2, "its result")]


async def test_a_checkpoint_writes_the_rows_committed_since_the_last_one_and_rewrites_no_older_ones(
    tmp_path: Path,
) -> None:
    # Each checkpoint appends its rows as a row group. DuckDB's vacuum merged that row group with
    # the ones before, rewriting rows already stored inside the commit every payment waits for.
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    for start in (0, 2000, 4000):
        for n in range(start, start + 2000):
            writer.submit(Write(NOTES, (n, "x" * 600)))
        await writer.submit_and_wait(Write(None))
        writer.read_now(lambda c: c.execute("CHECKPOINT"))

    def row_groups(connection: duckdb.DuckDBPyConnection) -> list[tuple[int, int]]:
        rows = connection.execute(
            "SELECT row_group_id, max(count) FROM pragma_storage_info('notes') GROUP BY ALL ORDER BY 1"
        ).fetchall()
        return [(int(group), int(count)) for group, count in rows]

    assert writer.read_now(row_groups) == [(0, 2000), (1, 2000), (2, 2000)]
    writer.close()
    assert len(_notes(path)) == 6000


async def test_the_log_is_copied_into_the_database_each_time_it_passes_16_mb(tmp_path: Path) -> None:
    # Each copy (checkpoint) stops every commit while it runs, for a time that grows with the log.
    path = tmp_path / "payorch.duckdb"
    writer = _writer(path)
    for batch in range(24):
        for n in range(batch * 1000, (batch + 1) * 1000):
            writer.submit(Write(NOTES, (n, f"{n:06d}" + "x" * 1000)))
        await writer.submit_and_wait(Write(None))

    log = path.with_name(path.name + ".wal")
    assert (log.stat().st_size if log.exists() else 0) < 16 * 1024 * 1024
    writer.close()
    assert len(_notes(path)) == 24_000


def _crashed_with_a_log(tmp_path: Path) -> Path:
    """A database folder as a crash leaves it: a row committed only to ``payorch.duckdb.wal``."""
    (tmp_path / "before").mkdir()
    Writer(tmp_path / "before" / FILE_NAME).close()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with duckdb.connect(str(tmp_path / "before" / FILE_NAME)) as connection:
        connection.execute("CREATE TABLE committed_rows AS SELECT 1 AS x")
        for name in (FILE_NAME, f"{FILE_NAME}.wal"):
            shutil.copyfile(tmp_path / "before" / name, crashed / name)
    return crashed / FILE_NAME


def test_a_log_duckdb_cannot_replay_to_its_end_is_kept_whole_and_said_so(tmp_path: Path) -> None:
    path = _crashed_with_a_log(tmp_path)
    log = path.with_name(f"{FILE_NAME}.wal")
    logged = log.read_bytes()
    log.write_bytes(logged[:-10])  # its last commit damaged: DuckDB drops it

    writer = Writer(path)
    writer.close()

    kept = list(path.parent.glob(f"{FILE_NAME}.wal.unreadable-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == logged[:-10]
    assert writer.log_warning is not None
    assert str(log) in writer.log_warning and f"kept whole as {kept[0]}" in writer.log_warning


def test_a_log_replayed_whole_is_neither_kept_nor_mentioned(tmp_path: Path) -> None:
    path = _crashed_with_a_log(tmp_path)

    writer = Writer(path)
    found = writer.read_now(lambda c: c.execute("SELECT x FROM committed_rows").fetchall())
    writer.close()

    assert found == [(1,)]
    assert list(path.parent.glob("*.unreadable-*")) == []
    assert writer.log_warning is None


def test_a_log_a_finished_checkpoint_left_behind_is_taken_as_replayed_whole(tmp_path: Path) -> None:
    """A crash after a checkpoint wrote the database file and before it removed the log: DuckDB
    finds the log's checkpoint mark done and removes the log as it opens the file. The start
    failed on the log gone from under its check (FileNotFoundError), or, once the probe write had
    made a new log, took it for a log replayed in part and kept a copy with a false warning."""
    (tmp_path / "before").mkdir()
    before = tmp_path / "before" / FILE_NAME
    Writer(before).close()
    with duckdb.connect(str(before)) as connection:
        connection.execute("CREATE TABLE committed_rows AS SELECT 1 AS x")
        # A second name for the log: it keeps the log as the checkpoint leaves it (with its mark)
        # once DuckDB removes the first name.
        (tmp_path / "log-at-checkpoint").hardlink_to(before.with_name(f"{FILE_NAME}.wal"))
        connection.execute("CHECKPOINT")
    (tmp_path / "crashed").mkdir()
    path = tmp_path / "crashed" / FILE_NAME
    shutil.copyfile(before, path)
    shutil.copyfile(tmp_path / "log-at-checkpoint", path.with_name(f"{FILE_NAME}.wal"))

    writer = Writer(path)
    found = writer.read_now(lambda c: c.execute("SELECT x FROM committed_rows").fetchall())
    writer.close()

    assert found == [(1,)]
    assert writer.log_warning is None
    assert list(path.parent.glob("*.unreadable-*")) == []


def test_a_folder_named_tilde_is_that_of_the_current_folder_not_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``payorch serve --data '~'`` (quoted) names ``./~``: DuckDB took its ``~`` for the home
    folder, created ``HOME/payorch.duckdb`` and the start then failed on ``./~/payorch.duckdb``."""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    (here / "~").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)

    writer = Writer(Path("~") / FILE_NAME)
    writer.close()

    assert list(home.iterdir()) == []
    with duckdb.connect(str(here / "~" / FILE_NAME), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM complaints").fetchone() == (0,)  # migrated
