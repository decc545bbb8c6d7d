"""A key secret file a start wrote and never published (it was killed between the two) is swept by
the next start that holds the data folder alone, never under another ``payorch serve`` of the same
folder, which may be writing its own. They were never swept: each start that died so left one
more, ``.idempotency-key.secret.*.partial``, for good."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from ingest.api.idempotency import SECRET_FILE, process_secret
from ingest.config_file import load_sample_config
from payorch.server import run_server

LEFT = f".{SECRET_FILE}.k3y9x2_q.partial"


def _folder_with_left_files(data: Path) -> bytes:
    """A data folder whose secret was published by a start killed before it removed its own file
    (a second name of the secret), beside one a start killed before publishing left."""
    data.mkdir(mode=0o700)
    secret = process_secret()
    (data / SECRET_FILE).write_bytes(secret)
    os.link(data / SECRET_FILE, data / LEFT)
    (data / f".{SECRET_FILE}.a8b7c6d5.partial").write_bytes(process_secret())
    return secret


def _serve_once(data: Path) -> tuple[list[str], tuple[bool, bool]]:
    """Start the service on ``data``, and once it takes requests note the secret files there, and
    whether another start could share the folder and could hold it alone, then stop it (SIGTERM)."""
    seen: list[str] = []
    locks: list[bool] = []
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def look_then_stop(_: Callable[[], bool]) -> None:
        try:
            seen.extend(sorted(name for name in os.listdir(data) if SECRET_FILE in name))
            locks.extend(_could_lock(data, kind) for kind in (fcntl.LOCK_SH, fcntl.LOCK_EX))
        finally:
            signal.pthread_kill(main_thread, signal.SIGTERM)

    stopped = run_server(
        load_sample_config(), data, "127.0.0.1", 0, log_file="serve.log", companion=look_then_stop
    )
    assert stopped.complete, stopped.summary()
    return seen, (locks[0], locks[1])


def _could_lock(data: Path, kind: int) -> bool:
    """Whether another process (another open file of ``data``) could take a lock of ``kind``."""
    another = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(another, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(another)
    return True


def test_a_start_alone_sweeps_the_secret_files_left_unpublished_and_keeps_the_secret(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    secret = _folder_with_left_files(data)

    seen, (shareable, alone) = _serve_once(data)

    assert seen == [SECRET_FILE]
    assert (data / SECRET_FILE).read_bytes() == secret
    # Shared again once swept: a second start shares the folder, and does not find it alone.
    assert (shareable, alone) == (True, False)


def test_a_start_beside_another_service_of_the_folder_sweeps_nothing(tmp_path: Path) -> None:
    """The other may be writing its own secret file: swept, its publication failed ("cannot write
    the key secret")."""
    data = tmp_path / "data"
    _folder_with_left_files(data)
    other = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(other, fcntl.LOCK_SH)  # as a running payorch serve holds it
        seen, _ = _serve_once(data)
    finally:
        os.close(other)

    assert seen == sorted([SECRET_FILE, LEFT, f".{SECRET_FILE}.a8b7c6d5.partial"])


def test_a_start_waits_out_another_starts_sweep_to_share_the_folder(tmp_path: Path) -> None:
    """A start that found the folder held exclusive (another start sweeping it) went on without a
    lock, unseen: the next start, alone as it seemed, could sweep the file it was writing."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    sweeping = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(sweeping, fcntl.LOCK_EX)
    release = threading.Timer(0.2, os.close, (sweeping,))
    release.start()
    try:
        _, (shareable, alone) = _serve_once(data)
    finally:
        release.join()

    assert (shareable, alone) == (True, False)
