"""``payorch demo``: the API server on the sample configuration, fed simulated merchant traffic.

:func:`run_demo` runs what ``payorch serve`` runs (the same app over ``DATA/payorch.duckdb``, the
same signal handling and exit code) on the sample configuration, with its JSON log appended to
``DATA/demo.log`` so that the terminal shows what a user needs. Once the server takes requests, a
thread of the same process (the server's :data:`~payorch.server.Companion`) sends it the fixed-seed
traffic of :mod:`payorch.traffic` over HTTP, one request at a time: payments of both sample
merchants, then complaints about some of them. It then prints a summary (payments by status,
complaints filed) and what to open with the sample keys, and the server keeps serving until
Ctrl-C, SIGTERM or SIGHUP. The dashboard, ``payorch simulate``, ``payorch complaints import`` and the
report schedule (``DATA/reports``) are not built yet, and the demo says so rather than pretending.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from engine.config import PlatformConfig
from ingest.config_file import load_sample_config
from payorch.server import (
    PortInUseError,
    ServeError,
    Stopped,
    deployment_environment,
    log_failed_start,
    run_server,
)
from payorch.traffic import DEMO_SEED, Answered, PaymentRequest, demo_complaints, demo_payments

HOST = "127.0.0.1"
LOG_FILE = "demo.log"
#: Per request: a payment's retries and fallbacks take a few seconds at worst.
TIMEOUT_S = 30.0
Echo = Callable[[str], None]
#: The order statuses are counted in; ``rejected`` is a 422 (nothing charged).
STATUSES = ("succeeded", "partially_succeeded", "failed", "rejected")
MAX_PORT = 65535
#: The last line printed once the traffic is sent.
SERVING = "Serving until Ctrl-C (or SIGTERM or SIGHUP)."


@dataclass
class Traffic:
    """What the demo's traffic got: payments by status (``rejected``: 422; ``HTTP <code>`` for
    any other refusal), idempotent replays, complaints filed by category, and every answer."""

    payments: Counter[str] = field(default_factory=Counter)
    replays: int = 0
    complaints: Counter[str] = field(default_factory=Counter)
    answers: list[Answered] = field(default_factory=list)

    def example(self) -> Answered | None:
        """A payment worth looking up: the first split one, else the first processed."""
        processed = [answer for answer in self.answers if answer.payment_id is not None]
        return next((answer for answer in processed if answer.steps > 1), next(iter(processed), None))


def send_traffic(
    client: httpx.Client, config: PlatformConfig, stopping: Callable[[], bool]
) -> Traffic | None:
    """Send the demo's payments, then its complaints, through ``client`` (the service's base URL
    set) with the sample keys; ``None`` when ``stopping()`` said to stop before the end."""
    keys = _merchant_keys(config)
    traffic = Traffic()
    for request in demo_payments(config, f"demo-{secrets.token_hex(3)}"):
        if stopping():
            return None
        answer = _pay(client, keys[request.merchant_id], request)
        if answer.headers.get("idempotent-replayed") == "true":
            traffic.replays += 1
            continue
        traffic.answers.append(_answered(request, answer))
        traffic.payments[traffic.answers[-1].status] += 1
    for complaint in demo_complaints(traffic.answers):
        if stopping():
            return None
        bearer = {"Authorization": f"Bearer {keys[complaint.merchant_id]}"}
        filed = client.post("/v1/complaints", json=complaint.body, headers=bearer)
        if filed.status_code in (200, 201):
            traffic.complaints[str(complaint.body["category"]).lower()] += 1
    return traffic


def _merchant_keys(config: PlatformConfig) -> dict[str, str]:
    return {str(merchant.merchant_id): merchant.api_keys[0] for merchant in config.merchants}


def _pay(client: httpx.Client, key: str, request: PaymentRequest) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if request.idempotency_key is not None:
        headers["Idempotency-Key"] = request.idempotency_key
    if request.form:
        return client.post("/v1/payments", data=request.body, headers=headers)
    return client.post("/v1/payments", json=request.body, headers=headers)


def _answered(request: PaymentRequest, answer: httpx.Response) -> Answered:
    if answer.status_code == 200:
        result = answer.json()
        return Answered(
            request, str(result["status"]), str(result["payment_id"]), len(result["step_results"])
        )
    return Answered(request, "rejected" if answer.status_code == 422 else f"HTTP {answer.status_code}")


def summary(traffic: Traffic) -> list[str]:
    """What the traffic got: payments by status, replays, complaints by category."""
    sent = sum(traffic.payments.values()) + traffic.replays
    order = {status: n for n, status in enumerate(STATUSES)}
    counts = sorted(traffic.payments.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    statuses = ", ".join(f"{count} {status}{' (422)' * (status == 'rejected')}" for status, count in counts)
    categories = ", ".join(f"{count} {category}" for category, count in sorted(traffic.complaints.items()))
    repeats = "repeat" if traffic.replays == 1 else "repeats"
    return [
        f"  payments: {sent} sent: {statuses}; {traffic.replays} idempotent {repeats} replayed",
        f"  complaints filed: {sum(traffic.complaints.values())} ({categories or 'none'})",
    ]


def command_name(argv0: str, on_path: str | None, python: str) -> str:
    """How the user runs payorch again from the same folder: ``payorch`` when the one on PATH
    (``on_path``) is this program, else the path this one was started by (``.venv/bin/payorch``
    after ``make demo``, whose ``.venv/bin`` is on no PATH), or ``python -m payorch``."""
    program = Path(argv0)
    if on_path is not None and Path(on_path).resolve() == program.resolve():
        return "payorch"
    if program.name == "__main__.py":
        return shlex.join([python, "-m", "payorch"])
    return shlex.quote(argv0)


def what_to_open(
    url: str, config: PlatformConfig, data_dir: Path, example: Answered | None, command: str
) -> list[str]:
    """The URLs and commands to try with the sample keys, ``example`` the payment to look up,
    ``command`` how payorch is run (:func:`command_name`)."""
    admin = config.admin_api_keys[0]
    keys = _merchant_keys(config)
    lines = [
        f"Open (sample keys: merchants {', '.join(keys.values())}; admin {admin}):",
        f"  API docs:    {url}/docs",
        f"  metrics:     {url}/metrics",
    ]
    if example is not None and example.payment_id is not None:
        key = keys[example.request.merchant_id]
        lines.append(f"  a payment:   curl -s {url}/v1/payments/{example.payment_id} {_bearer(key)}")
    return [
        *lines,
        f"  violations:  curl -s {url}/v1/violations {_bearer(admin)}",
        f"  report:      curl -s {url}/v1/reports/retrospective {_bearer(admin)}",
        f"               {command} report --api {url} --api-key {admin}",
        "",
        "Not built yet: the dashboard (port 8501), `payorch simulate`, `payorch complaints import`",
        "(POST /v1/complaints files them one at a time) and the scheduled reports",
        f"(nothing is written to {data_dir / 'reports'}; `payorch report` makes one on demand).",
    ]


def beside(command: str, port: int, data_dir: Path) -> str:
    """What to do when the demo's port is taken, most likely by a demo still running: stop that
    one, or run another on the next port over a data folder of its own (``data_dir`` is held by
    the first, whose database a second process cannot open)."""
    other = port + 1 if port < MAX_PORT else port - 1
    again = shlex.join(["demo", "--port", str(other), "--data", f"{data_dir}{other}"])
    return f"is a payorch demo running already? Stop it (Ctrl-C), or run another beside it: {command} {again}"


def _bearer(key: str) -> str:
    return f"-H 'Authorization: Bearer {key}'"


def run_demo(
    data_dir: Path,
    port: int,
    echo: Echo,
    command: str,
    owner: tuple[str | None, str | None] = (None, None),
    noted: Sequence[str] = (),
) -> Stopped:
    """Serve the sample configuration on ``port`` over ``data_dir``, send the demo's traffic once
    it takes requests and print what to open (``command`` names payorch in it), until
    SIGINT/SIGTERM/SIGHUP; raises ``ServeError`` as :func:`~payorch.server.run_server` does.
    ``owner``: the ``take_over`` and ``instance_name`` of ``payorch serve``, since a demo's folder
    moved with payments in flight is refused as a served one is, and the refusal names them.
    ``noted``: SIGTERM and SIGHUP noted while the command loaded, which end the demo before its
    start begins (:func:`~payorch.server.run_server`), with the same last line."""
    config = load_sample_config()
    url = f"http://{HOST}:{port}"

    def traffic(stopping: Callable[[], bool]) -> None:
        # The server's log is the server's: httpx's line per request sent from here stays out.
        sender = threading.get_ident()
        logging.getLogger("httpx").addFilter(lambda record: record.thread != sender)
        echo(f"payorch demo: serving the sample configuration at {url}")
        echo(f"  data in {data_dir / 'payorch.duckdb'}, the server's JSON log in {data_dir / LOG_FILE}")
        echo(f"  sending simulated merchant traffic (seed {DEMO_SEED}) ...")
        sent: Traffic | None = None
        try:
            with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
                sent = send_traffic(client, config, stopping)
        except Exception as error:  # noqa: BLE001 - a thread's last resort: one line, and serve on
            if not stopping():
                echo(f"  the demo traffic failed ({type(error).__name__}: {error}); the server serves on")
        if stopping():
            return  # the server says how it stopped on its way out
        lines = [] if sent is None else [*summary(sent), ""]
        lines += what_to_open(url, config, data_dir, None if sent is None else sent.example(), command)
        for line in [*lines, "", SERVING]:
            echo(line)

    try:
        stopped = run_server(
            config,
            data_dir,
            HOST,
            port,
            log_file=LOG_FILE,
            companion=traffic,
            take_over=owner[0],
            instance_name=owner[1],
            noted=noted,
        )
    except PortInUseError as error:
        # `make demo` takes no options: a second one (the first still running) said only that the
        # port was in use, leaving the newcomer to find out that --port exists, and --data too.
        message = f"{error}: {beside(command, port, data_dir)}"
        _log_failure(data_dir / LOG_FILE, message)
        raise ServeError(message) from None
    except ServeError as error:
        _log_failure(data_dir / LOG_FILE, str(error))
        raise
    except Exception as error:
        _log_failure(data_dir / LOG_FILE, f"internal error: {type(error).__name__}; please report it")
        raise
    echo(f"payorch demo: {stopped.summary()}")
    return stopped


def _log_failure(path: Path, message: str) -> None:
    """Why the demo ended, as the last line of its log (the terminal shows it too): its log just
    stopped. Not when the data folder is gone, as a start that failed leaves a folder it made."""
    if not path.parent.is_dir():
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "ab") as log:
            log_failed_start(message, log, deployment_environment(os.environ))
    except OSError:
        pass  # the terminal has it
