"""The last line of a ``payorch serve`` stopped after its app started (migrations and crash
recovery done) but before it said it listened: it took no request, so it says the start was
stopped, not that payments were drained or cut short."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import orjson
import pytest

from ingest.config_file import load_sample_config
from payorch.server import run_server


class _SignalsAfterRecovery(logging.Filter):
    """Sends ``signals`` to this process as crash recovery says how it went: the app's start has
    then run to its end, and uvicorn has yet to take requests."""

    def __init__(self, signals: tuple[signal.Signals, ...]) -> None:
        super().__init__()
        self.signals = signals

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("recovery:"):
            for number in self.signals:
                signal.raise_signal(number)
        return True


@pytest.mark.parametrize(
    ("signals", "complete", "said"),
    [
        # It said "stopped on SIGTERM; no payments were in flight", as after serving.
        ((signal.SIGTERM,), True, "stopped on SIGTERM while starting, before it took requests"),
        # It said "stopped on SIGINT without draining: payments in flight were cut short".
        (
            (signal.SIGINT, signal.SIGINT),
            False,
            "stopped on SIGINT while starting, before it took requests, and forced without closing "
            "the store (no payments were in flight)",
        ),
        (
            (signal.SIGTERM, signal.SIGINT),
            False,
            "stopped on SIGTERM while starting, before it took requests, and SIGINT forced it without "
            "closing the store (no payments were in flight)",
        ),
    ],
)
def test_a_stop_after_recovery_before_listening_says_the_start_was_stopped(
    tmp_path: Path, signals: tuple[signal.Signals, ...], complete: bool, said: str
) -> None:
    data = tmp_path / "data"
    hook = _SignalsAfterRecovery(signals)
    api_log = logging.getLogger("payorch.api")
    api_log.addFilter(hook)
    try:
        stopped = run_server(load_sample_config(), data, "127.0.0.1", 0, log_file="serve.log")
    finally:
        api_log.removeFilter(hook)

    lines = [orjson.loads(line) for line in (data / "serve.log").read_bytes().splitlines()]
    assert (stopped.complete, stopped.summary()) == (complete, said)
    assert lines[-1]["event"] == said
    assert not any(line["event"].startswith("listening on") for line in lines)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
