"""A data folder copied while its service ran (a live backup, a volume snapshot, ``cp -a`` to
another host) must not settle that service's payments in flight when started elsewhere; a restart
in place, a moved folder with nothing to settle, and a take-over the operator confirmed start.

In process: a payment cut short is written as a crash (or a live copy) leaves it, then the folder
is started as another host, or copied and started from another path (``ingest.store.ownership``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.store.ownership import CREATE_TABLE, Claim, DataFolderMovedError, Owner, claim, last_owner
from ingest.store.recovery import RecoveryReport
from payorch.cli import main
from tests.ingest.store.test_recovery_at_start import CONFIG, Started, _cut_off_payment


@asynccontextmanager
async def running(
    data_dir: Path, host: str = "host-a", *, take_over: str | None = None, instance_name: str | None = None
) -> AsyncIterator[Started]:
    settings = Settings(
        config=parse_config(CONFIG),
        data_dir=data_dir,
        environ={},
        host_name=host,
        take_over=take_over,
        instance_name=instance_name,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield Started(application, application.state.parts)


async def _left_in_flight(data_dir: Path, host: str = "host-a", instance_name: str | None = None) -> None:
    """The folder as a service on ``host`` leaves it mid-payment (crashed, or copied while running)."""
    async with running(data_dir, host, instance_name=instance_name) as serving:
        for event in await _cut_off_payment():
            await serving.parts.records.emit(event)
        await serving.parts.records.sync()


def _owners(data_dir: Path) -> list[tuple[str, str, str, str | None]]:
    with duckdb.connect(str(data_dir / "payorch.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "SELECT instance_id, host, data_dir, taken_over_from FROM owners ORDER BY start_no"
        ).fetchall()
    return [(str(i), str(h), str(d), None if t is None else str(t)) for i, h, d, t in rows]


def take_over_attempts(command: list[str], monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The exit codes of ``payorch COMMAND`` (``serve`` or ``demo``) started on a copied folder three
    ways: without a take-over, with ``--take-over`` naming another instance, and with
    ``PAYORCH_TAKE_OVER`` naming another."""
    exits: list[object] = []
    for extra, variable in (
        ([], None),
        (["--take-over", "0123456789abcdef"], None),
        ([], "fedcba9876543210"),
    ):
        if variable is not None:
            monkeypatch.setenv("PAYORCH_TAKE_OVER", variable)
        with pytest.raises(SystemExit) as exited:
            main([*command, *extra])
        exits.append(exited.value.code)
    return exits


def _event_count(data_dir: Path) -> int:
    with duckdb.connect(str(data_dir / "payorch.duckdb"), read_only=True) as connection:
        return int(connection.execute("SELECT count(*) FROM events").fetchall()[0][0])


async def _refused(data_dir: Path, host: str, take_over: str | None = None) -> tuple[str, str | None]:
    """Start on ``data_dir`` as ``host``; the error the start raised and the line it says."""
    settings = Settings(
        config=parse_config(CONFIG), data_dir=data_dir, environ={}, host_name=host, take_over=take_over
    )
    application = create_app(settings)
    with pytest.raises(DataFolderMovedError) as raised:
        async with application.router.lifespan_context(application):
            pass
    application.state.parts.writer.close()
    return str(raised.value), application.state.parts.start_failure


async def test_a_folder_started_on_another_host_with_payments_in_flight_refuses_and_settles_nothing(
    tmp_path: Path,
) -> None:
    # The same path on another host (a volume snapshot mounted in a new container): its recovery
    # settled the original's in-flight payment with the processors while the original went on.
    await _left_in_flight(tmp_path, "host-a")
    before = _event_count(tmp_path)
    (original, *_), owners_before = _owners(tmp_path), len(_owners(tmp_path))

    error, said = await _refused(tmp_path, "host-b")

    assert said == error  # the start's one line is the refusal itself, not "crash recovery failed"
    assert error.startswith(
        f"the data folder {tmp_path.resolve()} was last started by instance {original[0]} on host-a at "
        f"{tmp_path.resolve()} (pid "
    )
    assert "not here on host-b at" in error
    assert "holds 1 interrupted payment:" in error
    assert f"start with --take-over {original[0]} (PAYORCH_TAKE_OVER={original[0]})" in error
    assert "\n" not in error
    assert _event_count(tmp_path) == before  # nothing settled, nothing written
    assert len(_owners(tmp_path)) == owners_before


async def test_a_folder_copied_to_another_path_of_the_same_host_refuses(tmp_path: Path) -> None:
    # cp -a of a live service's folder to a second folder, started beside it.
    await _left_in_flight(tmp_path / "live")
    shutil.copytree(tmp_path / "live", tmp_path / "copy")

    error, _ = await _refused(tmp_path / "copy", "host-a")

    assert f"on host-a at {(tmp_path / 'live').resolve()} (pid " in error
    assert f"not here on host-a at {(tmp_path / 'copy').resolve()}," in error


async def test_a_restart_in_place_settles_as_before(tmp_path: Path) -> None:
    await _left_in_flight(tmp_path)
    async with running(tmp_path) as restarted:
        report = restarted.parts.recovery

    assert isinstance(report, RecoveryReport)
    assert (report.interrupted, report.finished) == (1, 1)
    assert [taken for *_, taken in _owners(tmp_path)] == [None, None]


async def test_the_operator_takes_over_a_restored_folder_by_the_instance_the_refusal_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The original host died; its backup is restored on host-b: the legitimate case.
    await _left_in_flight(tmp_path, "host-a")
    original = _owners(tmp_path)[-1][0]
    await _refused(tmp_path, "host-b", take_over="0123456789abcdef")  # a stale or mistyped id
    caplog.set_level(logging.WARNING, logger="payorch.store")
    async with running(tmp_path, "host-b", take_over=original) as taken:
        report = taken.parts.recovery
    async with running(tmp_path, "host-b", take_over=original):  # the flag left set: harmless
        pass

    assert isinstance(report, RecoveryReport)
    assert (report.interrupted, report.finished) == (1, 1)
    owners = _owners(tmp_path)
    assert [(host, taken_from) for _, host, _, taken_from in owners[-2:]] == [
        ("host-b", original),
        ("host-b", None),
    ]
    said = [record.getMessage() for record in caplog.records if record.getMessage().startswith("data folder")]
    assert said == [
        f"data folder {tmp_path.resolve()}: last started by instance {original} on host-a at "
        f"{tmp_path.resolve()}; it is this service's ({owners[-2][0]} on host-b at {tmp_path.resolve()}) "
        f"from now on: taken over (--take-over {original})"
    ]


async def test_a_moved_folder_with_nothing_to_settle_starts_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, "host-a"):
        pass
    caplog.set_level(logging.WARNING, logger="payorch.store")
    async with running(tmp_path, "host-b") as moved:
        assert isinstance(moved.parts.recovery, RecoveryReport)

    said = [record.getMessage() for record in caplog.records if record.getMessage().startswith("data folder")]
    assert len(said) == 1
    assert said[0].endswith("from now on: nothing was left to settle")
    assert [host for _, host, _, _ in _owners(tmp_path)] == ["host-a", "host-b"]


async def test_pods_whose_host_name_changes_are_one_service_under_an_instance_name(tmp_path: Path) -> None:
    # A Kubernetes Deployment's new pod after its node died: a new host name, the same volume.
    await _left_in_flight(tmp_path, "payorch-6f7d9-xk2p", instance_name="payorch-prod")
    async with running(tmp_path, "payorch-6f7d9-q8zt", instance_name="payorch-prod") as next_pod:
        report = next_pod.parts.recovery

    assert isinstance(report, RecoveryReport)
    assert (report.interrupted, report.finished) == (1, 1)


def _owner(name: str, data_dir: str = "/data", host: str | None = None) -> Owner:
    return Owner("a1b2c3d4e5f60718", name, host or name, data_dir, 7, datetime(2026, 11, 27, tzinfo=UTC))


@pytest.mark.parametrize(
    ("last", "here", "interrupted", "take_over", "allowed"),
    [
        (None, _owner("b"), 5, None, Claim.OWN),  # a database no start recorded (before version 10)
        (_owner("a"), _owner("a"), 5, None, Claim.OWN),
        (_owner("a"), _owner("b"), 0, None, Claim.MOVED),
        (_owner("a"), _owner("b"), 5, "a1b2c3d4e5f60718", Claim.TAKEN_OVER),
        (_owner("a"), _owner("b"), 5, " a1b2c3d4e5f60718\n", Claim.TAKEN_OVER),
        (_owner("a", host="h1"), _owner("a", host="h2"), 5, None, Claim.OWN),  # named: host may change
        (_owner("a"), _owner("a", "/other"), 5, None, None),
        (_owner("a"), _owner("b"), 1, "ffffffffffffffff", None),
    ],
)
def test_the_rule(
    last: Owner | None, here: Owner, interrupted: int, take_over: str | None, allowed: Claim | None
) -> None:
    if allowed is None:
        with pytest.raises(DataFolderMovedError):
            claim(last, here, interrupted, take_over)
    else:
        assert claim(last, here, interrupted, take_over) is allowed


def test_a_database_without_owners_has_no_last_owner(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "x.duckdb")) as connection:
        connection.execute(CREATE_TABLE)
        assert last_owner(connection) is None
