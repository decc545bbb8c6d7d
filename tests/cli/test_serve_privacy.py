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
import pytest

from tests.e2e.server import ACME, start_server


@contextmanager
def usual_umask(umask: int = 0o022) -> Iterator[None]:
    """A login's umask (022), which the server started meanwhile and its config file get."""
    previous = os.umask(umask)
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
    config_only = [f"config file {tmp_path / 'payorch.yaml'} holds API keys and is open to other users"]
    opened = [warning.split(" (mode")[0] for warning in warnings(server.log()) if "open to" in warning]
    assert opened == config_only


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


@pytest.mark.parametrize(("umask", "warned"), [(0o022, True), (0o027, True), (0o077, False)])
def test_serve_warns_of_a_config_file_whose_api_keys_others_may_read(
    tmp_path: Path, umask: int, warned: bool
) -> None:
    # Any local user could read the keys of a 0644 config file, without a word from the service.
    with usual_umask(umask):
        server = start_server(tmp_path)  # the config file gets the umask's mode
    server.stop()
    config = tmp_path / "payorch.yaml"
    warning = (
        f"config file {config} holds API keys and is open to other users "
        f"(mode {0o666 & ~umask:04o}): chmod 600 it"
    )
    assert (warning in warnings(server.log())) is warned
    assert "sk_e2e_acme" not in server.log()
