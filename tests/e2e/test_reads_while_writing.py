"""The dashboard's way of reading (the service's analytics endpoints, as JSON and as Arrow) works
while the server is busy writing payments, and sees every payment it has answered."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pyarrow import ipc

from tests.e2e.server import ACME, ADMIN, Server

WINDOW = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
WRITE_LIMIT_S = 60.0
READS = 3  # reads made while payments are written, at least
ANSWERED = 50  # payments answered while the reads are made, more than


#: A payment whose amount the parser corrects: each records one ``api/validation`` violation.
CORRECTED: Mapping[str, object] = {"amount": "$100.00", "currency": "usd"}


async def _pay_for(
    server: Server,
    seconds: float,
    answered: list[str],
    body: Mapping[str, object] | None = None,
    clients: int = 8,
    until: asyncio.Event | None = None,
) -> None:
    """Pay for ``seconds``, and on until ``until`` is set (the reader has read often enough; on
    a busy machine a read takes longer), but never past ``WRITE_LIMIT_S``."""

    async def client(http: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() < start + seconds or (
            until is not None and not until.is_set() and loop.time() < start + WRITE_LIMIT_S
        ):
            headers = {**ACME, "Idempotency-Key": f"reads-{uuid.uuid4()}"}
            response = await http.post(
                f"{server.url}/v1/payments",
                json=body or {"amount": 10000, "currency": "USD"},
                headers=headers,
            )
            assert response.status_code == 200, response.text
            answered.append(response.json()["payment_id"])

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))


async def _read_while(
    server: Server, writing: asyncio.Task[None], answered: list[str], enough: asyncio.Event
) -> int:
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
            # Enough once the reads have met a busy writer: on a loaded machine 3 s of paying
            # answered 49 payments, so the payments go on until there are more than ANSWERED.
            if reads >= READS and len(answered) > ANSWERED:
                enough.set()
    return reads


def test_analytics_reads_work_while_payments_are_written(server: Server) -> None:
    answered: list[str] = []

    async def scenario() -> int:
        enough = asyncio.Event()
        writing = asyncio.create_task(_pay_for(server, 3.0, answered, until=enough))
        await asyncio.sleep(0.3)
        reads = await _read_while(server, writing, answered, enough)
        await writing
        return reads

    reads = asyncio.run(scenario())

    assert reads >= READS
    assert len(answered) > ANSWERED


PAYORCH = Path(sys.executable).parent / "payorch"


async def _report(server: Server, *extra: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *(str(PAYORCH), "report", "--api", server.url, "--format", "json", "--from", "2000-01-01", *extra),
        env={**os.environ, "PAYORCH_API_KEY": ADMIN["Authorization"].removeprefix("Bearer ")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert err == b"", err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


def _count(report: dict[str, Any], contract_id: str) -> tuple[int, int]:
    for row in report["violations"]:
        if row["id"] == contract_id:
            return row["count"], row["external_reports"]
    return 0, 0


def test_payorch_report_works_while_payments_are_written(server: Server) -> None:
    corrected: list[str] = []
    filed: list[str] = []  # the categories of the complaints filed, in order

    async def complain(http: httpx.AsyncClient, category: str, **about: str) -> None:
        body = {"complaint_id": f"cmp_{uuid.uuid4().hex[:12]}", "category": category, **about}
        response = await http.post(f"{server.url}/v1/complaints", json=body, headers=ACME)
        assert response.status_code == 201, response.text
        filed.append(category)

    async def scenario() -> tuple[int, list[int], dict[str, Any]]:
        counts: list[int] = []
        async with httpx.AsyncClient(timeout=10) as http:
            before = _count(await _report(server), "api/validation")[0]
            enough = asyncio.Event()
            writing = asyncio.create_task(
                _pay_for(server, 5.0, corrected, CORRECTED, clients=6, until=enough)
            )
            while not writing.done():
                if corrected:
                    # About a payment with a recorded violation, in a category that names no
                    # contract: mapped through the payment (a minor one does not outrank a
                    # category that names a contract).
                    await complain(http, "other", payment_id=corrected[-1])
                await complain(http, "timeout")  # mapped through the taxonomy
                answered = len(corrected)
                count = _count(await _report(server), "api/validation")[0]
                # Every corrected payment answered before the report started is in it.
                assert count - before >= answered
                counts.append(count)
                if len(counts) >= 2:
                    enough.set()
            await writing
            return before, counts, await _report(server)

    before, counts, final = asyncio.run(scenario())

    assert len(counts) >= 2, counts  # each report is a new process: about a second, more when busy
    assert len(corrected) > 30
    assert counts == sorted(counts)  # what was counted stays counted
    # After the writing: one api/validation violation per corrected payment, the complaints
    # about those payments mapped to it, the timeout complaints to router/timeout (which
    # recorded nothing: a mismatch), and every complaint received.
    assert _count(final, "api/validation") == (before + len(corrected), filed.count("other"))
    assert _count(final, "router/timeout") == (0, filed.count("timeout"))
    timeout_row = next(row for row in final["violations"] if row["id"] == "router/timeout")
    assert timeout_row["mismatch"] is True
    assert final["complaints"] == {"received": len(filed), "unmapped": 0}
