"""``store.memory_limit`` reaches DuckDB on every connection payorch opens on the database: the
writer's, the admin reads' (its cursors), and the read-only ones of ``payorch report --data`` and
``payorch export``; without it, a quarter of the machine's memory, never DuckDB's own 80%."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from engine.config import StoreConfig
from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.store.memory import DEFAULT_SHARE, machine_memory, memory_limit
from ingest.store.reads import open_read_only
from ingest.store.schema import FILE_NAME
from ingest.store.writer import Writer
from payorch.cli import main
from tests.e2e.server import CONFIG

SETTING = "SELECT current_setting('memory_limit')"


def shown(limit: str) -> str:
    """``limit`` as DuckDB shows it back (``512MiB``: ``512.0 MiB``)."""
    with duckdb.connect() as connection:
        connection.execute(f"SET memory_limit = '{limit}'")
        value = connection.execute(SETTING).fetchone()
    assert value is not None
    return str(value[0])


def duckdbs_own() -> str:
    with duckdb.connect() as connection:
        value = connection.execute(SETTING).fetchone()
    assert value is not None
    return str(value[0])


def setting(connection: duckdb.DuckDBPyConnection) -> str:
    value = connection.execute(SETTING).fetchone()
    assert value is not None
    return str(value[0])


def test_the_default_is_a_quarter_of_the_machine_not_duckdbs_own() -> None:
    assert memory_limit(StoreConfig(), machine=8 * 2**30) == f"{2 * 2**30}B"
    assert memory_limit(StoreConfig(), machine=32 * 2**20) == f"{16 * 2**20}B"  # never below 16 MiB
    assert memory_limit(StoreConfig(memory_limit="512MiB"), machine=8 * 2**30) == f"{512 * 2**20}B"
    assert memory_limit(StoreConfig(memory_limit_mb=300), machine=8 * 2**30) == f"{300 * 2**20}B"
    default = memory_limit(StoreConfig())
    assert int(default.removesuffix("B")) == int(machine_memory() * DEFAULT_SHARE)
    assert shown(default) != duckdbs_own()


def test_the_writer_and_the_admin_reads_hold_the_default_limit(tmp_path: Path) -> None:
    writer = Writer(tmp_path / FILE_NAME)
    try:
        assert writer.read_now(setting) == shown(memory_limit(StoreConfig()))
        reading = writer.cursor()
        assert setting(reading) == shown(memory_limit(StoreConfig()))
        reading.close()
    finally:
        writer.close()


async def test_the_services_store_holds_the_configs_limit(tmp_path: Path) -> None:
    config = parse_config(CONFIG + "store: {memory_limit: 96MiB}\n")
    application = create_app(Settings(config=config, data_dir=tmp_path))
    async with application.router.lifespan_context(application):
        writer = application.state.parts.writer
        assert writer.read_now(setting) == "96.0 MiB"
        reading = writer.cursor()  # what an admin read of a window streams from
        assert setting(reading) == "96.0 MiB"
        reading.close()
    older = dataclasses.replace(config, store=StoreConfig(memory_limit_mb=80))
    application = create_app(Settings(config=older, data_dir=tmp_path))
    async with application.router.lifespan_context(application):
        assert application.state.parts.writer.read_now(setting) == "80.0 MiB"


def test_a_report_or_export_reading_the_file_holds_the_limit(tmp_path: Path) -> None:
    Writer(tmp_path / FILE_NAME).close()
    with open_read_only(tmp_path, memory_limit(StoreConfig(memory_limit="2GB"))) as connection:
        assert setting(connection) == shown("2GB")
    with open_read_only(tmp_path) as connection:
        assert setting(connection) == shown(memory_limit(StoreConfig()))


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('"2 GB"', "store.memory_limit='2 GB': has a space in it: write 2GB"),
        ('"50%"', "store.memory_limit='50%': is a share, not a size: give a size, such as 512MiB"),
        ("0", "store.memory_limit=0: must be a size above 0, such as 512MiB or 2GiB"),
        ("-1", "store.memory_limit=-1: must not be negative"),
        ('"-2GiB"', "store.memory_limit='-2GiB': must not be negative"),
        ("2048", "store.memory_limit=2048: needs a unit: 2048MiB, for instance"),
        ('"1.5GiB"', "store.memory_limit='1.5GiB': must be a whole number of its unit"),
        ('"8KiB"', "store.memory_limit='8KiB': must be at least 16MiB"),
        ('"lots"', "store.memory_limit='lots': is not a size: write a whole number and a unit"),
        ('"1000GiB"', "store.memory_limit='1000GiB': is more than the"),
        ('"2TiB"', "store.memory_limit='2TiB': must be at most 1TiB"),
    ],
)
def test_a_memory_limit_that_is_no_size_names_the_file_and_the_field(value: str, said: str) -> None:
    if value == '"1000GiB"' and machine_memory() >= 1000 * 2**30:
        pytest.skip("this machine has 1000 GiB")
    with pytest.raises(Exception, match=r"^payorch\.yaml: ") as raised:
        parse_config(CONFIG + f"store:\n  memory_limit: {value}\n", "payorch.yaml")
    assert said in str(raised.value)


def test_memory_limit_and_memory_limit_mb_are_not_both_given() -> None:
    with pytest.raises(Exception, match="memory_limit_mb are the same limit: give one of them"):
        parse_config(CONFIG + "store: {memory_limit: 1GiB, memory_limit_mb: 512}\n", "payorch.yaml")


@pytest.mark.parametrize("command", ["export", "report"])
def test_export_and_report_take_the_limit_from_their_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Writer(data / FILE_NAME).close()
    config = tmp_path / "payorch.yaml"
    config.write_text(CONFIG + "store: {memory_limit: 2 GB}\n")
    out = ["--out", str(tmp_path / ("export" if command == "export" else "report.yaml"))]

    with pytest.raises(SystemExit) as exited:
        main([command, "--data", str(data), "--config", str(config), *out])
    assert exited.value.code == 2
    said = f"payorch: config error: {config}: store.memory_limit='2 GB': has a space in it: write 2GB\n"
    assert capsys.readouterr().err == said

    config.write_text(CONFIG + "store: {memory_limit: 64MiB}\n")
    main([command, "--data", str(data), "--config", str(config), *out])
    done = capsys.readouterr()
    assert "wrote" in done.err + done.out
