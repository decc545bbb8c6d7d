"""``payorch export``: hive-partitioned Parquet from a data folder, the same rows read back with
pyarrow, and one-line errors (exit 2) for a missing database or one a server holds."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from analytics.errors import UnreadableExportError
from analytics.export_source import report_frames
from engine.monitor import ReportWindow
from ingest.errors import IngestError
from ingest.store import export as export_module
from ingest.store.reads import COMPLAINTS, EVENTS, VIOLATIONS, Input
from ingest.store.schema import CURRENT_VERSION, FILE_NAME, MIGRATIONS
from ingest.store.writer import Writer
from payorch.cli import cli, main
from payorch.report import EXPORT_COMPLAINTS, EXPORT_VIOLATIONS
from tests.ingest.api.test_app import ACME, JSON, body_of, call
from tests.ingest.store.test_durable_api import pay, running
from tests.ingest.store.test_writer import FIRST_RELEASE


def export(*args: str) -> Result:
    return CliRunner().invoke(cli, ["export", *args])


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    """A data folder left by a service: one split payment, one refused request (a violation),
    complaints received on two dates."""
    folder = tmp_path / "data"
    async with running(folder) as app:
        assert (await pay(app)).status == 200
        assert (await pay(app, body=b'{"amount": "lots"}')).status == 422
        for number, received in ((1, "2025-03-09T23:59:59Z"), (2, "2025-03-10T00:00:00Z")):
            complaint = {"complaint_id": f"cmp_{number}", "category": "timeout", "received_at": received}
            filed = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(orjson.dumps(complaint)))
            assert filed.status == 201
    return folder


def test_export_writes_each_input_partitioned_by_utc_date(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = export("--out", str(out), "--data", str(data))

    assert done.exit_code == 0, done.output
    today = datetime.now(UTC).date().isoformat()
    with duckdb.connect(str(data / FILE_NAME), read_only=True) as connection:
        stored = {
            name: connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]  # noqa: S608 - constant names
            for name in ("events", "violations", "complaints")
        }
    assert stored["events"] > 0
    assert stored["violations"] == 1
    assert done.stdout == (
        f"payorch export: wrote {stored['events']} events, 1 violations, 2 complaints to {out}\n"
    )
    assert sorted(path.name for path in (out / "complaints").iterdir()) == [
        "date=2025-03-09",
        "date=2025-03-10",
    ]
    assert [path.name for path in (out / "events").iterdir()] == [f"date={today}"]
    assert list((out / "events" / f"date={today}").glob("*.parquet"))

    for source in (EVENTS, VIOLATIONS, COMPLAINTS):
        table = pq.read_table(out / source.name)
        assert table.num_rows == stored[source.name]
        assert table.schema.names == [*source.schema.names, "date"]
        assert table.schema.field(source.time).type == source.schema.field(source.time).type
    complaints = pq.read_table(out / "complaints").sort_by("complaint_id").to_pylist()
    assert [(row["complaint_id"], row["date"]) for row in complaints] == [
        ("cmp_1", "2025-03-09"),
        ("cmp_2", "2025-03-10"),
    ]
    assert complaints[0]["received_at"] == datetime(2025, 3, 9, 23, 59, 59, tzinfo=UTC)


def test_an_export_whose_summary_finds_no_reader_is_kept_whole_and_ends_as_cat_ends(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``payorch export ... | head -0`` ended with exit 1, as an export that could not be written,
    # where the export was whole and only its summary line went unread.
    out = tmp_path / "export"
    reader, writer = os.pipe()
    os.close(reader)
    with open(writer, "w", encoding="utf-8") as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        with pytest.raises(SystemExit) as exited:
            main(["export", "--out", str(out), "--data", str(data)])
        closed_pipe.write("what was left\n")
        closed_pipe.flush()  # stdout's way out: it no longer fails

    assert (exited.value.code, capsys.readouterr().err) == (141, "")  # 128 + SIGPIPE, as cat's
    assert pq.read_table(out / "complaints").num_rows == 2


async def test_the_export_has_each_declined_cards_reason(tmp_path: Path) -> None:
    stolen = b'{"amount": 1250, "method": "card", "metadata": {"card_number": "4000000000009979"}}'
    async with running(tmp_path / "data") as app:
        steps: list[dict[str, object]] = (await pay(app, body=stolen)).json()["step_results"]  # type: ignore[assignment]
    assert steps[0]["decline_code"] == "stolen_card"
    out = tmp_path / "export"

    assert export("--out", str(out), "--data", str(tmp_path / "data")).exit_code == 0
    events = pq.read_table(out / "events").to_pylist()
    assert [(row["event_type"], row["decline_code"]) for row in events if row["decline_code"]] == [
        ("StepFailed", "stolen_card")
    ]


def test_the_export_says_what_each_amount_is_in_by_which_method_and_how_each_payment_ended(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0

    events = pl.read_parquet(out / "events", hive_partitioning=True)
    charged = events.filter(pl.col("event_type") == "StepSucceeded")
    assert charged.select("currency", "method", "amount_cents").sort("method").rows() == [
        ("USD", "apple_pay", 6000),
        ("USD", "card", 4000),
    ]
    assert events.filter(pl.col("status").is_not_null()).select(
        "event_type", "accepted", "status"
    ).rows() == [
        ("PaymentCompleted", None, "succeeded"),
        ("PaymentReceived", False, "rejected"),
    ]
    assert events.filter(pl.col("event_type") == "PlanBuilt").select("amount_cents", "currency").rows() == [
        (10_000, "USD")
    ]


def test_a_database_of_the_version_before_the_payments_terms_is_exported_without_them(
    data: Path, tmp_path: Path
) -> None:
    with duckdb.connect(str(data / FILE_NAME)) as connection:  # as version 7 left it
        for column in ("currency", "method", "status", "attempt", "latency_ms"):
            connection.execute(f"ALTER TABLE events DROP COLUMN {column}")
        connection.execute("DELETE FROM schema_migrations WHERE version >= 8")
    out = tmp_path / "export"

    done = export("--out", str(out), "--data", str(data))

    assert done.exit_code == 0, done.output
    events = pq.read_table(out / "events")
    assert events.schema.names == [*EVENTS.schema.names, "date"]
    for column in ("currency", "method", "status", "attempt", "latency_ms"):
        assert set(events.column(column).to_pylist()) == {None}
    assert set(events.column("accepted").to_pylist()) == {True, False, None}


def test_the_export_says_what_each_ended_payment_charged_and_a_version_8_database_is_exported_without_it(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    events = pl.read_parquet(out / "events", hive_partitioning=True)
    charged = events.filter(pl.col("charged_cents").is_not_null())
    assert charged.select("event_type", "amount_cents", "charged_cents").rows() == [
        ("PaymentCompleted", 10_000, 10_000)
    ]

    with duckdb.connect(str(data / FILE_NAME)) as connection:  # as version 8 left it
        connection.execute("ALTER TABLE events DROP COLUMN charged_cents")
        connection.execute("DELETE FROM schema_migrations WHERE version >= 9")
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    events = pl.read_parquet(out / "events", hive_partitioning=True)
    assert events.columns == [*EVENTS.schema.names, "date"]
    assert events["charged_cents"].null_count() == events.height
    assert events["currency"].null_count() < events.height


def test_exporting_again_replaces_the_export(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    first = export("--out", str(out), "--data", str(data))
    again = export("--out", str(out), "--data", str(data))

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stdout == first.stdout
    assert pq.read_table(out / "complaints").num_rows == 2


def test_an_export_is_its_owners_only_and_an_existing_folder_is_left(data: Path, tmp_path: Path) -> None:
    # Under a usual umask (022) every local user could read the exported payments (0644 files).
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    previous = os.umask(0o022)
    try:
        done = [export("--out", str(out), "--data", str(data)) for out in (tmp_path / "a" / "export", shared)]
    finally:
        os.umask(previous)
    assert [result.exit_code for result in done] == [0, 0]
    written = [tmp_path / "a", *(tmp_path / "a").rglob("*"), *shared.rglob("*")]
    assert any(path.suffix == ".parquet" for path in written)
    opened = {str(path): f"{stat.S_IMODE(path.stat().st_mode):04o}" for path in written}
    assert {path: mode for path, mode in opened.items() if int(mode, 8) & 0o077} == {}
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755


def test_a_linked_folder_is_refused_and_what_it_links_to_kept(data: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    out = tmp_path / "export"
    out.mkdir()
    (out / "events").symlink_to(elsewhere, target_is_directory=True)

    done = export("--out", str(out), "--data", str(data))

    assert done.exit_code == 1
    assert done.stderr == (
        f"payorch export: {out / 'events'} is a link: the export replaces that folder and follows no link\n"
    )
    assert [path.name for path in elsewhere.iterdir()] == ["precious.txt"]
    assert sorted(path.name for path in out.iterdir()) == ["events"]  # nothing written


def test_a_folder_holding_more_than_an_export_is_refused_and_kept(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    day = next((out / "violations").iterdir())
    (day / "notes.txt").write_text("mine")

    done = export("--out", str(out), "--data", str(data))

    assert done.exit_code == 1
    assert done.stderr == (
        f"payorch export: {out / 'violations'} holds 'notes.txt', which is not an earlier export's; "
        "the export replaces that folder: move it away or choose another --out\n"
    )
    assert (day / "notes.txt").read_text() == "mine"
    assert pq.read_table(next(day.glob("*.parquet"))).num_rows == 1  # the earlier export is kept


def test_exporting_again_leaves_no_date_of_the_earlier_export(
    data: Path, empty: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    assert export("--out", str(out), "--data", str(empty)).exit_code == 0

    assert [path.name for path in (out / "complaints").iterdir()] == ["data_0.parquet"]
    assert sorted(path.name for path in out.iterdir()) == EXPORTED


def test_an_export_that_fails_half_way_leaves_the_earlier_one_whole(
    data: Path, empty: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    before = {source.name: pq.read_table(out / source.name).num_rows for source in (EVENTS, COMPLAINTS)}
    copy = export_module._copy

    def copy_then_fail(connection: duckdb.DuckDBPyConnection, source: Input, *rest: object) -> int:
        written = copy(connection, source, *rest)  # type: ignore[arg-type]
        if source.name == "complaints":
            raise duckdb.IOException("No space left on device")
        return written

    monkeypatch.setattr(export_module, "_copy", copy_then_fail)
    done = export("--out", str(out), "--data", str(empty))

    assert done.exit_code == 1
    assert "No space left on device" in done.stderr
    # Every input is the earlier export's: the events were the new (empty) export's, beside the
    # earlier export's complaints, a mix no reader could tell from an export.
    assert {name: pq.read_table(out / name).num_rows for name in before} == before
    assert before["complaints"] == 2
    assert sorted(path.name for path in out.iterdir()) == EXPORTED
    assert generations(out) == 1  # nothing of the failed one left


#: How a Ctrl-C reaches the export: Python's handler raises KeyboardInterrupt between two
#: bytecodes; one that arrives while DuckDB runs a query makes DuckDB raise this RuntimeError.
INTERRUPTIONS = [KeyboardInterrupt(), RuntimeError(export_module.QUERY_INTERRUPTED)]


def interrupted_message(out: Path) -> str:
    return (
        f"payorch export: interrupted before it was done: {out} holds nothing half written, and its "
        "events, violations, complaints are one export's whole (the earlier one, or this one if it was "
        "stopped as it ended): export again\n"
    )


#: What an export folder holds: the inputs and the manifest (links into the generation published) and
#: the generations.
EXPORTED = [".payorch-export", "_payorch_export.json", "complaints", "events", "violations"]


def generations(out: Path) -> int:
    """How many generations ``out`` holds (the ``current`` link aside); each is an export whole."""
    return len([path for path in (out / ".payorch-export").iterdir() if path.name != "current"])


@pytest.mark.parametrize("interruption", INTERRUPTIONS, ids=["python", "duckdb"])
def test_an_export_interrupted_half_way_says_so_and_leaves_each_input_whole(
    interruption: BaseException, data: Path, empty: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    copy = export_module._copy

    def copy_then_interrupted(connection: duckdb.DuckDBPyConnection, source: Input, *rest: object) -> int:
        written = copy(connection, source, *rest)  # type: ignore[arg-type]
        if source.name == "violations":
            raise interruption
        return written

    monkeypatch.setattr(export_module, "_copy", copy_then_interrupted)
    done = export("--out", str(out), "--data", str(empty))

    assert (done.exit_code, done.stderr) == (1, interrupted_message(out))
    assert sorted(path.name for path in out.iterdir()) == EXPORTED
    assert pq.read_table(out / "events").num_rows > 0  # the earlier export's, as the others
    assert pq.read_table(out / "violations").num_rows == 1
    assert generations(out) == 1


def test_an_export_interrupted_as_it_publishes_leaves_the_earlier_one_whole(
    data: Path, empty: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0
    replace = Path.replace

    def publishing_interrupted(path: Path, target: Path) -> Path:
        if target.name == "current":  # the new generation is written whole by now
            raise KeyboardInterrupt
        return replace(path, target)

    monkeypatch.setattr(Path, "replace", publishing_interrupted)
    done = export("--out", str(out), "--data", str(empty))

    assert (done.exit_code, done.stderr) == (1, interrupted_message(out))
    assert sorted(path.name for path in out.iterdir()) == EXPORTED
    assert pq.read_table(out / "complaints").num_rows == 2
    assert pq.read_table(out / "events").num_rows > 0
    assert generations(out) == 1  # the one written, not published, is gone


#: ``payorch export`` in a process of its own that is sent a signal (its number the first argument)
#: once it has written the violations beside their folder, before it swaps them in.
TERMINATED_HALF_WAY = """
import os, signal, sys
from ingest.store import export
copy = export._copy
def copy_then_terminated(connection, source, *rest):
    written = copy(connection, source, *rest)
    if source.name == "violations":
        os.kill(os.getpid(), int(sys.argv[1]))
    return written
export._copy = copy_then_terminated
from payorch.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_an_export_as_ctrl_c_does(
    data: Path, empty: Path, tmp_path: Path, number: signal.Signals
) -> None:
    """SIGTERM (a container stopped) or SIGHUP (the SSH session that ran it dropped) killed the
    export without a word, its partial generation left until the next export."""
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(data)).exit_code == 0

    command = ["export", "--out", str(out), "--data", str(empty)]
    done = subprocess.run(
        [sys.executable, "-c", TERMINATED_HALF_WAY, str(int(number)), *command],
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stderr) == (1, interrupted_message(out))
    assert sorted(path.name for path in out.iterdir()) == EXPORTED
    assert pq.read_table(out / "violations").num_rows == 1  # the earlier export's, whole
    assert generations(out) == 1


#: ``payorch export`` in a process of its own that stops once it has written the events beside
#: their folder, says so, and goes on when its stdin is closed.
PAUSED_HALF_WAY = """
import sys
from ingest.store import export
copy = export._copy
def copy_then_wait(connection, source, *rest):
    written = copy(connection, source, *rest)
    if source.name == "events":
        print("written", flush=True)
        sys.stdin.read()
    return written
export._copy = copy_then_wait
from payorch.cli import main
main(sys.argv[1:])
"""


def test_a_second_export_into_the_same_folder_is_refused_while_the_first_runs(
    data: Path, empty: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_HALF_WAY, "export", "--out", str(out), "--data", str(data)],
        cwd=Path(__file__).parents[3],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None
    assert first.stdout.readline() == "written\n"

    second = export("--out", str(out), "--data", str(empty))
    first_out, first_err = first.communicate(timeout=60)

    assert (second.exit_code, second.stderr) == (
        1,
        f"payorch export: another payorch export is writing to {out}: wait for it to end\n",
    )
    assert (first.returncode, first_err) == (0, "")
    assert first_out.startswith("payorch export: wrote ")
    assert pq.read_table(out / "events").num_rows > 0  # the first export's, whole
    assert pq.read_table(out / "complaints").num_rows == 2


def test_a_folder_on_a_file_system_without_locks_is_exported_all_the_same(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))  # as some FUSE mounts answer

    monkeypatch.setattr(fcntl, "flock", no_locks)
    done = export("--out", str(tmp_path / "export"), "--data", str(data))

    assert (done.exit_code, done.stderr) == (0, "")
    assert pq.read_table(tmp_path / "export" / "complaints").num_rows == 2


@pytest.fixture
async def empty(tmp_path: Path) -> Path:
    """A data folder left by a service that was sent nothing."""
    folder = tmp_path / "empty"
    async with running(folder):
        pass
    return folder


def test_an_input_without_rows_still_reads_as_a_table(empty: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = export("--out", str(out), "--data", str(empty))

    assert done.exit_code == 0, done.output
    assert done.stdout == f"payorch export: wrote 0 events, 0 violations, 0 complaints to {out}\n"
    for source in (EVENTS, VIOLATIONS, COMPLAINTS):
        scanned = pl.scan_parquet(out / source.name, hive_partitioning=True).collect()
        assert (scanned.height, scanned.columns) == (0, [*source.schema.names, "date"])
        pattern = str(out / source.name / "**" / "*.parquet")
        with duckdb.connect() as connection:
            counted = connection.execute(
                "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)", [pattern]
            ).fetchall()
        assert counted == [(0,)]


def test_rows_exported_over_an_empty_export_replace_it(empty: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert export("--out", str(out), "--data", str(empty)).exit_code == 0
    assert export("--out", str(out), "--data", str(data)).exit_code == 0

    complaints = pl.scan_parquet(out / "complaints", hive_partitioning=True).collect()
    assert sorted(complaints["complaint_id"]) == ["cmp_1", "cmp_2"]
    assert not (out / "complaints" / "data_0.parquet").exists()


def test_folders_named_tilde_are_those_of_the_current_folder_not_home(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    shutil.copytree(data, here / "~")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)

    done = export("--out", "~/export", "--data", "~")

    assert (done.exit_code, done.stderr) == (0, "")
    assert pq.read_table(here / "~" / "export" / "complaints").num_rows == 2
    assert list(home.iterdir()) == []  # DuckDB took a leading ~ for the home folder


def test_a_missing_database_is_a_one_line_error(tmp_path: Path) -> None:
    done = export("--out", str(tmp_path / "export"), "--data", str(tmp_path / "nowhere"))

    assert done.exit_code == 1  # the work failed; bad arguments are 2
    assert done.stderr == (
        f"payorch export: no database at {tmp_path / 'nowhere' / FILE_NAME}: "
        "pass --data with the folder `payorch serve` uses\n"
    )
    assert not (tmp_path / "export").exists()


def from_a_newer_payorch(data: Path) -> Path:
    """``data`` as a payorch of a later schema version would leave it."""
    with duckdb.connect(str(data / FILE_NAME)) as connection:
        connection.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from a later payorch', ?)",
            [CURRENT_VERSION + 1, datetime.now(UTC)],
        )
    return data


def not_payorchs(folder: Path) -> Path:
    """``folder`` holding a DuckDB file made by something else, without payorch's tables."""
    folder.mkdir()
    with duckdb.connect(str(folder / FILE_NAME)) as connection:
        connection.execute("CREATE TABLE notes (note VARCHAR)")
    return folder


def test_a_database_of_the_version_before_decline_codes_is_exported_without_being_migrated(
    data: Path, tmp_path: Path
) -> None:
    with duckdb.connect(str(data / FILE_NAME)) as connection:  # as version 3 left it
        connection.execute("ALTER TABLE events DROP COLUMN decline_code")
        connection.execute("DROP TABLE recovery_marks")  # migration 5
        connection.execute("DELETE FROM schema_migrations WHERE version >= 4")
        stored = connection.execute("SELECT count(*) FROM events").fetchone()
    out = tmp_path / "export"

    done = export("--out", str(out), "--data", str(data))

    assert done.exit_code == 0, done.output
    events = pq.read_table(out / "events")
    assert (events.num_rows,) == stored
    assert events.schema.names == [*EVENTS.schema.names, "date"]
    assert set(events.column("decline_code").to_pylist()) == {None}
    with duckdb.connect(str(data / FILE_NAME), read_only=True) as connection:
        assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone() == (3,)


def test_a_database_of_the_first_releases_is_exported_with_each_requests_acceptance(tmp_path: Path) -> None:
    # Its events keep their JSON where `accepted` now stands: the export failed with DuckDB's
    # 'Binder Error: Referenced column "accepted" not found in FROM clause!'.
    data = tmp_path / "data"
    data.mkdir()
    with duckdb.connect(str(data / FILE_NAME)) as connection:
        for statement in FIRST_RELEASE:
            connection.execute(statement)
        connection.execute(
            next(s for s in MIGRATIONS[0].statements if s.startswith("CREATE TABLE violations"))
        )
        connection.execute(
            "INSERT INTO events VALUES "
            "(1, 'pay_1', 'req_1', 'm_acme', 'PaymentReceived', TIMESTAMPTZ '2025-03-09 10:00:00+00', NULL, "
            """NULL, 1250, NULL, '{"type": "PaymentReceived", "accepted": true}', 'envelope 1'), """
            "(2, 'pay_2', 'req_2', 'm_acme', 'PaymentReceived', TIMESTAMPTZ '2025-03-10 10:00:00+00', NULL, "
            """NULL, NULL, NULL, '{"type": "PaymentReceived", "accepted": false}', 'envelope 2'), """
            "(3, 'pay_1', 'req_1', 'm_acme', 'StepFailed', TIMESTAMPTZ '2025-03-09 10:00:01+00', 0, "
            """'stripe_sim', NULL, 'declined', '{"type": "StepFailed"}', 'envelope 3')"""
        )
    out = tmp_path / "export"

    done = export("--out", str(out), "--data", str(data))

    assert done.exit_code == 0, done.output
    events = pq.read_table(out / "events")
    assert events.schema.names == [*EVENTS.schema.names, "date"]
    columns = [events.column(name).to_pylist() for name in ("seq", "accepted", "charged_cents")]
    rows = sorted(zip(*columns, strict=True))
    assert rows == [(1, True, None), (2, False, None), (3, None, None)]
    with duckdb.connect(str(data / FILE_NAME), read_only=True) as connection:  # not migrated
        assert "document" in [row[0] for row in connection.execute("DESCRIBE events").fetchall()]


def test_a_database_of_a_newer_schema_is_refused_not_misread(data: Path, tmp_path: Path) -> None:
    done = export("--out", str(tmp_path / "export"), "--data", str(from_a_newer_payorch(data)))

    assert done.exit_code == 1
    assert done.stderr == (
        f"payorch export: cannot read {data / FILE_NAME}: the database has schema version "
        f"{CURRENT_VERSION + 1}, newer than this payorch knows ({CURRENT_VERSION}); use a newer payorch\n"
    )
    assert not (tmp_path / "export").exists()


def test_a_database_that_is_not_payorchs_is_refused(tmp_path: Path) -> None:
    folder = not_payorchs(tmp_path / "other")
    done = export("--out", str(tmp_path / "export"), "--data", str(folder))

    assert done.exit_code == 1
    assert done.stderr == (
        f"payorch export: cannot read {folder / FILE_NAME}: "
        "it is not a payorch database (it has no schema_migrations table)\n"
    )
    assert not (tmp_path / "export").exists()


#: Holds the file named by its argument open until its stdin closes; read-only with a second one.
HOLDER = (
    "import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=len(sys.argv) > 2); "
    "print('open', flush=True); sys.stdin.read()"
)


@pytest.fixture
def held(data: Path) -> Iterator[Path]:
    """``data``'s database held open for writing by another process, as ``payorch serve`` does."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(data / FILE_NAME),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "open\n"
    yield data
    holder.communicate(timeout=30)  # closes its stdin: it lets go and ends


def test_a_database_held_by_a_server_is_a_one_line_error(held: Path, tmp_path: Path) -> None:
    done = export("--out", str(tmp_path / "export"), "--data", str(held))

    assert done.exit_code == 1  # the work failed; bad arguments are 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"payorch export: {held / FILE_NAME} is held by a running payorch serve")
    assert "stop it" in done.stderr
    assert "Traceback" not in done.output


def test_a_service_started_while_an_export_reads_says_what_holds_the_database(data: Path) -> None:
    path = data / FILE_NAME
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "read-only"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline() == "open\n"

    with pytest.raises(IngestError) as refused:
        Writer(path)
    reader.communicate(timeout=30)

    assert str(refused.value) == (
        f"cannot open the database {path}: another process has it open (PID {reader.pid}): a payorch "
        "export or payorch report --data reading it, or another payorch serve; wait for it to end, "
        "or stop it"
    )


def test_a_reader_sees_one_export_whole_while_another_replaces_it(
    data: Path, empty: Path, tmp_path: Path
) -> None:
    # A report read the violations of one export and the complaints of the next, or found a
    # folder gone (moved aside for the swap, then deleted) half way through its scan.
    out = tmp_path / "export"
    export_module.export_parquet(data, out)
    window = ReportWindow(datetime(2025, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))
    seen: list[tuple[int, int] | str] = []
    exporting = threading.Event()

    def read() -> None:
        while exporting.is_set() or not seen:
            try:
                frames = report_frames(
                    out, window, violations=EXPORT_VIOLATIONS, complaints=EXPORT_COMPLAINTS
                )
            except UnreadableExportError as error:
                seen.append(str(error))
            else:
                seen.append((frames.violations.height, frames.complaints.height))

    exporting.set()
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(8):
            export_module.export_parquet(empty, out)
            export_module.export_parquet(data, out)
    finally:
        exporting.clear()
        reader.join()

    assert set(seen) <= {(1, 2), (0, 0)}, [read for read in seen if read not in {(1, 2), (0, 0)}][:3]


def test_the_globs_the_readme_gives_see_each_row_of_an_input_once(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    for _ in range(2):  # the replaced export stays beside the current one
        export_module.export_parquet(data, out)
    exported = manifest_rows(out)

    for name, rows in exported.items():
        glob = str(out / name / "**" / "*.parquet")
        polars = pl.scan_parquet(glob, hive_partitioning=True).select(pl.len()).collect().item()
        with duckdb.connect() as connection:
            found = connection.execute(
                "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)", [glob]
            ).fetchall()
        assert (name, polars, found[0][0]) == (name, rows, rows)


def manifest_rows(out: Path) -> dict[str, int]:
    manifest = orjson.loads((out / "_payorch_export.json").read_bytes())
    return {name: int(counted["rows"]) for name, counted in manifest["inputs"].items()}


def test_exporting_again_keeps_the_export_it_replaced_and_removes_older_ones(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    export_module.export_parquet(data, out)
    first = (out / ".payorch-export" / "current").resolve()
    export_module.export_parquet(data, out)
    # A reader that pinned the first (read through the link's target) still finds it whole.
    assert pq.read_table(first / "complaints").num_rows == 2
    export_module.export_parquet(data, out)

    assert not first.exists()
    assert generations(out) == 2


def test_a_generation_a_reader_holds_is_not_removed(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_module.export_parquet(data, out)
    held = (out / ".payorch-export" / "current").resolve()
    descriptor = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)  # as the report holds the one it reads
        for _ in range(3):
            export_module.export_parquet(data, out)
        assert pq.read_table(held / "complaints").num_rows == 2
    finally:
        os.close(descriptor)
    export_module.export_parquet(data, out)

    assert not held.exists()


def test_an_export_of_an_earlier_payorch_is_replaced_by_the_links(data: Path, tmp_path: Path) -> None:
    out, earlier = tmp_path / "export", tmp_path / "earlier"
    export_module.export_parquet(data, earlier)
    out.mkdir()
    for name in ("events", "violations", "complaints"):  # real folders, as payorch wrote them before
        shutil.copytree(earlier / name, out / name)

    export_module.export_parquet(data, out)

    assert sorted(path.name for path in out.iterdir()) == EXPORTED
    assert all((out / name).is_symlink() for name in ("events", "violations", "complaints"))
    assert pq.read_table(out / "complaints").num_rows == 2
    assert generations(out) == 1


def test_a_manifest_that_is_not_an_exports_is_refused_and_kept(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "_payorch_export.json").write_text("mine")

    done = export("--out", str(out), "--data", str(data))

    assert (done.exit_code, done.stderr) == (
        1,
        f"payorch export: {out / '_payorch_export.json'} is not an earlier export's link to its manifest; "
        "the export replaces it: move it away or choose another --out\n",
    )
    assert (out / "_payorch_export.json").read_text() == "mine"
