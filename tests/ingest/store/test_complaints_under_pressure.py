"""A complaint under a store that cannot take it now (ingest.api.store_gate): while the writer is
behind, and once the disk stopped it, a new complaint is 503 with ``Retry-After`` and not stored,
and filed again with its ``complaint_id`` once the store takes work it is stored once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import duckdb
import orjson
import pytest

from engine.config import StoreConfig
from ingest.config_file import parse_config
from ingest.store.schema import FILE_NAME
from ingest.store.writer import StoreError, Write, Writer
from payorch.report import render_tables
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, Answer, body_of, call
from tests.ingest.api.test_complaint_limits import LIMITED
from tests.ingest.store.test_disk_failure import refuse, refused_with_writes_behind
from tests.ingest.store.test_durable_api import ADMIN, pay, running, stall


async def file(app: object, complaint_id: str, description: str = "the charge hung") -> Answer:
    body = {"complaint_id": complaint_id, "category": "timeout", "description": description}
    return await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(orjson.dumps(body)))


def stored(data_dir: Path) -> list[str]:
    """The complaint ids in the database, one row each (read once the app has closed it)."""
    with duckdb.connect(str(data_dir / FILE_NAME), read_only=True) as connection:
        rows = connection.execute("SELECT complaint_id FROM complaints ORDER BY complaint_id").fetchall()
    return [str(row[0]) for row in rows]


async def filed_once_after_a_restart(data_dir: Path) -> None:
    """Restarted with room, ``cmp-1`` filed again is stored (201), and once (its repeat is 200)."""
    async with running(data_dir) as app:
        retried = await file(app, "cmp-1")
        again = await file(app, "cmp-1")
    assert (retried.status, again.status) == (201, 200)
    assert stored(data_dir) == ["cmp-1"]


async def test_a_complaint_while_the_writer_is_behind_is_503_not_stored_and_its_retry_is_stored_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, store=StoreConfig(admit_limit=5)) as app:
        before = await file(app, "cmp-before")
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        disk = await stall(writer)
        try:
            # Let in, it waited for the whole backlog (as long as the stall lasts).
            busy = await asyncio.wait_for(file(app, "cmp-during"), 2)
            repeat = await asyncio.wait_for(file(app, "cmp-before"), 2)
        finally:
            disk.set()
        await writer.submit_and_wait(Write(None))  # the writer has caught up
        retried = await file(app, "cmp-during")
        again = await file(app, "cmp-during")

    assert before.status == 201, before.body
    problem = busy.json()
    assert (busy.status, problem["code"], busy.headers["retry-after"]) == (503, "service_unavailable", "1")
    detail = str(problem["detail"])
    assert "behind" in detail and "not stored" in detail and "same complaint_id" in detail
    # Filed before: kept, and answered as before without a write.
    assert (repeat.status, repeat.body) == (200, before.body)
    assert (retried.status, again.status) == (201, 200)
    assert stored(tmp_path) == ["cmp-before", "cmp-during"]


async def test_a_complaint_once_the_disk_stopped_the_store_is_503_and_its_retry_once_back_is_stored_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="No space left on device"):
            await writer.submit_and_wait(Write(None, apply=refuse))
        refused = await file(app, "cmp-1")

    problem = refused.json()
    assert (refused.status, problem["code"]) == (503, "service_unavailable")
    assert refused.headers["retry-after"] == "5"  # the service stops: a restart takes seconds
    detail = str(problem["detail"])
    assert "disk" in detail and "behind" not in detail and "not stored" in detail
    assert stored(tmp_path) == []

    await filed_once_after_a_restart(tmp_path)


async def test_a_complaint_whose_commit_the_disk_refuses_is_503_and_its_retry_once_back_is_stored_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        # The disk refuses the commit in progress while the complaint's row waits behind it: its
        # own commit fails (the admission before found the writer well).
        refused = await refused_with_writes_behind(app, partial(file, app, "cmp-1"), behind=1)

    problem = refused.json()
    assert (refused.status, problem["code"]) == (503, "service_unavailable"), refused.body
    assert refused.headers["retry-after"] == "5"
    assert "disk" in str(problem["detail"]) and "not stored" in str(problem["detail"])
    assert stored(tmp_path) == []

    await filed_once_after_a_restart(tmp_path)


async def test_reads_once_the_disk_stopped_the_store_are_503_not_the_records_without_its_lost_batch(
    tmp_path: Path,
) -> None:
    renderer = partial(render_tables, parse_config(CONFIG))
    async with running(tmp_path, report_renderer=renderer) as app:
        kept = (await pay(app, key="order-1")).json()["payment_id"]
        assert (await file(app, "cmp-1")).status == 201
        parts = app.state.parts  # type: ignore[attr-defined]
        sync = parts.records.sync

        async def refused_then_sync() -> None:
            # The disk refuses from the batch holding the payment's terminal event and result on.
            parts.writer.submit(Write(None, apply=refuse))
            await sync()

        parts.records.sync = refused_then_sync
        cut_short = await pay(app, key="order-2")  # a 500: it charged, its outcome was not recorded
        lost = cut_short.json()["payment_id"]
        reads = [
            (f"/v1/payments/{lost}", ACME),
            (f"/v1/payments/{kept}", ACME),
            ("/v1/complaints/cmp-1", ACME),
            ("/v1/complaints", ACME),
            ("/v1/violations", ADMIN),
            ("/v1/analytics/events", ADMIN),
            ("/v1/reports/retrospective?format=json", ADMIN),
        ]
        answers = {path: await call(app, "GET", path, [key], body_of(b"")) for path, key in reads}

    assert cut_short.status == 500, cut_short.body
    for path, answer in answers.items():
        # The lost payment was a 404 ("no payment"), the others what the database held without it.
        assert (answer.status, answer.json()["code"]) == (503, "service_unavailable"), (path, answer.body)
        assert answer.headers["retry-after"] == "5"
        assert "disk" in str(answer.json()["detail"])


async def test_a_complaint_to_a_store_closed_at_shutdown_is_503_not_500(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        await asyncio.to_thread(app.state.parts.writer.close)  # type: ignore[attr-defined]
        refused = await file(app, "cmp-1")

    assert (refused.status, refused.json()["code"]) == (503, "service_unavailable"), refused.body
    assert "stopping" in str(refused.json()["detail"]) and "behind" not in str(refused.json()["detail"])
    assert stored(tmp_path) == []


async def test_reads_of_a_store_closed_at_shutdown_are_503_not_500(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        assert (await file(app, "cmp-1")).status == 201
        await asyncio.to_thread(app.state.parts.writer.close)  # type: ignore[attr-defined]
        read = await call(app, "GET", "/v1/complaints/cmp-1", [ACME], body_of(b""))

    assert (read.status, read.json()["code"]) == (503, "service_unavailable"), read.body
    assert "stopping" in str(read.json()["detail"])


async def test_readiness_once_the_disk_stopped_the_store_says_so(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        ready = await call(app, "GET", "/readyz", [], body_of(b""))
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        with pytest.raises(StoreError):
            await writer.submit_and_wait(Write(None, apply=refuse))
        stopped = await call(app, "GET", "/readyz", [], body_of(b""))

    assert ready.status == 200
    detail = str(stopped.json()["detail"])
    assert (stopped.status, stopped.headers["retry-after"]) == (503, "5")
    assert "disk" in detail and "stopping" in detail
    assert str(tmp_path) not in detail  # a public route: no path of the host


@asynccontextmanager
async def reads_held(writer: Writer) -> AsyncIterator[None]:
    """Hold every read of ``writer`` (the lock they share, as a long read does) while inside."""
    released, inside = threading.Event(), threading.Event()

    def long_read(_: object) -> None:
        inside.set()
        released.wait(30)

    reader = asyncio.create_task(writer.read(long_read))
    assert await asyncio.to_thread(inside.wait, 10)
    try:
        yield
    finally:
        released.set()
        await reader


async def test_a_new_complaint_refused_429_or_503_is_answered_without_a_read(tmp_path: Path) -> None:
    # Each refusal looked its id up (to answer one filed before as before): a merchant's flood of
    # new complaints past its limit made as many reads, each waiting for the lock every read takes.
    store = StoreConfig(admit_limit=5)
    async with running(tmp_path, store=store, config_text=LIMITED) as app:
        first = await file(app, "cmp-0")
    async with running(tmp_path, store=store, config_text=LIMITED) as app:  # the ids stored: read at start
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        taken = [await file(app, f"cmp-{n}") for n in range(1, 4)]  # m_acme's three a minute
        async with reads_held(writer):
            over = [await asyncio.wait_for(file(app, f"cmp-over-{n}"), 2) for n in range(20)]
            disk = await stall(writer)
            try:
                behind = await asyncio.wait_for(file(app, "cmp-behind"), 2)
            finally:
                disk.set()
            await writer.submit_and_wait(Write(None))
        # Filed before (before the start), past the limit: answered as before, which takes a read.
        repeat = await file(app, "cmp-0")

    assert [answer.status for answer in (first, *taken)] == [201] * 4
    assert {answer.status for answer in over} == {429}
    assert behind.status == 503, behind.body
    assert (repeat.status, repeat.body) == (200, first.body)
    assert stored(tmp_path) == ["cmp-0", "cmp-1", "cmp-2", "cmp-3"]


async def test_a_new_complaint_is_stored_without_a_read_and_one_filed_at_once_is_stored_once(
    tmp_path: Path,
) -> None:
    # Storing a complaint read its id first, and read the row back after its commit: behind an
    # admin's long read, a new complaint (the common case, its id in no filter) waited as long.
    async with running(tmp_path) as app:
        assert (await file(app, "cmp-0")).status == 201
    async with running(tmp_path) as app:  # cmp-0 in the filters read at start
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        async with reads_held(writer):
            new = await asyncio.wait_for(file(app, "cmp-1"), 2)
        # The same id filed at once many times, one of them new: one row, the others its repeats.
        together = await asyncio.gather(*(file(app, "cmp-2") for _ in range(8)))
        changed = await asyncio.gather(*(file(app, "cmp-3", f"text {n}") for n in range(4)))
        before = await asyncio.gather(file(app, "cmp-0"), file(app, "cmp-0", "other text"))

    assert new.status == 201, new.body
    assert sorted(answer.status for answer in together) == [200] * 7 + [201]
    assert len({answer.body for answer in together}) == 1
    assert sorted(answer.status for answer in changed) == [201] + [409] * 3
    assert [answer.status for answer in before] == [200, 409]
    assert stored(tmp_path) == ["cmp-0", "cmp-1", "cmp-2", "cmp-3"]
