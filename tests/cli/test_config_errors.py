"""What ``payorch serve`` says of a configuration it cannot serve: one line of its JSON log (exit
2) naming the file, where in it (a field, or YAML's line and column) and what to do."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ingest.config_file import load_config
from payorch.cli import main
from tests.e2e.server import free_port


def serve_refusal(config: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The ``event`` of the one line ``payorch serve --config config`` ends with (exit 2)."""
    argv = ["serve", "--config", str(config), "--data", str(data), "--port", str(free_port())]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    said = orjson.loads(line)
    assert (said["level"], said["logger"]) == ("error", "payorch.serve")
    event: str = said["event"]
    return event


def test_a_config_with_no_merchant_and_no_admin_key_is_not_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It started a service that answered every request 401, without a word of why."""
    config = tmp_path / "payorch.yaml"
    config.write_text("merchants: []\nprocessors: []\n", encoding="utf-8")

    said = serve_refusal(config, tmp_path / "data", capsys)

    assert said == (
        f"config error: {config}: merchants: is empty and admin_api_keys holds no key: the service "
        "would refuse every request (401); add a merchant with its api_keys, or an admin key to "
        "admin_api_keys"
    )
    assert not (tmp_path / "data").exists()
    # A file of a taxonomy alone is still one for `payorch report --config`, which reads no key.
    assert load_config(config).merchants == ()
