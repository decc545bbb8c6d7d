"""DuckDB's spill files stay in the data folder, its owner's only, and what a killed process
spilled neither lingers nor breaks the next start (``ingest.store.spill``)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ingest.errors import IngestError
from ingest.store.reads import open_read_only
from ingest.store.schema import FILE_NAME
from ingest.store.writer import Writer

SPILL = FILE_NAME + ".tmp"
#: A sort far larger than 32 MiB: DuckDB spills it.
LARGE_SORT = "SELECT max(s) FROM (SELECT random()::VARCHAR AS s FROM range(1500000) ORDER BY s)"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The umask of a shell (022), under which DuckDB made the folder 0755 and its files 0644."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def spill_and_look(connection: duckdb.DuckDBPyConnection, folder: Path) -> list[Path]:
    """Run a query that spills, and list the folder while its result is still held."""
    connection.execute("SET preserve_insertion_order = false; SET threads = 1")
    cursor = connection.execute("SELECT random()::VARCHAR AS s, range AS i FROM range(1500000) ORDER BY s")
    assert cursor.fetchmany(1)
    files = list(folder.iterdir())
    cursor.fetchall()
    return files


@pytest.mark.usefixtures("open_umask")
def test_the_writers_spill_is_in_the_data_folder_and_its_owners_only(tmp_path: Path) -> None:
    writer = Writer(tmp_path / FILE_NAME, memory_limit="32MiB")
    try:
        folder = tmp_path / SPILL
        setting = writer.read_now(lambda c: c.execute("SELECT current_setting('temp_directory')").fetchone())
        assert setting == (str(folder.absolute()),)
        spilled = writer.read_now(lambda c: spill_and_look(c, folder))
        assert any(path.name.endswith(".tmp") for path in spilled)  # it did spill there
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        writer.close()


@pytest.mark.usefixtures("open_umask")
def test_a_reading_commands_spill_is_its_owners_only(tmp_path: Path) -> None:
    Writer(tmp_path / FILE_NAME).close()
    (tmp_path / SPILL).mkdir(exist_ok=True)  # as an earlier DuckDB made it
    os.chmod(tmp_path / SPILL, 0o755)  # noqa: S103 - the mode DuckDB gave it
    with open_read_only(tmp_path, "32MiB") as connection:
        spilled = spill_and_look(connection, tmp_path / SPILL)
    assert any(path.name.endswith(".tmp") for path in spilled)
    assert stat.S_IMODE((tmp_path / SPILL).stat().st_mode) == 0o700


def test_a_killed_processs_spill_is_cleared_at_the_next_start(tmp_path: Path) -> None:
    Writer(tmp_path / FILE_NAME).close()
    folder = tmp_path / SPILL
    folder.mkdir(exist_ok=True)
    left = [folder / "duckdb_temp_999999_0_owner", folder / "duckdb_temp_999999_0_storage_DEFAULT-0.tmp"]
    left[0].write_bytes(b"")
    left[1].write_bytes(os.urandom(1 << 20))  # no row DuckDB could read
    writer = Writer(tmp_path / FILE_NAME, memory_limit="32MiB")
    try:
        assert not any(path.exists() for path in left)
        assert writer.spills_cleared == len(left)
        assert writer.read_now(lambda c: c.execute("SELECT count(*) FROM events").fetchone()) == (0,)
        assert writer.read_now(lambda c: c.execute(LARGE_SORT).fetchone()) is not None  # spills anew
    finally:
        writer.close()


def test_a_file_in_the_spill_folders_place_is_refused_at_start(tmp_path: Path) -> None:
    Writer(tmp_path / FILE_NAME).close()
    if (tmp_path / SPILL).exists():
        (tmp_path / SPILL).rmdir()
    (tmp_path / SPILL).write_text("not a folder")
    with pytest.raises(
        IngestError, match=r"payorch\.duckdb\.tmp for DuckDB's spill files: it is not a folder"
    ):
        Writer(tmp_path / FILE_NAME)
