"""Running the API under uvicorn: what ``payorch serve`` does after parsing its options."""

from __future__ import annotations

import logging
import os
import socket
import sys
from functools import partial
from pathlib import Path

import uvicorn

from engine.config import PlatformConfig
from engine.errors import PayorchError
from ingest.api.app import create_app
from ingest.api.reports import ReportFormat
from ingest.api.settings import Settings
from ingest.observe.logs import DirectHandler
from ingest.observe.telemetry import GlobalTags
from ingest.store.reads import ReportTables, Window


class ServeError(Exception):
    """The service could not start; the message is one line for the operator."""


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a one-line error, not uvicorn's
    log line and exit code 3."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _render_report(
    config: PlatformConfig, tables: ReportTables, window: Window, output: ReportFormat
) -> bytes:
    # Polars and the analytics load with the first report asked for, not at every start.
    from payorch.report import render_tables  # noqa: PLC0415

    return render_tables(config, tables, window, output)


def run_server(config: PlatformConfig, data_dir: Path, host: str, port: int) -> None:
    """Build the app over ``config`` and serve it until SIGINT/SIGTERM (which drain payments)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServeError(f"cannot create the data folder {data_dir}: {exc.strerror}") from None
    settings = Settings(
        config=config,
        data_dir=data_dir,
        environ=dict(os.environ),
        environment=os.environ.get("PAYORCH_ENVIRONMENT", "development"),
        log_stream=sys.stderr.buffer,  # JSON lines (ingest.observe.logs)
        report_renderer=partial(_render_report, config),
    )
    try:
        app = create_app(settings)
    except (PayorchError, OSError) as exc:
        raise ServeError(str(exc)) from None
    # The app pipes its loggers' records off the event loop while it runs (ingest.observe.logs);
    # this handler writes what comes before and after, in the same JSON form.
    root = logging.getLogger()
    root.addHandler(DirectHandler(sys.stderr.buffer, GlobalTags(settings.environment).as_dict()))
    root.setLevel(logging.INFO)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=None,  # uvicorn's records go to the app's JSON log pipe instead
            access_log=False,
            http="httptools",
            timeout_graceful_shutdown=int(settings.shutdown_grace_s),
            server_header=False,
        )
    )
    server.run(sockets=[_listen(host, port)])
