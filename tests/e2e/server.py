"""A real payorch server process for end-to-end tests: ``payorch serve`` under uvicorn on a free
port, with its own config file and data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ingest.ledger_journal import FILE_NAME, read_journal

CONFIG = """
admin_api_keys: [adm_e2e_admin]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_e2e_acme]
    default_currency: USD
    partial_policy: all_or_nothing
    timeout_ms: 2000
    retry: {max_attempts: 2, base_delay_ms: 5, max_delay_ms: 20}
    routing:
      - method: apple_pay
        max_amount_cents: 6000
        processors: [applepay_sim]
      - method: card
        processors: [stripe_sim]
  - merchant_id: m_slow
    api_keys: [sk_e2e_slow]
    default_currency: USD
    timeout_ms: 5000
    routing:
      - method: card
        processors: [slow_sim]
  - merchant_id: m_globex
    api_keys: [sk_e2e_globex]
    default_currency: EUR
    partial_policy: allow_partial
    routing:
      - method: card
        processors: [stripe_sim]
processors:
  - id: applepay_sim
    kind: simulated
    seed: 7
    latency_ms: {p50: 40, p99: 80}
  - id: stripe_sim
    kind: simulated
    seed: 42
    latency_ms: {p50: 40, p99: 80}
  - id: slow_sim
    kind: simulated
    seed: 3
    latency_ms: {p50: 1500, p99: 1800}
"""

ACME = {"Authorization": "Bearer sk_e2e_acme"}
GLOBEX = {"Authorization": "Bearer sk_e2e_globex"}
SLOW = {"Authorization": "Bearer sk_e2e_slow"}  # a merchant whose processor takes about 1.5 s
ADMIN = {"Authorization": "Bearer adm_e2e_admin"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def ledger(self) -> list[dict[str, object]]:
        """The simulated processors' books, read from their journal file."""
        return read_journal(self.data_dir / FILE_NAME)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    workdir: Path,
    config: str = CONFIG,
    log_name: str = "server.log",
    env: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
) -> Server:
    """``payorch serve`` with ``options`` besides its config, data folder and port, once it answers."""
    config_path = workdir / "payorch.yaml"
    config_path.write_text(config)
    data_dir = workdir / "data"
    log_path = workdir / log_name
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "payorch", "serve", "--config", str(config_path)),
                *("--data", str(data_dir), "--port", str(port)),
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"payorch serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"payorch serve did not answer /healthz within 30 s:\n{server.log()}")
