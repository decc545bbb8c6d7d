from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(Path(tmp_path_factory.mktemp("payorch-e2e")))
    yield running
    code = running.stop()
    # A complete drain exits 0 (payorch.server keeps uvicorn from dying by the signal afterwards).
    assert code == 0, f"server exit code {code}:\n{running.log()}"
    assert "Application shutdown complete." in running.log()
    assert "Traceback" not in running.log(), running.log()
