"""``payorch serve`` keeps its data from the host's other users: under a usual umask (022) the data
folder was 0755 and ``payorch.duckdb`` 0644, so every local user could read the payments, the
idempotency keys and the merchant ids."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from tests.e2e.server import ACME, start_server


@contextmanager
def usual_umask() -> Iterator[None]:
    """A login's umask (022), which the server started meanwhile inherits."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(*folders: Path) -> dict[str, int]:
    """The permission bits of each folder and of everything in it, by path."""
    found = [path for folder in folders for path in (folder, *folder.rglob("*"))]
    return {str(path): stat.S_IMODE(path.stat().st_mode) for path in found}


def warnings(log: str) -> list[str]:
    lines = [orjson.loads(line) for line in log.splitlines()]
    return [line["event"] for line in lines if line["level"] == "warning"]


def test_serve_makes_its_data_folder_and_files_for_its_owner_only(tmp_path: Path) -> None:
    values = tmp_path / "prometheus"
    values.mkdir(mode=0o700)
    with usual_umask():
        server = start_server(tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": str(values)})
    try:
        paid = httpx.post(f"{server.url}/v1/payments", json={"amount": 500}, headers=ACME, timeout=30)
        kept = modes(server.data_dir, values)  # the database's log too, before a stop checkpoints it
    finally:
        server.stop()
    assert paid.status_code == 200, paid.text
    names = {Path(path).name for path in kept}
    made = {"payorch.duckdb", "payorch.duckdb.wal", "simulated-ledger.jsonl", "idempotency-key.secret"}
    assert made <= names
    assert any(name.endswith(".db") for name in names)  # Prometheus's values
    assert {path: f"{mode:04o}" for path, mode in kept.items() if mode & 0o077} == {}
    assert "open to other users" not in server.log()


def test_serve_warns_of_a_data_folder_open_to_other_users_and_leaves_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    with usual_umask():
        server = start_server(tmp_path)
    server.stop()
    assert (
        f"data folder {data} holds payments, idempotency keys and their secret and is open to other "
        "users (mode 0755): chmod 700 it"
    ) in warnings(server.log())
    assert stat.S_IMODE(data.stat().st_mode) == 0o755
    assert stat.S_IMODE((data / "payorch.duckdb").stat().st_mode) == 0o600
