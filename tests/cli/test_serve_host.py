"""``payorch serve --host``: an IPv6 address in a URL's brackets is taken, a port is refused naming
``--port``. Both were "cannot resolve --host '[::1]': Name or service not known"."""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path

import pytest

from payorch.cli import main
from tests.e2e.server import free_port


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("127.0.0.1:80", "'127.0.0.1:80' holds a port: give the host alone (127.0.0.1) and --port 80"),
        ("[::1]:8000", "'[::1]:8000' holds a port: give the host alone ([::1]) and --port 8000"),
        ("[localhost]", "'[localhost]' is not a host: only an IPv6 address goes in brackets ([::1])"),
    ],
)
def test_a_host_with_a_port_or_brackets_around_a_name_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str, said: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--host", host, "--port", str(free_port()), "--data", str(tmp_path / "data")])

    assert exited.value.code == 2
    assert capsys.readouterr().err == f"payorch serve: error: Invalid value for '--host': {said}\n"
    assert not (tmp_path / "data").exists()


class _StopOnceListening(logging.Filter):
    """Stops the server (SIGTERM to this process) as it says where it listens, noting the line."""

    def __init__(self) -> None:
        super().__init__()
        self.said: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("listening on"):
            self.said.append(record.getMessage())
            signal.raise_signal(signal.SIGTERM)
        return True


def test_an_ipv6_host_in_brackets_is_listened_on(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = free_port()
    hook = _StopOnceListening()
    serve_log = logging.getLogger("payorch.serve")
    serve_log.addFilter(hook)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["serve", "--host", "[::1]", "--port", str(port), "--data", str(tmp_path / "data")])
    finally:
        serve_log.removeFilter(hook)

    assert exited.value.code == 0
    assert hook.said == [f"listening on http://[::1]:{port}"]
