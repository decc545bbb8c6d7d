"""``payorch demo`` starts the platform: the real server on the sample configuration, fed simulated
traffic over HTTP, printing what to open, and serving until Ctrl-C (exit 0 after a drain). It used
to run 24 payments in memory, print a summary and exit 0, with nothing left to open."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from engine.config import PlatformConfig
from ingest.config_file import load_sample_config
from ingest.store.schema import FILE_NAME
from ingest.store.writer import Writer
from payorch import demo as demo_module
from payorch.cli import main
from tests.cli.test_report_cut_short import Killed
from tests.e2e.server import free_port
from tests.ingest.store.test_copied_folder import _left_in_flight, _owners, take_over_attempts

PAYORCH = Path(sys.executable).parent / "payorch"
READY_LINE = "Serving until Ctrl-C (or SIGTERM or SIGHUP)."
CURL = re.compile(r"curl -s (?P<url>\S+) -H 'Authorization: Bearer (?P<key>[^']+)'")
PAYMENTS = re.compile(r"payments: (?P<sent>\d+) sent: (?P<statuses>[^;]+); (?P<replays>\d+) idempotent")
STATUS = re.compile(r"(?P<count>\d+) (?P<status>\w+)")
REPORT_COMMAND = re.compile(r"^ +(?P<command>\S.* report --api \S+ --api-key \S+)$", re.MULTILINE)
#: PATH without a folder holding a payorch, as after `make demo` (.venv/bin is on no PATH).
BARE_PATH = os.pathsep.join(
    folder
    for folder in os.environ.get("PATH", "").split(os.pathsep)
    if not shutil.which("payorch", path=folder)
)
METRIC = re.compile(r'^payorch_payments_total\{status="(?P<status>\w+)"\} (?P<value>[\d.]+)$', re.MULTILINE)


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def output(self) -> str:
        return f"stdout:\n{self.stdout()}\nstderr:\n{self.err.read_text(errors='replace')}"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Demo, str, Path]]:
    """``payorch demo`` on a free port and a fresh data folder, once it has printed what to open."""
    port, data = free_port(), tmp_path / "data"
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [str(PAYORCH), "demo", "--port", str(port), "--data", str(data)],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PATH": BARE_PATH},
        )
    running = Demo(process, out, err)
    try:
        deadline = time.monotonic() + 60
        while READY_LINE not in running.stdout():
            assert process.poll() is None, (
                f"payorch demo exited with {process.returncode}\n{running.output()}"
            )
            assert time.monotonic() < deadline, f"no URLs printed within 60 s\n{running.output()}"
            time.sleep(0.2)
        yield running, f"http://127.0.0.1:{port}", data
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _get(url: str, key: str | None = None, **params: str) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.get(url, headers=headers, params=params, timeout=30)


def test_demo_serves_sends_traffic_prints_what_to_open_and_stops_on_ctrl_c(
    demo: tuple[Demo, str, Path],
) -> None:
    running, url, data = demo
    printed = running.stdout()
    assert f"API docs:    {url}/docs" in printed
    assert f"metrics:     {url}/metrics" in printed
    assert f"payorch report --api {url} --api-key adm_test_123" in printed
    # The report command it prints runs as printed, from the same folder, with the same PATH.
    command = REPORT_COMMAND.search(printed)
    assert command is not None, printed
    printed_report = subprocess.run(
        shlex.split(command["command"]),
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": BARE_PATH},
        check=False,
        timeout=60,
    )
    assert printed_report.returncode == 0, printed_report.stderr
    assert printed_report.stdout.startswith("window:"), printed_report.stdout
    assert "Not built yet: the dashboard (port 8501), `payorch simulate`" in printed
    curls = {match["url"].removeprefix(url).split("/")[2]: match for match in CURL.finditer(printed)}
    assert set(curls) == {"payments", "violations", "reports"}, printed

    assert _get(f"{url}/healthz").status_code == 200
    assert _get(f"{url}/docs").status_code == 200
    payment = _get(curls["payments"]["url"], curls["payments"]["key"])
    assert payment.status_code == 200, payment.text
    assert payment.json()["payment_id"] == curls["payments"]["url"].rsplit("/", 1)[1]
    assert len(payment.json()["step_results"]) == 2  # the demo shows a split payment
    violations = _get(curls["violations"]["url"], curls["violations"]["key"])
    assert violations.status_code == 200, violations.text
    assert violations.json()["violations"]

    # What the summary says is what the server counted.
    summary = PAYMENTS.search(printed)
    assert summary is not None, printed
    statuses = {match["status"]: int(match["count"]) for match in STATUS.finditer(summary["statuses"])}
    assert {"succeeded", "failed", "rejected"} <= set(statuses)  # declining cards, refusals
    metrics = _get(f"{url}/metrics").text
    assert statuses == {match["status"]: int(float(match["value"])) for match in METRIC.finditer(metrics)}
    assert f"payorch_idempotent_replays_total {summary['replays']}.0" in metrics
    assert int(summary["sent"]) == sum(statuses.values()) + int(summary["replays"]) >= 24
    filed = re.search(r"complaints filed: (\d+)", printed)
    assert filed is not None
    report = _get(curls["reports"]["url"], curls["reports"]["key"], format="json")
    assert report.status_code == 200, report.text
    assert report.json()["complaints"]["received"] == int(filed[1]) > 0

    started = time.monotonic()
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(30) == 0, running.output()
    assert time.monotonic() - started < 30
    assert (
        running.stdout().rstrip("\n").endswith("payorch demo: stopped on SIGINT; no payments were in flight")
    )
    assert running.err.read_text() == ""  # the server's log is in DATA/demo.log, not the terminal
    assert (data / "payorch.duckdb").is_file()
    assert '"stopped on SIGINT; no payments were in flight"' in (data / "demo.log").read_text()
    assert not (data / "reports").exists()  # nothing writes reports yet: no empty folder pretends


def test_demo_on_a_port_in_use_is_a_one_line_error_saying_how_to_run_another(tmp_path: Path) -> None:
    """A second `make demo` (the first still running) said only that the port was in use: `make
    demo` takes no options, and the newcomer had to find --port, then --data (the first demo
    holds its database), in the README."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(PAYORCH), "demo", "--port", str(port), "--data", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PATH": BARE_PATH},
        )
    other = port + 1 if port < 65535 else port - 1
    assert done.returncode == 2
    assert done.stderr == (
        f"payorch demo: cannot listen on 127.0.0.1:{port}: Address already in use: is a payorch demo "
        f"running already? Stop it (Ctrl-C), or run another beside it: {PAYORCH} demo --port {other} "
        f"--data {tmp_path / 'data'}{other}\n"
    )
    assert done.stdout == ""
    assert not (tmp_path / "data").exists()  # no empty database or log left behind


@pytest.mark.parametrize("taken", ["port", "database"])
def test_a_failed_demo_leaves_its_reason_in_its_log(tmp_path: Path, taken: str) -> None:
    """A data folder that was there keeps DATA/demo.log, which just stopped: the reason was on the
    terminal only."""
    data = tmp_path / "data"
    data.mkdir()
    earlier = b'{"event": "an earlier run"}\n'
    (data / "demo.log").write_bytes(earlier)
    Writer(data / FILE_NAME).close()
    with socket.socket() as listening, duckdb.connect(str(data / FILE_NAME)) as held:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1] if taken == "port" else free_port()
        if taken == "port":
            held.close()  # only the port is taken
        done = subprocess.run(
            [str(PAYORCH), "demo", "--port", str(port), "--data", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    reason = done.stderr.removeprefix("payorch demo: ").rstrip("\n")
    assert done.returncode == 2, done.stderr
    assert reason.startswith("cannot listen on" if taken == "port" else "cannot open the database")
    log = (data / "demo.log").read_bytes()
    assert log.startswith(earlier)
    last = orjson.loads(log.splitlines()[-1])
    assert (last["level"], last["logger"], last["event"]) == ("error", "payorch.serve", reason)


def test_demo_takes_the_instance_its_refusal_of_a_moved_folder_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo cut short (its data folder holding a payment in flight), then moved (the clone renamed,
    ./data copied) is refused, as `payorch serve` refuses it, told to start with --take-over
    INSTANCE or PAYORCH_TAKE_OVER: `payorch demo` took neither ("No such option: --take-over",
    the variable unread), so the folder could not be started again at all."""
    data = tmp_path / "data"
    asyncio.run(_left_in_flight(data, "host-elsewhere"))
    instance = _owners(data)[-1][0]
    command = ["demo", "--data", str(data), "--port", str(free_port())]
    exits = take_over_attempts(command, monkeypatch)
    refusals = capsys.readouterr().err.splitlines()

    assert exits == [2, 2, 2]
    assert len(refusals) == 3, refusals
    assert refusals[0].startswith(f"payorch demo: the data folder {data.resolve()} was last started by ")
    assert f"start with --take-over {instance} (PAYORCH_TAKE_OVER={instance})" in refusals[0]
    assert "(--take-over '0123456789abcdef' names another instance)" in refusals[1]
    assert "(--take-over 'fedcba9876543210' names another instance)" in refusals[2]


def _killed(number: int, _: object) -> None:
    raise Killed(number)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_as_the_demo_loads_is_a_line_and_exit_0(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    number: signal.Signals,
) -> None:
    """SIGTERM or SIGHUP while the demo loaded the server's modules and its config (about 1.2 s,
    before its start takes the signals) killed it without a word, exit 143 or 129, where a moment
    later it stops with a line and exit 0. Here it comes as the sample config is read."""
    data = tmp_path / "data"

    def sample_config_read_when_stopped() -> PlatformConfig:
        signal.raise_signal(number)
        return load_sample_config()

    monkeypatch.setattr(demo_module, "load_sample_config", sample_config_read_when_stopped)
    previous = signal.signal(number, _killed)  # the default would end the test's process
    try:
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--port", str(free_port()), "--data", str(data)])
        put_back = signal.getsignal(number)
    finally:
        signal.signal(number, previous)

    assert (exited.value.code, capsys.readouterr()) == (
        0,
        (f"payorch demo: stopped on {number.name} while starting, before it took requests\n", ""),
    )
    assert not data.exists()  # nothing made
    assert put_back is _killed
