"""The dashboard's way of reading (the service's analytics endpoints, as JSON and as Arrow) works
while the server is busy writing payments, and sees every payment it has answered."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from pyarrow import ipc

from tests.e2e.server import ACME, ADMIN, Server

WINDOW = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}


async def _pay_for(server: Server, seconds: float, answered: list[str]) -> None:
    async def client(http: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds
        while loop.time() < stop:
            headers = {**ACME, "Idempotency-Key": f"reads-{uuid.uuid4()}"}
            response = await http.post(
                f"{server.url}/v1/payments", json={"amount": 10000, "currency": "USD"}, headers=headers
            )
            assert response.status_code == 200, response.text
            answered.append(response.json()["payment_id"])

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(8)))


async def _read_while(server: Server, writing: asyncio.Task[None], answered: list[str]) -> int:
    reads = 0
    async with httpx.AsyncClient(timeout=10) as http:
        while not writing.done():
            seen = len(answered)
            as_json = await http.get(f"{server.url}/v1/analytics/events", params=WINDOW, headers=ADMIN)
            as_arrow = await http.get(
                f"{server.url}/v1/analytics/events", params={**WINDOW, "format": "arrow"}, headers=ADMIN
            )
            assert as_json.status_code == 200, as_json.text
            assert as_arrow.status_code == 200, as_arrow.text
            table = ipc.open_stream(as_arrow.content).read_all()
            completed = {
                event["payment_id"]
                for event in as_json.json()["events"]
                if event["event_type"] == "PaymentCompleted"
            }
            # Every payment answered before the read started is in it, with its last event.
            assert set(answered[:seen]) <= completed
            assert table.num_rows >= len(as_json.json()["events"]) - 50 * 7  # later, so not fewer
            reads += 1
    return reads


def test_analytics_reads_work_while_payments_are_written(server: Server) -> None:
    answered: list[str] = []

    async def scenario() -> int:
        writing = asyncio.create_task(_pay_for(server, 3.0, answered))
        await asyncio.sleep(0.3)
        reads = await _read_while(server, writing, answered)
        await writing
        return reads

    reads = asyncio.run(scenario())

    assert reads >= 3
    assert len(answered) > 50
