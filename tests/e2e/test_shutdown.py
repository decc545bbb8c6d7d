"""SIGTERM while a payment is in flight: the server takes no new requests, lets the payment end
and answers it, commits everything, and exits cleanly; after a restart the payment is there with
all its events."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.e2e.server import SLOW, start_server


def test_sigterm_lets_a_payment_in_flight_end_and_keeps_it(tmp_path: Path) -> None:
    server = start_server(tmp_path, log_name="server-1.log")
    answers: list[httpx.Response] = []

    def slow_payment() -> None:  # m_slow's processor takes about 1.5 s
        headers = {**SLOW, "Idempotency-Key": f"shutdown-{uuid.uuid4()}"}
        answers.append(
            httpx.post(
                f"{server.url}/v1/payments",
                json={"amount": 500, "currency": "USD"},
                headers=headers,
                timeout=30,
            )
        )

    paying = threading.Thread(target=slow_payment)
    paying.start()
    time.sleep(0.5)  # the payment is at its processor
    server.process.send_signal(signal.SIGTERM)
    paying.join(30)
    assert server.process.wait(30) == 0
    assert "Application shutdown complete." in server.log()
    assert "Traceback" not in server.log()

    assert [answer.status_code for answer in answers] == [200], [answer.text for answer in answers]
    payment_id = answers[0].json()["payment_id"]
    again = start_server(tmp_path, log_name="server-2.log")
    try:
        stored = httpx.get(f"{again.url}/v1/payments/{payment_id}", headers=SLOW, timeout=10)
    finally:
        again.stop()
    nothing = "recovery: 0 interrupted payments, 0 finished, 0 attempts settled with their processors, 0 left"
    assert nothing in again.log()  # nothing was left half done, and the start says so
    assert stored.status_code == 200
    assert stored.json()["status"] == answers[0].json()["status"] == "succeeded"
    assert [event["type"] for event in stored.json()["events"]][-1] == "PaymentCompleted"
