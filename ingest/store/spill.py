"""DuckDB's spill folder: where a query or a batch larger than ``store.memory_limit`` goes on disk.

It is ``DATA/payorch.duckdb.tmp/``, inside the data folder, set on every connection (not left to
DuckDB's default, which a DuckDB setting of the environment could move). Spill files hold rows of
payments, so the folder is its owner's alone (0700) like the data folder itself, made so before
DuckDB is let to write there, whatever the umask of the command (``payorch report --data`` and
in-process services run under the caller's): DuckDB made it 0755, its files 0644.

A process killed while it spilled (``kill -9``, the kernel's OOM killer, a power cut) leaves its
files behind: DuckDB never reads another process's spill as data, but it removed them only at
the next spill, so a killed service's gigabytes of them stayed on the data folder's disk until
then. The writer holds the database's only read-write lock once it is open, so every file in the
folder is then a dead process's: it clears them at start. A file in the folder's place would
make the first spill fail, which stops the writer for good: it is refused at start instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from ingest.errors import IngestError

#: What DuckDB names the spill folder after the database's file name.
SUFFIX = ".tmp"


def spill_folder(database: Path) -> Path:
    """The spill folder of ``database`` (absolute: DuckDB reads a leading ``~`` as the home)."""
    return database.absolute().with_name(database.name + SUFFIX)


def prepare(database: Path) -> str:
    """Make ``database``'s spill folder its owner's alone (creating it), and return its path as
    DuckDB's ``temp_directory`` takes it; :class:`IngestError` when it cannot be."""
    folder = spill_folder(database)
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        status = os.lstat(folder)
        if not stat.S_ISDIR(status.st_mode):
            raise IngestError(f"cannot use {folder} for DuckDB's spill files: it is not a folder; remove it")
        if status.st_mode & 0o077:
            os.chmod(folder, 0o700)
    except FileExistsError:
        raise IngestError(
            f"cannot use {folder} for DuckDB's spill files: it is not a folder; remove it"
        ) from None
    except OSError as error:
        raise IngestError(f"cannot use {folder} for DuckDB's spill files: {error.strerror}") from None
    return str(folder)


def clear(database: Path) -> int:
    """Remove what dead processes spilled for ``database`` (call with its read-write lock held);
    returns how many entries were removed."""
    folder = spill_folder(database)
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
    return removed
