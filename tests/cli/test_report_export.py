"""``payorch report --export DIR``: the retrospective of a folder ``payorch export`` wrote is the
retrospective of the database it was made from, for any window; an export that is missing,
damaged, of another schema, or no export at all is one line (exit 1), never a traceback."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pytest
from click.testing import CliRunner, Result

from analytics.export_source import report_frames
from engine.monitor import ReportWindow
from ingest.store import reads
from ingest.store.schema import CURRENT_VERSION, FILE_NAME
from payorch.cli import cli, main
from payorch.report import EXPORT_COMPLAINTS, EXPORT_VIOLATIONS
from tests.ingest.api.test_app import ACME, GLOBEX, JSON, body_of, call
from tests.ingest.store.test_durable_api import pay, running
from tests.ingest.store.test_report_api import CORRECTED

ALL_TIME = ReportWindow(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
DECLINED = b'{"amount": 1250, "method": "card", "metadata": {"card_number": "4000000000000002"}}'
REFUSED = b'{"amount": "lots"}'


def report(*args: str) -> Result:
    return CliRunner().invoke(cli, ["report", *args], env={"PAYORCH_API_KEY": ""})


def export(data: Path, out: Path) -> Path:
    done = CliRunner().invoke(cli, ["export", "--data", str(data), "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


def document(done: Result) -> dict[str, Any]:
    """A JSON report printed by ``done``, without the moment it was made."""
    assert done.exit_code == 0, done.output
    assert done.stderr == ""
    made: dict[str, Any] = json.loads(done.stdout)
    return {**made, "generated_at": None}


@dataclass(frozen=True)
class Cell:
    """A data folder filled by real payments and complaints, spread over three UTC dates, and the
    export made from it."""

    data: Path
    export: Path
    #: When each violation was recorded, oldest first.
    recorded: list[datetime]


async def complain(app: object, key: tuple[bytes, bytes], **fields: str) -> None:
    filed = await call(app, "POST", "/v1/complaints", [key, JSON], body_of(orjson.dumps(fields)))
    assert filed.status == 201, filed.body


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Cell:
    """A :class:`Cell` the tests only read (made once: a service and its payments take a second)."""
    return asyncio.run(fill_cell(tmp_path_factory.mktemp("cell")))


async def fill_cell(tmp_path: Path) -> Cell:
    """Both merchants' payments, corrected, refused, declined and clean, and complaints of each way
    of mapping (explicit, by payment, by request, by category, unmapped). The service records
    everything now; the rows are then moved back zero, one or two days (by their order), as a cell
    running for three days would have left them, so that the export holds several dates."""
    data = tmp_path / "data"
    async with running(data) as app:
        corrected = [await pay(app, body=CORRECTED) for _ in range(3)]
        declined = await pay(app, body=DECLINED)
        assert [answer.status for answer in (*corrected, declined)] == [200] * 4
        refused = [
            await call(app, "POST", "/v1/payments", [key, JSON], body_of(REFUSED)) for key in (ACME, GLOBEX)
        ]
        assert [answer.status for answer in refused] == [422, 422]
        assert (await pay(app)).status == 200
        await complain(
            app,
            ACME,
            complaint_id="c_pay",
            category="mystery",
            payment_id=str(corrected[0].json()["payment_id"]),
        )
        await complain(
            app, ACME, complaint_id="c_req", category="mystery", request_id=declined.headers["request-id"]
        )
        # The same violation named twice over: by its payment and its request, and by two complaints.
        for number in (1, 2):
            await complain(
                app,
                ACME,
                complaint_id=f"c_both_{number}",
                category="mystery",
                payment_id=str(corrected[2].json()["payment_id"]),
                request_id=corrected[2].headers["request-id"],
            )
        await complain(app, ACME, complaint_id="c_cat", category="Timeout")
        await complain(app, ACME, complaint_id="c_own", category="mystery", contract_id="plan/coverage")
        await complain(app, ACME, complaint_id="c_none", category="mystery")
        await complain(app, GLOBEX, complaint_id="c_globex", category="double_charge")
        await complain(
            app,
            GLOBEX,
            complaint_id="c_refused",
            category="mystery",
            request_id=refused[1].headers["request-id"],
        )
    with duckdb.connect(str(data / FILE_NAME)) as connection:
        connection.execute("UPDATE violations SET ts = ts - to_days(CAST(seq % 3 AS INTEGER))")
        connection.execute(
            "UPDATE complaints SET received_at = received_at - to_days(CAST(n % 3 AS INTEGER)) FROM "
            "(SELECT complaint_id AS id, row_number() OVER (ORDER BY complaint_id) AS n FROM complaints) "
            "WHERE complaint_id = id"
        )
        recorded = [row[0] for row in connection.execute("SELECT ts FROM violations ORDER BY ts").fetchall()]
    return Cell(data, export(data, tmp_path / "export"), recorded)


def windows(recorded: list[datetime]) -> dict[str, ReportWindow]:
    """Windows over ``recorded``, each by what it checks."""
    middle = datetime.combine(recorded[len(recorded) // 2].astimezone(UTC).date(), time(), UTC)
    return {
        "all time": ALL_TIME,
        # From a violation's own microsecond (counted) to another's (not): several dates, cut mid-day.
        "several dates, bounds on violations": ReportWindow(recorded[1], recorded[-1]),
        "one whole date": ReportWindow(middle, middle + timedelta(days=1)),
        "nothing in it": ReportWindow(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 15, tzinfo=UTC)),
    }


def bounds(window: ReportWindow) -> tuple[str, ...]:
    return ("--from", window.start.isoformat(), "--to", window.end.isoformat())


def test_the_report_of_an_export_is_the_report_of_its_database(cell: Cell) -> None:
    dates = sorted(path.name for path in (cell.export / "violations").iterdir())
    assert len(dates) == 3, dates

    reports = {}
    for name, window in windows(cell.recorded).items():
        from_database = document(report("--data", str(cell.data), *bounds(window), "--format", "json"))
        from_export = document(report("--export", str(cell.export), *bounds(window), "--format", "json"))
        assert from_export == from_database, name
        reports[name] = from_export

    # The windows cut different figures out of the same rows.
    whole, cut = reports["all time"], reports["several dates, bounds on violations"]
    assert sum(row["count"] for row in whole["violations"]) == len(cell.recorded)
    assert sum(row["count"] for row in cut["violations"]) == len(cell.recorded) - 2
    assert whole["complaints"] == {"received": 9, "unmapped": 1}
    assert {row["id"] for row in whole["violations"]} > {"api/validation", "plan/coverage"}
    assert reports["nothing in it"]["violations"] == []


def test_the_tables_read_from_an_export_are_the_databases_row_for_row(cell: Cell) -> None:
    """The report's three tables, not only its figures: the violations its complaints name too,
    whose extra rows would not change a figure."""
    for name, window in windows(cell.recorded).items():
        with duckdb.connect(str(cell.data / FILE_NAME), read_only=True) as connection:
            stored = reads.report_tables(connection, reads.Window(window.start, window.end))
        read = report_frames(cell.export, window, violations=EXPORT_VIOLATIONS, complaints=EXPORT_COMPLAINTS)
        for frame, table in (
            (read.violations, stored.violations),
            (read.complaints, stored.complaints),
            (read.named_violations, stored.named_violations),
        ):
            expected = pl.from_arrow(table)
            assert isinstance(expected, pl.DataFrame)
            assert frame.equals(expected), name


async def test_an_export_holding_no_rows_reports_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running(data):
        pass  # a service sent nothing
    out = export(data, tmp_path / "export")
    assert sorted(path.name for path in (out / "violations").iterdir()) == ["data_0.parquet"]
    window = (*bounds(ALL_TIME), "--format", "json")

    from_export = document(report("--export", str(out), *window))

    assert from_export == document(report("--data", str(data), *window))
    assert from_export["violations"] == []
    assert from_export["complaints"] == {"received": 0, "unmapped": 0}


async def fill_small(tmp_path: Path) -> Path:
    """An export of one corrected payment (one violation) and a complaint about it, beside its data
    folder."""
    data = tmp_path / "data"
    async with running(data) as app:
        paid = await pay(app, body=CORRECTED)
        await complain(
            app, ACME, complaint_id="c_1", category="timeout", payment_id=str(paid.json()["payment_id"])
        )
    return export(data, tmp_path / "export")


@pytest.fixture(scope="module")
def small_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return asyncio.run(fill_small(tmp_path_factory.mktemp("small")))


@pytest.fixture
def small(small_once: Path, tmp_path: Path) -> Path:
    """A copy of :func:`fill_small`'s export (and its data folder) for one test to damage."""
    shutil.copytree(small_once.parent, tmp_path / "small")
    return tmp_path / "small" / small_once.name


def one_line_failure(*args: str) -> str:
    """What ``payorch report ARGS`` says on stderr, checked to be one line (exit 1)."""
    done = report(*args)
    assert done.exit_code == 1, done.output
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("payorch report: ")
    return done.stderr.removeprefix("payorch report: ").rstrip("\n")


def rewrite(path: Path, change: Any) -> None:
    """``path``'s Parquet rewritten by ``change`` (a frame to a frame), as another tool would."""
    change(pl.read_parquet(path)).write_parquet(path)


def flipped(data: bytes, start: int, end: int) -> bytes:
    return data[:start] + bytes(byte ^ 0xFF for byte in data[start:end]) + data[end:]


DAMAGES: dict[str, tuple[Any, str]] = {
    "cut short": (
        lambda path: path.write_bytes(path.read_bytes()[:100]),
        "{file} is damaged (parquet: File out of specification: The file must end with PAR1 or PARE): "
        "export again, or copy the export again",
    ),
    # Polars alone takes an empty file among others for one of no rows: its rows would be lost.
    "no bytes": (
        lambda path: path.write_bytes(b""),
        "{file} is damaged (parquet: File out of specification: A Parquet file must contain a header and "
        "footer with at least 12 bytes): export again, or copy the export again",
    ),
    # The first column's page, behind a sound footer: only reading the rows finds it.
    "pages damaged": (
        lambda path: path.write_bytes(flipped(path.read_bytes(), 4, 40)),
        "{file} is damaged (parquet: File out of specification: Invalid thrift: bad data): "
        "export again, or copy the export again",
    ),
    "a column less": (
        lambda path: rewrite(path, lambda frame: frame.drop("owner")),
        "{file} is not of this payorch's export schema (no column 'owner'): an export of another payorch "
        "version? read it with that version, or export again",
    ),
    "a column more": (
        lambda path: rewrite(path, lambda frame: frame.with_columns(region=pl.lit("eu"))),
        "{file} is not of this payorch's export schema (a column 'region' it does not know): an export of "
        "another payorch version? read it with that version, or export again",
    ),
    "a column of another type": (
        lambda path: rewrite(path, lambda frame: frame.with_columns(pl.col("seq").cast(pl.String))),
        "{file} is not of this payorch's export schema (column 'seq' is String, not Int64): an export of "
        "another payorch version? read it with that version, or export again",
    ),
    "a file that is not an export's": (
        lambda path: path.with_name("notes.txt").write_text("mine", encoding="utf-8"),
        "{file.parent} holds 'notes.txt', which is not an export's (date=YYYY-MM-DD folders of Parquet "
        "files): move it away",
    ),
    "a folder that is not a date": (
        lambda path: path.parent.rename(path.parent.with_name("date=2026-02-30")),
        "{file.parent.parent} holds 'date=2026-02-30', which is not an export's (date=YYYY-MM-DD folders "
        "of Parquet files): move it away",
    ),
    "a date without its file": (
        lambda path: path.unlink(),
        "{file.parent} holds no Parquet file: an export's date folder holds one",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_export_or_one_of_another_schema_is_a_one_line_error(small: Path, damage: str) -> None:
    (file,) = (small / "violations").glob("date=*/*.parquet")
    change, expected = DAMAGES[damage]
    change(file)

    assert one_line_failure("--export", str(small), *bounds(ALL_TIME)) == expected.format(file=file)


def test_a_folder_that_is_not_an_export_is_a_one_line_error(small: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (small / "complaints").rename(tmp_path / "complaints")

    assert one_line_failure("--export", str(tmp_path / "nowhere")) == (
        f"no export at {tmp_path / 'nowhere'}: give the folder `payorch export --out` wrote"
    )
    assert one_line_failure("--export", str(tmp_path / "empty")) == (
        f"{tmp_path / 'empty'} is not a payorch export: it has no violations or complaints folder "
        "(`payorch export --out` writes events, violations and complaints)"
    )
    assert one_line_failure("--export", str(small)) == (
        f"{small} is not a payorch export: it has no complaints folder "
        "(`payorch export --out` writes events, violations and complaints)"
    )


def test_a_data_folder_and_an_export_each_name_the_option_that_reads_them(small: Path) -> None:
    data = small.parent / "data"

    assert one_line_failure("--export", str(data)) == (
        f"{data} is not a payorch export: it has no violations or complaints folder "
        f"(`payorch export --out` writes events, violations and complaints); it holds {FILE_NAME}: "
        f"read it with --data {data}"
    )
    assert one_line_failure("--data", str(small)) == (
        f"no database at {small / FILE_NAME}: {small} holds a payorch export: read it with --export {small}"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--export", "x", "--data", "data"), "give --data or --export, not both"),
        (
            ("--export", "x", "--api", "http://127.0.0.1:9", "--api-key", "k"),
            "give --api or --export, not both",
        ),
        (
            ("--export", "x", "--data", "data", "--api", "http://127.0.0.1:9"),
            "give --api or --data or --export, not all three",
        ),
        (
            ("--export", "x", "--api-key", "adm_x"),
            "--export reads the export and takes no --api-key (it is for --api)",
        ),
        (("--export", ""), "Invalid value for '--export': must not be empty (give . for the current folder)"),
    ],
)
def test_export_with_another_source_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", *args])

    assert exited.value.code == 2
    assert capsys.readouterr().err == f"payorch report: error: {expected}\n"


def test_a_folder_named_tilde_is_the_current_folders_not_home(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polars reads a leading ``~`` as the home folder: the files checked were ``./~/export``'s, and
    the rows scanned another export's (or none)."""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    shutil.copytree(small, here / "~" / "export")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)

    done = report("--export", "~/export", *bounds(ALL_TIME), "--format", "json")
    spelled_out = report("--export", str(here / "~" / "export"), *bounds(ALL_TIME), "--format", "json")

    read = document(done)
    assert sum(row["count"] for row in read["violations"]) == 1
    assert read == document(spelled_out)


def manifest_of(export_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((export_dir / "_payorch_export.json").read_bytes())
    return document


def test_an_export_says_what_wrote_it_of_which_version_and_which_rows(small_once: Path) -> None:
    small = small_once
    manifest = manifest_of(small)

    assert (small / "_payorch_export.json").is_symlink()  # the published generation's
    assert manifest["format"] == "payorch-export"
    assert manifest["export_version"] == 1
    assert manifest["payorch_version"] == importlib.metadata.version("payorch")
    assert manifest["database_version"] == CURRENT_VERSION
    assert datetime.fromisoformat(manifest["written_at"]) <= datetime.now(UTC)
    violations = pl.read_parquet(small / "violations", hive_partitioning=True)
    assert manifest["inputs"]["violations"]["rows"] == violations.height == 1
    recorded = violations["timestamp"][0].astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert manifest["inputs"]["violations"]["from"] == recorded
    assert manifest["inputs"]["complaints"]["rows"] == 1
    assert manifest["window"]["from"] <= recorded <= manifest["window"]["to"]


def test_an_export_of_a_newer_payorch_is_a_one_line_error_not_a_damaged_one(small: Path) -> None:
    manifest = manifest_of(small)
    manifest.update(export_version=2, payorch_version="9.0.0")
    # A newer version's columns: read as this version's, they looked like a damaged export.
    (file,) = (small / "violations").glob("date=*/*.parquet")
    rewrite(file, lambda frame: frame.with_columns(region=pl.lit("eu")))
    (small / "_payorch_export.json").write_bytes(orjson.dumps(manifest))

    assert one_line_failure("--export", str(small), *bounds(ALL_TIME)) == (
        f"{small} was written by payorch 9.0.0 (export version 2); this payorch reads export versions "
        "up to 1: read it with payorch 9.0.0 or later, or export it again with this one"
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not JSON: unexpected character, expected a string key: line 1 column 2 (char 1)"),
        (b"[]", "not a JSON object"),
        (b'{"format": "payorch-export"}', "no format 'payorch-export' with an integer export_version"),
        (b'{"format": "payorch-export", "export_version": 0}', "export_version 0"),
    ],
)
def test_a_damaged_manifest_is_a_one_line_error(small: Path, content: bytes, why: str) -> None:
    (small / "_payorch_export.json").write_bytes(content)

    assert one_line_failure("--export", str(small), *bounds(ALL_TIME)) == (
        f"{small / '_payorch_export.json'} is not a payorch export's manifest ({why}): "
        "export again, or copy the export again"
    )


def test_an_export_of_a_payorch_before_manifests_is_read_as_before(small: Path) -> None:
    (small / "_payorch_export.json").unlink()
    for found in (small / ".payorch-export").glob("*/_payorch_export.json"):
        found.unlink()

    read = document(report("--export", str(small), *bounds(ALL_TIME), "--format", "json"))

    assert sum(row["count"] for row in read["violations"]) == 1


@pytest.mark.parametrize(
    ("input_name", "damage"),
    [
        # A copy that stopped half way, or a tool that rewrote a file: fewer rows than exported.
        ("violations", lambda path: rewrite(path, lambda frame: frame.head(0))),
        # Another export's file copied in beside this one's.
        ("complaints", lambda path: shutil.copy(path, path.with_name("data_1.parquet"))),
    ],
)
def test_an_export_holding_other_rows_than_its_manifest_counts_is_a_one_line_error(
    small: Path, input_name: str, damage: Any
) -> None:
    # It was read as it was: a report of no violations, or of each complaint twice, without a word.
    (file,) = (small / input_name).glob("date=*/*.parquet")
    damage(file)
    found = pl.read_parquet(small / input_name).height

    assert one_line_failure("--export", str(small), *bounds(ALL_TIME)) == (
        f"{small / input_name} holds {found} rows where the export's manifest says 1: an export cut "
        "short or partly replaced by another's files; export again, or copy the export again"
    )


def test_a_manifest_without_its_inputs_rows_is_a_damaged_one(small: Path) -> None:
    manifest = manifest_of(small)
    del manifest["inputs"]["complaints"]["rows"]
    (small / "_payorch_export.json").write_bytes(orjson.dumps(manifest))

    assert one_line_failure("--export", str(small), *bounds(ALL_TIME)) == (
        f"{small / '_payorch_export.json'} is not a payorch export's manifest (no count of rows for "
        "complaints): export again, or copy the export again"
    )
