"""Files that hold payments or secrets, kept from the host's other users.

The data folder holds every payment, idempotency key and merchant id, and the secret of the keys'
tags: payorch makes it for its owner only (as ``mkdir -p -m 700``), and ``payorch serve`` runs
under a umask that takes every group and other bit away, so what it creates there (the database,
DuckDB's log and spill files, the simulated ledger, the log file) and Prometheus's value files are
its owner's alone. A folder or file it finds open to others, made before or by someone else, is
left as it is and named in a WARNING line (:func:`exposed`) rather than refused: a Kubernetes
Secret or ConfigMap is mounted 0644 unless told otherwise, and in a container of one user no one
else can read it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

#: Permission bits of a file's group and of others: none of them is set on what payorch keeps.
OTHERS = 0o077


def make_private_folder(path: Path) -> Path | None:
    """``path`` and the folders missing above it, ``path`` itself made for its owner only. An
    existing folder is left as it is (:func:`exposed` says when others may use it).

    Returns the highest folder made here (``path`` or one above it), ``None`` when ``path`` was
    there: what to remove for a start that failed to leave nothing behind. A folder another
    process made meanwhile is not counted as made here; should making one fail, the ones made
    before it are removed."""
    missing = [folder for folder in (path, *path.parents) if not os.path.lexists(folder)]
    made: list[Path] = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=0o700 if folder == path else 0o777)
            except FileExistsError:
                continue
            made.append(folder)
        path.mkdir(mode=0o700, exist_ok=True)  # a file in its place: FileExistsError
    except OSError:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return made[0] if made else None


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created meanwhile, by payorch or its libraries (DuckDB, Prometheus's
    client), get no permission for their group or others. The umask is the process's: restored
    on the way out, for a test that serves in its own process."""
    previous = os.umask(OTHERS)
    os.umask(previous | OTHERS)
    try:
        yield
    finally:
        os.umask(previous)


def exposed(path: Path, holds: str) -> str | None:
    """A warning naming ``path`` and its mode when its group or others may use it (``holds`` says
    what they could read); ``None`` when only its owner may, or when it cannot be looked at."""
    try:
        status = path.stat()  # a link's target: what a reader gets
    except OSError:
        return None
    mode = stat.S_IMODE(status.st_mode)
    if not mode & OTHERS:
        return None
    fix = "700" if stat.S_ISDIR(status.st_mode) else "600"
    return f"{path} holds {holds} and is open to other users (mode {mode:04o}): chmod {fix} it"


def read_small_file(path: Path, limit: int) -> tuple[bytes, bool]:
    """At most one byte more than ``limit`` of ``path`` (a file, or a pipe such as ``<(...)``),
    and whether it is a pipe: the config file and a key file, read whole and refused beyond their
    size. A folder raises ``IsADirectoryError``; a missing or unreadable path, ``OSError``."""
    # Non-blocking, opening a named pipe that no one writes to does not wait for a writer forever.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(descriptor, "rb", closefd=True) as stream:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        os.set_blocking(descriptor, True)  # a writer's pipe: read until it closes, as a file
        return stream.read(limit + 1), stat.S_ISFIFO(mode)
