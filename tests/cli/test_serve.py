"""``payorch serve`` stops on SIGTERM or SIGINT by draining the payments in flight, and says how it
went in its last log line: exit 0 after a complete drain (uvicorn used to die by the signal, rc
143, or end in ``payorch: aborted``, rc 1), exit 1 when a second Ctrl-C cut the drain short."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import termios
import threading
import time
import traceback
import uuid
from functools import partial
from pathlib import Path
from typing import IO

import duckdb
import httpx
import orjson
import pytest

from ingest.api.parts import Shutdown
from ingest.api.settings import Settings
from ingest.config_file import load_sample_config, parse_config
from payorch import server as server_module
from payorch.cli import main
from payorch.server import ServeError, Stopped, cut_short_without_traceback, run_server
from tests.cli.test_report_cut_short import Killed
from tests.e2e.server import ACME, CONFIG, SLOW, Server, free_port, start_server
from tests.ingest.store.test_copied_folder import _left_in_flight, _owners, take_over_attempts
from tests.ingest.store.test_recovery_at_start import CONFIG as RECOVERY_CONFIG


def last_line(server: Server) -> tuple[str, str, str]:
    """The level, logger and event of the last log line (every line is JSON)."""
    last = orjson.loads(server.log().rstrip("\n").rsplit("\n", 1)[-1])
    return last["level"], last["logger"], last["event"]


def pay_slowly(server: Server, answers: list[httpx.Response]) -> threading.Thread:
    """A payment whose processor takes about 1.5 s, under way when this returns."""

    def pay() -> None:
        headers = {**SLOW, "Idempotency-Key": f"serve-{uuid.uuid4()}"}
        body = {"amount": 500, "currency": "USD"}
        answers.append(httpx.post(f"{server.url}/v1/payments", json=body, headers=headers, timeout=30))

    paying = threading.Thread(target=pay)
    paying.start()
    # Until the payment is at its processor: its StepAttempted is logged before the call. A fixed
    # 0.5 s was not always enough on a loaded machine, and the stop came before the payment.
    deadline = time.monotonic() + 30
    while '"event":"StepAttempted"' not in server.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    return paying


def test_serve_says_where_it_listens_once_it_takes_requests(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    server.stop()
    lines = [orjson.loads(line) for line in server.log().splitlines()]

    events = [line["event"] for line in lines if line["logger"] == "payorch.serve"]
    assert f"listening on {server.url}" in events


def test_serve_warns_that_a_configured_escalation_webhook_is_never_called(tmp_path: Path) -> None:
    """Escalations are not built: a webhook_url was taken without a word, and never called."""
    path = "hooks-path-7f3a"  # a webhook URL often holds a secret: it is not shown
    webhook = f"escalations: {{webhook_url: 'http://127.0.0.1:9/{path}', max_attempts: 2}}\n"
    server = start_server(tmp_path, CONFIG + webhook)
    server.stop()
    lines = [orjson.loads(line) for line in server.log().splitlines()]
    warnings = [line["event"] for line in lines if line["level"] == "warning"]
    assert "escalations are not built yet: escalations.webhook_url is never called, " in " ".join(warnings)
    assert path not in server.log()


def test_serve_warns_that_it_runs_one_process_whatever_web_concurrency_asks(tmp_path: Path) -> None:
    """uvicorn's variable for its worker count was taken without a word: one process served."""
    server = start_server(tmp_path, env={"WEB_CONCURRENCY": "4"})
    try:
        answered = httpx.get(f"{server.url}/readyz", timeout=10).status_code
    finally:
        server.stop()
    lines = [orjson.loads(line) for line in server.log().splitlines()]
    warnings = [line["event"] for line in lines if line["level"] == "warning"]
    assert answered == 200
    assert "WEB_CONCURRENCY=4 is not taken: payorch serve runs one process" in " ".join(warnings)


def test_a_connection_idle_past_5_s_lasts_the_keep_alive_timeout(tmp_path: Path) -> None:
    # uvicorn's 5 s was shorter than a load balancer's idle timeout (60 s on AWS ALB): the balancer
    # reused connections the server was closing (502s, POSTs of unknown fate).
    server = start_server(tmp_path, options=["--keep-alive-timeout", "30"])
    port = int(server.url.rsplit(":", 1)[1])
    answers: list[bytes] = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            for idle_s in (0, 6):  # the second past uvicorn's default of 5 s
                time.sleep(idle_s)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = b""
                while not answer.endswith(b'{"status":"ok"}') and (piece := sock.recv(65536)):
                    answer += piece
                answers.append(answer)
    finally:
        server.stop()
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 200 OK"] * 2


def test_a_keep_alive_timeout_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--keep-alive-timeout", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "payorch serve: error: Invalid value for '--keep-alive-timeout': 0 is not in the range 1<=x<=3600.\n"
    )


def test_behind_a_proxy_prefix_the_docs_and_openapi_name_the_root_path(tmp_path: Path) -> None:
    # A proxy serving the API under /payorch/ (and stripping it) had docs pages that loaded their
    # scripts and /openapi.json from the host's root, not the service: blank pages.
    server = start_server(tmp_path, options=["--root-path", "/payorch/"])
    try:
        docs = httpx.get(f"{server.url}/docs").text
        redoc = httpx.get(f"{server.url}/redoc").text
        openapi = httpx.get(f"{server.url}/openapi.json").json()
        health = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert "url: '/payorch/openapi.json'" in docs
    assert 'src="/payorch/docs/assets/swagger-ui-bundle.js"' in docs
    assert 'spec-url="/payorch/openapi.json"' in redoc
    assert openapi["servers"] == [{"url": "/payorch"}]
    assert health.status_code == 200  # a probe that does not pass the proxy finds it as before


def test_behind_a_proxy_prefix_each_route_keeps_its_rules(tmp_path: Path) -> None:
    # uvicorn puts the prefix in front of every request's path (/payorch/v1/payments): the front
    # compared that with its routes' paths, so the payment route's own checks and the public
    # routes' leniency were skipped behind the proxy, and a 404 named no route.
    server = start_server(tmp_path, options=["--root-path", "/payorch"])
    keys = [("Idempotency-Key", "proxy-1"), ("Idempotency-Key", "proxy-2")]
    try:
        payment = httpx.post(
            f"{server.url}/v1/payments", json={"amount": 500}, headers=[*ACME.items(), *keys]
        )
        twice = [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
        health = httpx.get(f"{server.url}/healthz", headers=twice)
        slashed = httpx.get(f"{server.url}/v1/payments/", headers=ACME)
        unstripped = httpx.get(f"{server.url}/payorch/healthz")  # a proxy that passes the prefix on
    finally:
        server.stop()
    assert (payment.status_code, payment.json()["errors"][0]["code"]) == (400, "conflicting_headers")
    assert not server.ledger()  # nothing charged under either key
    assert health.status_code == 200
    assert slashed.json()["detail"] == (
        "No route matches this path; /payorch/v1/payments (without the trailing slash) is one."
    )
    assert unstripped.json()["detail"] == (
        "No route matches this path: it begins with /payorch, the prefix the service is served under "
        "(payorch serve --root-path), which the reverse proxy must strip."
    )


def test_behind_a_proxy_prefix_problem_type_links_name_it(tmp_path: Path) -> None:
    # A client following a problem's type behind the proxy asked the host's /problems/...: a 404.
    server = start_server(tmp_path, options=["--root-path", "/payorch"])
    port = int(server.url.rsplit(":", 1)[1])
    try:
        refused = httpx.post(f"{server.url}/v1/payments", json={"amount": -5}, headers=ACME)
        unknown = httpx.get(f"{server.url}/v1/payments/pay_none", headers=ACME)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")  # refused by the connection
            raw = b""
            while piece := sock.recv(65536):
                raw += piece
        types = [
            refused.json()["type"],
            unknown.json()["type"],
            orjson.loads(raw.split(b"\r\n\r\n")[1])["type"],
        ]
        # The proxy strips the prefix of what the client asks for.
        pages = [httpx.get(f"{server.url}{link.removeprefix('/payorch')}") for link in types]
    finally:
        server.stop()
    assert types == [
        "/payorch/problems/validation_failed",
        "/payorch/problems/not_found",
        "/payorch/problems/http_version_not_supported",
    ]
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert '<a href="/payorch/docs">' in pages[0].text


@pytest.mark.parametrize(
    ("root_path", "problem"),
    [
        ("payorch", "must start with one / (as /payorch)"),
        ("/pay orch", "must be a plain path: no spaces, %, ?, # or control characters"),
        ("/a//b", "must not have an empty, . or .. segment"),
    ],
)
def test_a_root_path_that_is_no_plain_path_is_a_usage_error(
    root_path: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--root-path", root_path])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"payorch serve: error: Invalid value for '--root-path': {root_path!r} {problem}\n"
    )


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_with_nothing_in_flight_exits_0(tmp_path: Path, number: signal.Signals) -> None:
    server = start_server(tmp_path)
    server.process.send_signal(number)

    assert server.process.wait(30) == 0, server.log()
    assert last_line(server) == (
        "info",
        "payorch.serve",
        f"stopped on {number.name}; no payments were in flight",
    )
    assert "Traceback" not in server.log()
    assert "aborted" not in server.log()


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_drains_the_payment_in_flight_and_exits_0(tmp_path: Path, number: signal.Signals) -> None:
    server = start_server(tmp_path)
    answers: list[httpx.Response] = []
    paying = pay_slowly(server, answers)
    server.process.send_signal(number)
    paying.join(30)

    assert server.process.wait(30) == 0, server.log()
    assert [answer.status_code for answer in answers] == [200]
    assert last_line(server) == (
        "info",
        "payorch.serve",
        f"stopped on {number.name}; drained 1 payment in flight",
    )
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("below", ["", "sub"])
def test_a_data_folder_through_a_link_to_nowhere_is_said_so(tmp_path: Path, below: str) -> None:
    """A link whose folder was moved (or is not mounted) was "File exists"."""
    (tmp_path / "data").symlink_to(tmp_path / "moved")
    data = tmp_path / "data" / below if below else tmp_path / "data"

    with pytest.raises(ServeError) as refused:
        run_server(load_sample_config(), data, "127.0.0.1", 0)

    assert str(refused.value) == (
        f"cannot create the data folder {data}: {tmp_path / 'data'} is a link to {tmp_path / 'moved'}, "
        "which does not exist"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]


def _killed(number: int, _: object) -> None:
    raise Killed(number)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_before_the_start_begins_is_a_line_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], number: signal.Signals
) -> None:
    """SIGTERM or SIGHUP while serve loaded its modules or read its config (about 1.3 s, before
    the start takes the signals) killed it without a word, exit 143 or 129, where a moment later
    it stops with a line and exit 0. Here it comes as the config is read (a pipe)."""
    config = tmp_path / "config.yaml"
    os.mkfifo(config)
    data = tmp_path / "data"
    pipe = os.open(config, os.O_RDWR)  # its writer from now on: serve reads until it is closed
    os.write(pipe, CONFIG.encode())

    def stop_while_the_config_is_read() -> None:
        while fcntl.ioctl(pipe, termios.FIONREAD, bytes(4)) != bytes(4):
            time.sleep(0.002)  # until serve has read the config and waits for the pipe's end
        signal.pthread_kill(threading.main_thread().ident or 0, number)
        os.close(pipe)

    previous = signal.signal(number, _killed)  # the default would end the test's process
    writer = threading.Thread(target=stop_while_the_config_is_read, daemon=True)
    writer.start()
    try:
        with pytest.raises(SystemExit) as exited:
            main(["serve", "--config", str(config), "--data", str(data), "--port", str(free_port())])
        put_back = signal.getsignal(number)
    finally:
        writer.join(10)
        signal.signal(number, previous)

    assert exited.value.code == 0
    line = orjson.loads(capsys.readouterr().err)
    assert (line["level"], line["logger"], line["event"]) == (
        "info",
        "payorch.serve",
        f"stopped on {number.name} while starting, before it took requests",
    )
    assert not data.exists()
    assert put_back is _killed


def test_a_ctrl_c_while_starting_in_a_new_folder_stops_the_start_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """Python's Ctrl-C (KeyboardInterrupt) cut the start short wherever it was, before uvicorn
    took the signals: ``payorch: aborted`` (or an internal error, when DuckDB was running a
    migration), and the new data folder left half made. The start now ends before it serves,
    as a stop does, and removes the folder it made."""
    data = tmp_path / "new" / "data"
    fifo = tmp_path / "log"  # the log file: opening it waits for its reader, here while starting
    os.mkfifo(fifo)
    lines: list[bytes] = []

    def stop_while_starting() -> None:
        while not data.exists():  # made: the start has begun
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGINT)
        with fifo.open("rb") as log:
            lines.extend(log.read().splitlines())

    helper = threading.Thread(target=stop_while_starting, daemon=True)
    helper.start()
    try:
        stopped = run_server(load_sample_config(), data, "127.0.0.1", 0, log_file=str(fifo))
    except KeyboardInterrupt:
        fifo.open("wb").close()  # the helper's reader ends
        pytest.fail(f"Ctrl-C interrupted the start; left behind: {sorted(tmp_path.rglob('*'))}")
    helper.join(10)

    assert stopped.complete
    assert stopped.summary() == "stopped on SIGINT while starting, before it took requests"
    assert orjson.loads(lines[-1])["event"] == stopped.summary()
    assert not (tmp_path / "new").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_start_that_made_the_folder_and_lost_it_to_another_serve_leaves_that_one_its_files(
    tmp_path: Path,
) -> None:
    """Two `payorch serve` started at once on a new folder: the one that made the folder found
    the database held by the other and, as a failed start, removed the folder it had made, with
    the other's database, key secret and ledger in it while it served. It now leaves them."""
    data = tmp_path / "data"
    fifo = tmp_path / "log"  # the log file: opening it waits for its reader, once the folder is made
    os.mkfifo(fifo)
    other: list[Server] = []

    def the_other_starts_meanwhile() -> None:
        while not data.exists():  # made by the start below
            time.sleep(0.002)
        try:
            other.append(start_server(tmp_path))  # its folder: tmp_path / "data", as made
        finally:
            fifo.open("rb").close()  # the start below goes on, to the database the other holds

    helper = threading.Thread(target=the_other_starts_meanwhile, daemon=True)
    helper.start()
    try:
        with pytest.raises(ServeError, match="another process has it open"):
            run_server(load_sample_config(), data, "127.0.0.1", 0, log_file=str(fifo))
        helper.join(40)
        (server,) = other
        body = {"amount": 700, "currency": "USD"}
        paid = httpx.post(f"{server.url}/v1/payments", json=body, headers={**ACME, "Idempotency-Key": "both"})

        assert paid.status_code == 200
        assert {"payorch.duckdb", "idempotency-key.secret"} <= {path.name for path in data.iterdir()}
    finally:
        exits = [server.stop() for server in other]
    assert exits == [0]
    assert last_line(other[0])[2] == "stopped on SIGTERM; no payments were in flight"


@pytest.mark.parametrize(
    ("first", "said"),
    [
        (signal.SIGINT, "stopped on SIGINT without draining"),
        # Not "stopped on SIGTERM without draining": as if SIGTERM did not drain.
        (signal.SIGTERM, "stopped on SIGTERM, then SIGINT forced it, without draining"),
    ],
)
def test_a_ctrl_c_during_the_drain_cuts_it_short_names_both_signals_and_exits_1(
    tmp_path: Path, first: signal.Signals, said: str
) -> None:
    server = start_server(tmp_path)
    answers: list[httpx.Response] = []
    paying = pay_slowly(server, answers)
    server.process.send_signal(first)
    time.sleep(0.2)
    server.process.send_signal(signal.SIGINT)  # uvicorn: force quit
    paying.join(30)

    assert server.process.wait(30) == 1, server.log()
    assert last_line(server) == (
        "error",
        "payorch.serve",
        f"{said}: payments in flight were cut short (the next start settles them)",
    )
    assert "Traceback" not in server.log()


def test_serve_help_says_what_it_does_now(capsys: pytest.CaptureFixture[str]) -> None:
    """It used to say it "runs the report schedule", which is not built."""
    main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "runs the report schedule" not in help_text
    assert "The report schedule is not built yet." in help_text
    assert "until SIGINT, SIGTERM or SIGHUP, which drain the payments in flight and exit 0" in help_text


@pytest.mark.parametrize(
    ("stopped", "complete", "summary"),
    [
        (
            Stopped("SIGTERM", 3, Shutdown(drained=0, left=0, committed=True), 30.0),
            True,
            "stopped on SIGTERM; drained 3 payments in flight",
        ),
        (
            Stopped("SIGTERM", 3, Shutdown(drained=0, left=2, committed=True), 30.0),
            False,
            "stopped on SIGTERM, but 2 payments still in flight after 30 s were cut short "
            "(drained 1 payment in flight; the next start settles them)",
        ),
        (  # it said "1 payment ... were cut short (no payments were in flight; ... settles them)"
            Stopped("SIGTERM", 1, Shutdown(drained=0, left=1, committed=True), 30.0),
            False,
            "stopped on SIGTERM, but 1 payment still in flight after 30 s was cut short "
            "(none drained; the next start settles it)",
        ),
        (
            Stopped("SIGINT", 0, Shutdown(drained=0, left=0, committed=False), 30.0),
            False,
            "stopped on SIGINT, but the store could not commit every queued write "
            "(no payments were in flight)",
        ),
        (
            Stopped(None, 0, Shutdown(drained=2, left=0, committed=False, store_failure="the disk"), 30.0),
            False,
            "stopped: the disk; the next start settles the payments it cut short",
        ),
    ],
)
def test_a_stop_that_could_not_drain_everything_says_so(
    stopped: Stopped, complete: bool, summary: str
) -> None:
    """What the last log line says, and whether ``payorch serve`` exits 0, for the stops a test
    process cannot easily bring about (30 s of grace, a store that cannot commit)."""
    assert (stopped.complete, stopped.summary()) == (complete, summary)


def test_uvicorn_does_not_log_a_request_a_forced_stop_cancelled_with_a_traceback() -> None:
    def record(error: BaseException | None) -> logging.LogRecord:
        exc_info = None if error is None else (type(error), error, None)
        return logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application\n", (), exc_info
        )

    assert not cut_short_without_traceback(record(asyncio.CancelledError()))
    assert cut_short_without_traceback(record(ValueError("a fault of the app")))  # still logged
    assert cut_short_without_traceback(record(None))


def _traceback_of(error: BaseException) -> str:
    try:
        raise error
    except BaseException:  # noqa: BLE001 - what Starlette's lifespan formats
        return traceback.format_exc()


@pytest.mark.parametrize(
    ("error", "kept"), [(asyncio.CancelledError(), False), (RuntimeError("a fault of the app"), True)]
)
def test_uvicorn_does_not_log_the_traceback_of_a_lifespan_a_forced_stop_cancelled(
    error: BaseException, kept: bool
) -> None:
    # Starlette sends it as the text of lifespan.shutdown.failed; uvicorn logs that as an error
    # (seen once in a full run, under load: test_a_second_ctrl_c_cuts_the_drain_short_and_exits_1).
    text = _traceback_of(error)
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, text, None, None)
    assert cut_short_without_traceback(record) is kept


def test_serve_refuses_a_copied_folder_with_payments_in_flight_and_takes_the_instance_to_take_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder of a service on another host, copied mid-payment: `payorch serve` refuses in one
    line (exit 2) naming the instance to take over, and reads --take-over (or its variable)."""
    data = tmp_path / "data"
    asyncio.run(_left_in_flight(data, "host-elsewhere"))
    instance = _owners(data)[-1][0]
    (tmp_path / "payorch.yaml").write_text(RECOVERY_CONFIG)
    (tmp_path / "payorch.yaml").chmod(0o600)
    command = [
        "serve",
        "--config",
        str(tmp_path / "payorch.yaml"),
        "--data",
        str(data),
        "--port",
        str(free_port()),
    ]
    exits = take_over_attempts(command, monkeypatch)
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    events = [line["event"] for line in lines if line["level"] == "error"]

    assert exits == [2, 2, 2]
    assert len(events) == 3
    assert events[0].startswith(f"the data folder {data.resolve()} was last started by instance {instance} ")
    assert f"start with --take-over {instance} (PAYORCH_TAKE_OVER={instance})" in events[0]
    assert "(--take-over '0123456789abcdef' names another instance)" in events[1]
    assert "(--take-over 'fedcba9876543210' names another instance)" in events[2]


def test_a_stop_ends_in_bounded_time_when_the_log_reader_stopped_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log reader that stops reading (a stuck shipper, ``payorch serve 2>&1 | slow-consumer``
    paused) left SIGTERM's stop hanging for ever once the pipe was full: after the store had
    closed, the last lines waited on it. The stop now commits, closes the store and ends in
    bounded time; the lines the pipe could not take are dropped, counted in the store's last
    ``observer/dropped`` violation and said in the last line (which a reader may yet take)."""
    data = tmp_path / "data"
    fifo = tmp_path / "log"  # the log file: a pipe whose reader stops once the server listens
    os.mkfifo(fifo)
    port = free_port()
    # The log file stays open for the process's life (payorch.server._log_file): here the test's,
    # which closes it once its last line has failed, so no unclosed file outlives the test.
    opened: list[IO[bytes]] = []
    open_log_file = server_module._log_file

    def open_and_keep(path: Path) -> IO[bytes]:
        opened.append(open_log_file(path))
        return opened[-1]

    monkeypatch.setattr(server_module, "_log_file", open_and_keep)
    # The lines get 1 s to go out at the stop, not the served default of 5 s: the bound is the
    # same code, and the test spends 4 s less waiting on it.
    monkeypatch.setattr(server_module, "Settings", partial(Settings, log_close_s=1.0))
    listening = threading.Event()
    returned = threading.Event()
    rescued = threading.Event()  # the stop did not end while the pipe stayed full
    reader: list[int] = []
    answers: list[int] = []

    def read_until_listening_then_stop() -> None:
        descriptor = os.open(fifo, os.O_RDONLY)
        reader.append(descriptor)
        seen = b""
        while b"listening on" not in seen:
            seen += os.read(descriptor, 65536)
        listening.set()

    def fill_the_pipe_then_stop_the_server() -> None:
        listening.wait(30)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=ACME, timeout=10) as client:
                for _ in range(60):  # seven lines each, about 3 KB: the pipe (64 KiB) is full after 25
                    answer = client.post("/v1/payments", json={"amount": 500, "currency": "USD"})
                    answers.append(answer.status_code)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
        if not returned.wait(30):  # the stop hangs: read the pipe, so that the test ends and says so
            rescued.set()
            while os.read(reader[0], 1 << 20):
                pass

    helpers = [
        threading.Thread(target=read_until_listening_then_stop, daemon=True),
        threading.Thread(target=fill_the_pipe_then_stop_the_server, daemon=True),
    ]
    for helper in helpers:
        helper.start()
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)  # the test's client logs each request: not into the server's log
    try:
        stopped = run_server(parse_config(CONFIG), data, "127.0.0.1", port, log_file=str(fifo))
        returned.set()
    finally:
        httpx_log.setLevel(level)
        for helper in helpers:
            helper.join(40)
        os.close(reader[0])  # a line still being written fails: the writer's thread ends
        for stream in opened:
            stream.close()  # a line written after fails as well, and is counted as dropped

    assert answers == [200] * 60
    assert not rescued.is_set(), "the stop ended only once the test read the full pipe"
    assert stopped.complete, stopped.summary()
    assert stopped.log_lines_dropped > 0
    assert stopped.summary() == (
        "stopped on SIGTERM; no payments were in flight "
        f"({stopped.log_lines_dropped} log lines could not be written)"
    )
    with duckdb.connect(str(data / "payorch.duckdb"), read_only=True) as database:
        payments = database.execute("SELECT count(DISTINCT payment_id) FROM payments").fetchone()
        reports = database.execute(
            "SELECT message FROM violations WHERE contract_id = 'observer/dropped' ORDER BY seq"
        ).fetchall()
    assert payments == (60,)  # every payment answered is committed
    assert reports, "no observer/dropped violation recorded"
    assert "logs): the log stream failed" in reports[-1][0]
