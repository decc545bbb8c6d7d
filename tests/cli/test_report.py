"""``payorch report`` from a data folder: the retrospective of a window, as JSON or YAML, with the
config's taxonomy and mismatch rule, the same as the service's endpoint says; and one-line errors
for what cannot be read or asked (``--api`` itself: ``test_report_service``)."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from engine.complaints import Complaint
from engine.types import MerchantId, RequestId
from ingest.api.parts import Parts
from ingest.config_file import parse_config, sample_config_text
from ingest.store.schema import CURRENT_VERSION, FILE_NAME
from payorch.cli import cli, main
from payorch.report import render_tables
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call
from tests.ingest.store.test_analytics_api import ADMIN, client
from tests.ingest.store.test_durable_api import pay, running
from tests.ingest.store.test_export import from_a_newer_payorch, held, not_payorchs  # noqa: F401 - held is a fixture
from tests.ingest.store.test_report_api import CORRECTED

ALL_TIME = ("--from", "2000-01-01", "--to", "2100-01-01")


def report(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["report", *args], env={"PAYORCH_API_KEY": "", **(env or {})})


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    """A data folder left by a service: two refused requests (two ``api/validation``
    violations), a paid split, and three complaints: one about timeouts (the taxonomy maps it),
    one naming ``plan/coverage`` itself, one nobody can map."""
    folder = tmp_path / "data"
    async with running(folder) as app:
        assert (await pay(app)).status == 200
        for _ in range(2):
            assert (await pay(app, body=b'{"amount": "lots"}')).status == 422
        for number, fields in enumerate(
            (
                {"category": "timeout"},
                {"category": "mystery", "contract_id": "plan/coverage"},
                {"category": "mystery"},
            ),
            start=1,
        ):
            complaint = {"complaint_id": f"cmp_{number}", **fields}
            filed = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(orjson.dumps(complaint)))
            assert filed.status == 201, filed.body
    return folder


def rows(document: dict[str, Any]) -> list[tuple[str, int, int, bool]]:
    return [
        (row["id"], row["count"], row["external_reports"], row["mismatch"]) for row in document["violations"]
    ]


def test_the_report_sets_violations_against_complaints(data: Path) -> None:
    done = report("--data", str(data), "--format", "json", *ALL_TIME)

    assert done.exit_code == 0, done.output
    assert done.stderr == ""
    document = json.loads(done.stdout)
    assert document["window"] == {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    # The most violated first; contracts with complaints but no violations are mismatches.
    assert rows(document) == [
        ("api/validation", 2, 0, False),
        ("plan/coverage", 0, 1, True),
        ("router/timeout", 0, 1, True),
    ]
    assert (
        document["violations"][0] | {"severity": "minor", "owner": "api-platform"}
        == document["violations"][0]
    )
    assert document["complaints"] == {"received": 3, "unmapped": 1}
    assert document["mismatch_rule"] == {"min_ratio": 0.1, "min_reports": 1}


def test_yaml_is_the_default_and_out_writes_a_file(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "retro.yaml"
    done = report("--data", str(data), "--out", str(out), *ALL_TIME)

    assert done.exit_code == 0, done.output
    assert done.stdout == ""
    assert done.stderr == f"payorch report: wrote {out}\n"
    document = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert document["window"] == {
        "from": datetime(2000, 1, 1, tzinfo=UTC),
        "to": datetime(2100, 1, 1, tzinfo=UTC),
    }
    assert rows(document)[0] == ("api/validation", 2, 0, False)
    assert list(out.parent.iterdir()) == [out]  # no partial file left beside it


def test_an_admin_key_in_the_environment_is_no_mistake_with_data(data: Path) -> None:
    # PAYORCH_API_KEY set for the --api runs of the same shell: only --api-key given with --data is
    # refused, as a key the command would not read.
    done = report("--data", str(data), "--format", "json", *ALL_TIME, env={"PAYORCH_API_KEY": "adm_x"})

    assert done.exit_code == 0, done.output


def test_the_window_bounds_what_is_counted(data: Path) -> None:
    now = datetime.now(UTC)
    past = report("--data", str(data), "--format", "json", "--from", "2000-01-01", "--to", "2000-01-15")
    # The default window: the configured span (14 days) up to now, which holds everything.
    recent = report("--data", str(data), "--format", "json")

    assert past.exit_code == 0, past.output
    assert json.loads(past.stdout)["violations"] == []
    assert json.loads(past.stdout)["complaints"] == {"received": 0, "unmapped": 0}
    assert recent.exit_code == 0, recent.output
    window = json.loads(recent.stdout)["window"]
    start, end = (datetime.fromisoformat(window[bound]) for bound in ("from", "to"))
    assert end - start == timedelta(days=14)
    assert abs(end - now) < timedelta(minutes=1)
    assert len(rows(json.loads(recent.stdout))) == 3


def test_a_window_can_be_given_as_the_report_writes_it(data: Path) -> None:
    """``--from``/``--to`` take the report's own ``...Z`` times, and offsets, back."""
    done = report(
        "--data",
        str(data),
        "--format",
        "json",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T01:00:00+01:00",
    )

    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["window"] == {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    assert rows(json.loads(done.stdout))[0] == ("api/validation", 2, 0, False)


def test_the_config_gives_the_taxonomy_and_the_mismatch_rule(data: Path, tmp_path: Path) -> None:
    settings = yaml.safe_load(sample_config_text())
    settings["complaint_taxonomy"] = {"mystery": "observer/dropped"}
    settings["reports"] = {"every_days": 7, "mismatch": {"min_ratio": 0.1, "min_reports": 2}}
    config = tmp_path / "payorch.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")

    done = report("--data", str(data), "--format", "json", "--config", str(config), *ALL_TIME)

    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    # One complaint each is under min_reports 2: no mismatch any more. "mystery" now maps.
    assert rows(document) == [
        ("api/validation", 2, 0, False),
        ("observer/dropped", 0, 1, False),
        ("plan/coverage", 0, 1, False),
        ("router/timeout", 0, 1, False),
    ]
    assert document["complaints"] == {"received": 3, "unmapped": 0}


def whole_second_after(moment: datetime) -> datetime:
    """The next whole second (``--from`` takes whole seconds)."""
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def same_report(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two reports say the same, apart from when each was made."""
    return {**first, "generated_at": None} == {**second, "generated_at": None}


@dataclass(frozen=True)
class LateComplaints:
    """A data folder where a payment's violation comes before the window and its complaint in it,
    with the service's own report of that window."""

    folder: Path
    config: Path
    window: tuple[str, str]
    served: dict[str, Any]


@pytest.fixture
async def late(tmp_path: Path) -> LateComplaints:
    config = tmp_path / "payorch.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    folder = tmp_path / "data"
    async with running(folder, report_renderer=partial(render_tables, parse_config(CONFIG))) as app:
        paid = await pay(app, body=CORRECTED)  # one api/validation violation, recorded now
        assert paid.status == 200
        start = whole_second_after(datetime.now(UTC))
        received = (start + timedelta(minutes=1)).isoformat()
        # A category that names no contract: the payment's minor violation is all it maps by.
        complaint = {"category": "other", "payment_id": paid.json()["payment_id"]}
        body = body_of(orjson.dumps(complaint | {"received_at": received}))
        filed = await call(app, "POST", "/v1/complaints", [ACME, JSON], body)
        assert filed.status == 201, filed.body
        # Another merchant naming m_acme's request: maps by its category, not through it. The
        # API refuses such a complaint now; one filed before that is still in the store.
        parts: Parts = app.state.parts  # type: ignore[attr-defined]
        stored = Complaint(
            complaint_id="cmp_old",
            merchant_id=MerchantId("m_globex"),
            received_at=datetime.fromisoformat(received),
            category="timeout",
            request_id=RequestId(paid.headers["request-id"]),
        )
        assert await parts.records.record_complaint(stored) is None
        window = (start.isoformat(), (start + timedelta(minutes=5)).isoformat())
        async with client(app) as http:
            served = await http.get(
                "/v1/reports/retrospective",
                params={"from": window[0], "to": window[1], "format": "json"},
                headers=ADMIN,
            )
        assert served.status_code == 200, served.text
    return LateComplaints(folder, config, window, served.json())


def test_a_complaint_maps_through_its_payments_violation_from_before_the_window(
    late: LateComplaints,
) -> None:
    start, end = late.window
    done = report(
        *("--data", str(late.folder), "--config", str(late.config)),
        *("--from", start, "--to", end, "--format", "json"),
    )

    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    # The payment's contract, though its violation is not counted in this window; the other
    # merchant's complaint by its category.
    assert rows(document) == [("api/validation", 0, 1, True), ("router/timeout", 0, 1, True)]
    assert document["complaints"] == {"received": 2, "unmapped": 0}
    assert same_report(document, late.served)  # what the service answers for the same window


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--format", "md"), "not built yet"),
        (("--api", "http://127.0.0.1:9", "--data", "data"), "give --api or --data, not both"),
        (("--api", "http://127.0.0.1:9"), "--api needs an admin key"),
        (("--data", "data", "--api-key", "adm_x"), "--data reads the file and takes no --api-key"),
        (
            ("--api-key", "adm_x"),
            "without --api or --data it reads the file ./data/payorch.duckdb and takes no --api-key",
        ),
        (
            ("--api", "http://127.0.0.1:9", "--api-key", "adm_x", "--config", "payorch.yaml"),
            "--api takes no --config: the service renders with its own configuration",
        ),
        (("--from", "2026-02-01", "--to", "2026-01-01"), "must be before --to"),
        (("--from", "yesterday"), "'yesterday' is not an ISO 8601 date or time"),
        (("--to", "2026-11-20 10:00 CET"), "'2026-11-20 10:00 CET' is not an ISO 8601 date or time"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(args: tuple[str, ...], expected: str) -> None:
    done = report(*args)

    assert done.exit_code == 2
    assert expected in done.stderr
    assert "Traceback" not in done.output


def test_an_api_key_alone_is_a_usage_error_not_a_report_of_the_data_folder_here(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(data.parent)  # ./data holds a database: it was read, as if served

    done = report("--api-key", "adm_x", "--format", "json")

    assert (done.exit_code, done.stdout) == (2, ""), done.output
    assert "takes no --api-key (it is for --api)" in done.stderr


def test_api_with_config_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "--api", "http://127.0.0.1:9", "--api-key", "adm_x", "--config", "payorch.yaml"])

    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "payorch report: error: --api takes no --config: the service renders with its own configuration\n"
    )


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What ``payorch report ARGS`` says on stderr, checked to be one usage-error line (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(["report", *args])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("payorch report: error: ")
    return err.removeprefix("payorch report: error: ").rstrip("\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--from", "9999-12-31T23:59:59-05:00"),
            "Invalid value for '--from': '9999-12-31T23:59:59-05:00' is outside the years 1 to 9999 in UTC",
        ),
        (
            ("--from", "0001-01-01T00:00:00+01:00", "--to", "2026-01-01"),
            "Invalid value for '--from': '0001-01-01T00:00:00+01:00' is outside the years 1 to 9999 in UTC",
        ),
        (
            ("--to", "0001-01-01"),
            "the default window, the 14 days before --to 0001-01-01T00:00:00+00:00, "
            "would begin before the year 1: give --from",
        ),
        (
            ("--to", "0001-01-10"),
            "the default window, the 14 days before --to 0001-01-10T00:00:00+00:00, "
            "would begin before the year 1: give --from",
        ),
    ],
)
def test_a_window_past_the_date_limits_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: str
) -> None:
    """These used to end in ``OverflowError: date value out of range`` (exit 1)."""
    assert one_line_error(capsys, "--data", "nowhere", *args) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:abc", "has a port that is not a number from 1 to 65535"),
        ("http://127.0.0.1:0", "has a port that is not a number from 1 to 65535"),
        ("http://127.0.0.1:70000", "has a port that is not a number from 1 to 65535"),
        ("http://[::1", "is not a URL (Invalid IPv6 URL)"),
        ("notaurl", "must start with http:// or https:// and a host"),
        ("localhost:18130", "must start with http:// or https:// and a host"),
        ("", "must start with http:// or https:// and a host"),
        ("ftp://127.0.0.1", "must start with http:// or https:// and a host"),
        ("http://:8000", "has no host"),
        ("http://adm:secret@127.0.0.1", "must not hold a user name or password (the key goes in --api-key)"),
        ("http://127.0.0.1/?x=1", "must not have a query or a fragment"),
        ("http://127.0.0.1 /", "must not hold spaces or control characters"),
    ],
)
def test_a_malformed_api_url_is_a_usage_error_before_anything_is_read(
    capsys: pytest.CaptureFixture[str], url: str, problem: str
) -> None:
    """``http://127.0.0.1:abc`` used to end in an ``httpx.InvalidURL`` traceback; ``notaurl`` in a
    one-line error, but exit 1. The config is not read either (it does not exist here)."""
    expected = f"Invalid value for '--api': {url!r} {problem}"
    assert one_line_error(capsys, "--api", url, "--api-key", "adm_x", "--config", "missing.yaml") == expected


@pytest.mark.parametrize("option", ["--out", "--data", "--config"])
def test_an_empty_path_is_a_usage_error(capsys: pytest.CaptureFixture[str], option: str) -> None:
    """``--out ''`` used to end in ``ValueError: PosixPath('.') has an empty name``; ``--data ''``
    read the current folder."""
    hint = " (give . for the current folder)" if option == "--data" else ""
    assert one_line_error(capsys, option, "") == f"Invalid value for '{option}': must not be empty{hint}"


@pytest.mark.parametrize(
    ("since", "until", "window"),
    [
        (
            "2000-01-01T00:00:00.897772Z",
            "2100-01-01T10:00Z",
            {"from": "2000-01-01T00:00:00.897772Z", "to": "2100-01-01T10:00:00Z"},
        ),
        (
            "2000-01-01T01:30+01:30",
            "2100-01-01T10",
            {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T10:00:00Z"},
        ),
        ("2000-01-01 00:00:00", "2100-01-01", {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
    ],
)
def test_iso_8601_times_with_fractions_or_without_seconds_are_taken(
    data: Path, since: str, until: str, window: dict[str, str]
) -> None:
    """The report writes its bounds with microseconds; ``--from`` used to refuse them back."""
    done = report("--data", str(data), "--format", "json", "--from", since, "--to", until)

    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["window"] == window


def test_a_reports_own_window_reads_back(data: Path) -> None:
    first = report("--data", str(data), "--format", "json")
    assert first.exit_code == 0, first.output
    window = json.loads(first.stdout)["window"]

    again = report("--data", str(data), "--format", "json", "--from", window["from"], "--to", window["to"])

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["window"] == window


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]  # bound, never listening: connections are refused


def test_what_cannot_be_read_is_a_one_line_error(tmp_path: Path, closed_port: int) -> None:
    missing = report("--data", str(tmp_path / "nowhere"))
    unreachable = report("--api", f"http://127.0.0.1:{closed_port}", "--api-key", "adm_x")

    for done in (missing, unreachable):
        assert done.exit_code == 1
        assert done.stderr.count("\n") == 1
        assert "Traceback" not in done.output
    assert missing.stderr == (
        f"payorch report: no database at {tmp_path / 'nowhere' / FILE_NAME}: "
        "pass --data with the folder `payorch serve` uses\n"
    )
    assert unreachable.stderr.startswith(
        f"payorch report: cannot read http://127.0.0.1:{closed_port}/v1/reports/retrospective: "
    )
    # Nothing listening there: the line says what to check, not only the socket's errno.
    assert unreachable.stderr.endswith(
        f": is `payorch serve` running at http://127.0.0.1:{closed_port}? "
        "(a stopped one's data folder: --data DIR)\n"
    )


def test_a_database_of_a_newer_schema_or_not_payorchs_is_refused(data: Path, tmp_path: Path) -> None:
    newer = report("--data", str(from_a_newer_payorch(data)))
    other = report("--data", str(not_payorchs(tmp_path / "other")))

    assert newer.exit_code == other.exit_code == 1
    assert newer.stderr == (
        f"payorch report: cannot read {data / FILE_NAME}: the database has schema version "
        f"{CURRENT_VERSION + 1}, newer than this payorch knows ({CURRENT_VERSION}); use a newer payorch\n"
    )
    assert other.stderr == (
        f"payorch report: cannot read {tmp_path / 'other' / FILE_NAME}: "
        "it is not a payorch database (it has no schema_migrations table)\n"
    )


def test_a_database_held_by_a_server_points_to_the_api(held: Path) -> None:  # noqa: F811 - the fixture
    done = report("--data", str(held))

    assert done.exit_code == 1
    assert done.stderr == (
        f"payorch report: {held / FILE_NAME} is held by a running payorch serve: "
        "read through it with --api URL --api-key K\n"
    )


def test_out_through_a_symlink_writes_its_target_and_keeps_the_link(data: Path, tmp_path: Path) -> None:
    """``--out link.yaml`` used to replace the link with a regular file."""
    target = tmp_path / "reports" / "retro.yaml"
    target.parent.mkdir()
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)

    done = report("--data", str(data), "--out", str(link), *ALL_TIME)

    assert done.exit_code == 0, done.output
    assert done.stderr == f"payorch report: wrote {link}\n"
    assert link.is_symlink()
    assert rows(yaml.safe_load(target.read_text(encoding="utf-8")))[0] == ("api/validation", 2, 0, False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "link.yaml", "reports"]
    assert [path.name for path in target.parent.iterdir()] == ["retro.yaml"]


def test_out_to_a_fifo_writes_into_it(data: Path, tmp_path: Path) -> None:
    """A FIFO used to be replaced by a regular file, its reader left waiting."""
    fifo = tmp_path / "retro.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")), daemon=True)
    reader.start()

    done = report("--data", str(data), "--out", str(fifo), "--format", "json", *ALL_TIME)
    reader.join(10)

    assert done.exit_code == 0, done.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert rows(json.loads(received[0]))[0] == ("api/validation", 2, 0, False)


def test_out_dash_is_stdout(data: Path) -> None:
    done = report("--data", str(data), "--out", "-", "--format", "json", *ALL_TIME)

    assert done.exit_code == 0, done.output
    assert done.stderr == ""
    assert rows(json.loads(done.stdout))[0] == ("api/validation", 2, 0, False)
