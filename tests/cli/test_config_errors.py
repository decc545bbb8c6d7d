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


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (  # it said only "line 3, column 1: invalid YAML: but found another document"
            "admin_api_keys: [adm_1]\nmerchants: []\n---\nprocessors: []\n",
            "line 3, column 1: invalid YAML: expected a single document in the stream at line 1, column 1, "
            "but found another document: a configuration is one YAML document: remove this '---' and "
            "what follows, or merge the two",
        ),
        (  # it said "line 2, column 10: invalid YAML: expected ',' or ']', but got ':'"
            "admin_api_keys: [adm_1\nmerchants: []\n",
            "line 2, column 10: invalid YAML: while parsing a flow sequence at line 1, column 17: "
            "expected ',' or ']', but got ':': close the '[' opened at line 1, column 17 with ']', "
            "with a ',' between items",
        ),
        (  # it said "line 3, column 1: invalid YAML: found unexpected end of stream"
            'admin_api_keys: ["adm_1]\nmerchants: []\n',
            "line 3, column 1: invalid YAML: while scanning a quoted scalar at line 1, column 18: found "
            "unexpected end of stream: close the quote opened at line 1, column 18",
        ),
        (
            "merchants:\n\t- merchant_id: m_1\n",
            "line 2, column 1: invalid YAML: found character '\\t' that cannot start any token: indent "
            "with spaces: YAML takes no tabs there",
        ),
    ],
)
def test_invalid_yaml_keeps_pyyamls_context_and_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    config = tmp_path / "payorch.yaml"
    config.write_text(text, encoding="utf-8")

    assert serve_refusal(config, tmp_path / "data", capsys) == f"config error: {config}: {said}"


def test_a_sum_of_fault_rates_over_1_is_shown_as_written_not_with_float_noise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.7 + 0.7 + 0.005 was shown as 1.4049999999999998."""
    config = tmp_path / "payorch.yaml"
    config.write_text(
        "merchants: []\nprocessors:\n  - {id: p, kind: simulated,\n"
        "     fault_rates: {declined: 0.7, timeout: 0.7, network_failure: 0.005}}\n",
        encoding="utf-8",
    )

    said = serve_refusal(config, tmp_path / "data", capsys)

    assert said == f"config error: {config}: processors[0].fault_rates=1.405: must add up to at most 1"
