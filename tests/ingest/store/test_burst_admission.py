"""Work arriving together at the one writer (ingest.store.admission): it is let in only as far as
the writes it will queue fit under ``admit_limit``, not as far as the queue, still empty when a
burst is admitted, allows; nothing let in is refused a write, dropped or charged twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.config import StoreConfig
from ingest.api.payments import PAYMENT_WRITES
from ingest.api.store_gate import COMPLAINT_WRITES
from ingest.store.schema import FILE_NAME
from ingest.store.writer import StoreSaturatedError, Write, Writer
from tests.ingest.store.test_complaints_under_pressure import file, stored
from tests.ingest.store.test_durable_api import charges, pay, running
from tests.ingest.store.test_fair_admission import hold, payments_stored, settled

#: 40 writes may be behind; no share mark (every merchant alike), to see the limit itself.
STORE = StoreConfig(admit_limit=40, fair_share_percent=100)


async def test_payments_arriving_together_are_let_in_only_as_far_as_their_writes_fit(tmp_path: Path) -> None:
    # 40 payments at once all passed admission before any had queued a write, and then queued
    # 160 writes (4 each before the commit they wait for) past a limit of 40.
    async with running(tmp_path, store=STORE) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        writer = parts.writer
        disk = await hold(writer)
        try:
            burst = [asyncio.create_task(pay(app, key=f"burst-{n}")) for n in range(40)]
            await settled(writer)
            queued, behind = writer.depth, writer.depth + writer.unwritten
        finally:
            disk.set()
        answers = await asyncio.gather(*burst)
        assert (parts.desk.in_flight, writer.unwritten) == (0, 0)  # nothing left counted

    assert 0 < queued <= behind <= STORE.admit_limit + PAYMENT_WRITES
    let_in = [answer for answer in answers if answer.status == 200]
    refused = [answer for answer in answers if answer.status != 200]
    assert let_in and refused
    assert {(answer.status, answer.json()["code"]) for answer in refused} == {(503, "service_unavailable")}
    # Every payment let in was answered and stored; the refused ones charged nothing.
    assert payments_stored(tmp_path) == {"m_acme": len(let_in)}
    assert len(charges(tmp_path)) == 2 * len(let_in)  # a split in two: two charges each


async def test_complaints_filed_together_are_let_in_only_as_far_as_their_rows_fit(tmp_path: Path) -> None:
    # 200 complaints filed at once to a held disk were all let in under admit_limit 10 (none had
    # queued its row yet), and queued 200 rows.
    store = StoreConfig(admit_limit=10, fair_share_percent=100)
    async with running(tmp_path, store=store) as app:
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        disk = await hold(writer)
        try:
            burst = [asyncio.create_task(file(app, f"cmp-{n}")) for n in range(40)]
            await settled(writer)
            queued, behind = writer.depth, writer.depth + writer.unwritten
        finally:
            disk.set()
        answers = await asyncio.gather(*burst)
        assert writer.unwritten == 0

    assert 0 < queued <= behind <= store.admit_limit + COMPLAINT_WRITES
    filed = sorted(str(answer.json()["complaint_id"]) for answer in answers if answer.status == 201)
    refused = {answer.status for answer in answers if answer.status != 201}
    assert filed and refused == {503}
    assert stored(tmp_path) == filed  # every complaint let in is kept, the refused ones are not


async def test_a_lone_payment_on_an_idle_service_is_let_in_whatever_the_limit(tmp_path: Path) -> None:
    async with running(tmp_path, store=StoreConfig(admit_limit=1)) as app:
        first = await pay(app, key="alone-1")
        second = await pay(app, key="alone-2")  # what the first expected and did not write is given back
        assert app.state.parts.writer.unwritten == 0  # type: ignore[attr-defined]
    assert (first.status, second.status) == (200, 200), (first.body, second.body)


async def test_the_writes_expected_count_as_behind_until_queued_or_given_back(tmp_path: Path) -> None:
    writer = Writer(tmp_path / FILE_NAME, admit_limit=20)
    disk = await hold(writer)
    try:
        first, _, third = (writer.admit(writes=8) for _ in range(3))  # 0, 8 and 16 behind: let in
        with pytest.raises(StoreSaturatedError, match="24 writes are waiting for the disk or to come"):
            writer.admit(writes=8)
        for _ in range(10):  # queued in the context of the last let in: 8 of them were expected
            writer.submit(Write(None, apply=lambda _: None))
        assert (writer.depth, writer.unwritten, third.unwritten) == (10, 16, 0)
        first.end()  # ended having queued nothing: its 8 will not come
        assert writer.unwritten == 8
        fourth = writer.admit(writes=2)  # 18 behind: let in
        writer.admit()  # a check only (20 behind: let in): it expects nothing and changes nothing
        assert writer.unwritten == 10
        writer.submit(Write(None, apply=lambda _: None))
        assert (writer.unwritten, fourth.unwritten) == (9, 1)  # the context's work is still the fourth
        fourth.end()
        first.end()  # twice: nothing more
        assert writer.unwritten == 8
    finally:
        disk.set()
    await writer.submit_and_wait(Write(None))
    writer.close()
