"""One merchant's flood against the others' trickle, at the one writer (ingest.store.shares): while
the disk is behind, the merchant holding more than its share of the admitted work is refused
(503) first, and the others are still let in until the writer is behind by ``admit_limit``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path

import duckdb
import orjson
import pytest

from engine.config import StoreConfig
from engine.types import MerchantId
from ingest.errors import IngestError
from ingest.store.schema import FILE_NAME
from ingest.store.shares import WriterShares
from ingest.store.writer import StoreSaturatedError, StoreShareError, Write, Writer
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import JSON, Answer, body_of, call
from tests.ingest.store.test_complaints_under_pressure import file
from tests.ingest.store.test_durable_api import pay, running

GLOBEX = (b"authorization", b"Bearer sk_e2e_globex")
SLOW = (b"authorization", b"Bearer sk_e2e_slow")
A, B, C = MerchantId("m_a"), MerchantId("m_b"), MerchantId("m_c")
#: 40 writes may wait; from 20 on (half), only merchants within their share are let in.
STORE = StoreConfig(admit_limit=40)


async def hold(writer: Writer) -> threading.Event:
    """Hold ``writer`` inside a commit, with nothing queued behind it, until the event is set."""
    disk, inside = threading.Event(), threading.Event()

    def held(_: object) -> None:
        inside.set()
        disk.wait(30)

    writer.submit(Write(None, apply=held))
    assert await asyncio.to_thread(inside.wait, 10)
    return disk


async def settled(writer: Writer) -> None:
    """Return once the requests let in have queued what they write before they wait for a commit
    (the queue stopped growing)."""
    depth, still = writer.depth, 0
    while still < 5:
        await asyncio.sleep(0.005)
        still = still + 1 if writer.depth == depth else 0
        depth = writer.depth


async def flood(
    writer: Writer, send: Callable[[int], Coroutine[object, object, Answer]]
) -> tuple[list[asyncio.Task[Answer]], Answer]:
    """Send one request after another, each once the one before waits for the disk (held), until
    one is refused: the requests let in (still waiting) and the refusal."""
    taken: list[asyncio.Task[Answer]] = []
    for n in range(200):
        task = asyncio.create_task(send(n))
        await settled(writer)
        if task.done():
            return taken, task.result()
        taken.append(task)
    raise AssertionError("the flood was never refused")


def payments_stored(data_dir: Path) -> dict[str, int]:
    """How many payments of each merchant the database holds (read once the app has closed it)."""
    with duckdb.connect(str(data_dir / FILE_NAME), read_only=True) as connection:
        rows = connection.execute("SELECT merchant_id, count(*) FROM payments GROUP BY 1").fetchall()
    return {str(merchant): int(count) for merchant, count in rows}


async def pay_as(app: object, merchant: tuple[bytes, bytes], key: str) -> Answer:
    headers = [merchant, JSON, (b"idempotency-key", key.encode())]
    return await call(app, "POST", "/v1/payments", headers, body_of(b'{"amount": 2500, "method": "card"}'))


async def pay_globex(app: object, key: str) -> Answer:
    return await pay_as(app, GLOBEX, key)


async def test_a_merchant_flooding_a_slow_disk_is_refused_first_and_another_merchant_still_pays(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, store=STORE) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        writer = parts.writer
        disk = await hold(writer)
        try:
            flooded, refused = await flood(writer, lambda n: pay(app, key=f"flood-{n}"))
            # With the write held in its commit, and the writes still to come of the payments let in.
            behind = writer.depth + 1 + writer.unwritten
            other = asyncio.create_task(pay_globex(app, "globex-1"))
            await settled(writer)
            # Let in: it waits for the disk with the flood, it was not refused.
            assert not other.done(), other.result().body
        finally:
            disk.set()
        answers = await asyncio.gather(*flooded)
        answered = await other
        assert (parts.desk.in_flight, parts.desk.shares.merchants) == (0, 0)  # nothing left held

    assert 20 < behind <= 40  # refused from half the limit on, where the other merchant was not
    problem = refused.json()
    assert (refused.status, problem["code"], refused.headers["retry-after"]) == (
        503,
        "service_unavailable",
        "1",
    )
    detail = str(problem["detail"])
    assert "more than its share" in detail and "nothing was charged" in detail
    assert answered.status == 200, answered.body
    # Nothing admitted was dropped: every payment let in was answered, and is stored.
    assert [answer.status for answer in answers] == [200] * len(flooded)
    assert payments_stored(tmp_path) == {"m_acme": len(flooded), "m_globex": 1}


async def test_a_merchant_flooding_complaints_is_refused_first_and_another_merchant_still_pays(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, store=STORE) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        writer = parts.writer
        disk = await hold(writer)
        try:
            filed, refused = await flood(writer, lambda n: file(app, f"cmp-{n}"))
            other = asyncio.create_task(pay_globex(app, "globex-1"))
            await settled(writer)
            assert not other.done(), other.result().body
        finally:
            disk.set()
        answers = await asyncio.gather(*filed)
        answered = await other
        assert parts.desk.shares.merchants == 0

    assert refused.status == 503, refused.body
    assert "more than its share" in str(orjson.loads(refused.body)["detail"])
    assert [answer.status for answer in answers] == [201] * len(filed)
    assert answered.status == 200, answered.body


def shares_of(**held: int) -> WriterShares:
    shares = WriterShares()
    for merchant, count in held.items():
        for _ in range(count):
            shares.enter(MerchantId(merchant))
    return shares


def test_a_merchant_alone_is_past_its_share_and_one_holding_nothing_never_is() -> None:
    alone = shares_of(m_a=1)
    assert alone.over_share(A, entered=False)  # the room left is kept for the merchant yet to come
    assert not alone.over_share(B, entered=False)
    # The same, judged once the request is counted (as the payment desk does).
    alone.enter(B)
    assert not alone.over_share(B, entered=True)
    assert alone.over_share(A, entered=False)


def test_a_merchant_holding_little_is_let_in_until_it_holds_as_much_as_an_equal_share() -> None:
    # 100 held by m_a: m_b is within its share up to a third of all (the next merchant's room).
    assert not shares_of(m_a=100, m_b=50).over_share(B, entered=False)
    assert shares_of(m_a=100, m_b=51).over_share(B, entered=False)
    assert shares_of(m_a=100, m_b=50).over_share(A, entered=False)
    # Two flooding together are both past their share; a third merchant holding little is not.
    two = shares_of(m_a=100, m_b=100, m_c=5)
    assert (two.over_share(A, entered=False), two.over_share(B, entered=False)) == (True, True)
    assert not two.over_share(C, entered=False)


def test_the_shares_forget_a_merchant_whose_work_has_ended() -> None:
    shares = shares_of(m_a=2, m_b=1)
    for merchant in (A, A, B):
        shares.leave(merchant)
    assert (shares.merchants, shares.held(A), shares.over_share(A, entered=False)) == (0, 0, False)


async def test_the_writer_refuses_work_past_its_share_from_the_mark_and_all_work_past_the_limit(
    tmp_path: Path,
) -> None:
    writer = Writer(tmp_path / FILE_NAME, admit_limit=10, fair_share_percent=50)
    disk = await hold(writer)
    try:
        for depth in range(11):
            if depth + 1 > 5:  # with the write held in its commit
                with pytest.raises(StoreShareError, match=f"{depth + 1} writes are waiting"):
                    writer.admit(over_share=True)
            else:
                writer.admit(over_share=True)
            writer.admit()  # within its share: let in up to the limit
            writer.submit(Write(None, apply=lambda _: None))
        for over_share in (False, True):  # past the limit: every merchant alike
            with pytest.raises(StoreSaturatedError) as refused:
                writer.admit(over_share=over_share)
            assert type(refused.value) is StoreSaturatedError
    finally:
        disk.set()
    await writer.submit_and_wait(Write(None))
    writer.admit(over_share=True)  # caught up
    writer.close()


def test_a_share_mark_out_of_bounds_is_refused(tmp_path: Path) -> None:
    for percent in (0, 101):
        with pytest.raises(IngestError, match="fair_share_percent must be 1 to 100"):
            Writer(tmp_path / FILE_NAME, fair_share_percent=percent)


#: m_slow (its processor takes about 1.5 s) may have two payments in flight.
LIMITED = CONFIG.replace("    timeout_ms: 5000\n", "    timeout_ms: 5000\n    max_in_flight: 2\n")


async def test_requests_refused_429_or_503_write_nothing_and_leave_the_writer_to_the_others(
    tmp_path: Path,
) -> None:
    # Each refused request with an Idempotency-Key queued two rows (its key claimed, then freed):
    # a merchant retrying its refusals kept the writer past admit_limit by itself, and another
    # merchant's payment was refused.
    assert LIMITED != CONFIG
    async with running(tmp_path, store=STORE, config_text=LIMITED) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        writer = parts.writer
        disk = await hold(writer)
        try:
            running_slow = [asyncio.create_task(pay_as(app, SLOW, f"slow-{n}")) for n in range(2)]
            await settled(writer)
            before = writer.depth
            over = [await pay_as(app, SLOW, f"slow-over-{n}") for n in range(30)]
            assert writer.depth == before  # the refusals (429) queued nothing
            flooded, refused = await flood(writer, lambda n: pay(app, key=f"flood-{n}"))
            behind = writer.depth
            again = [await pay(app, key=f"flood-again-{n}") for n in range(30)]
            assert writer.depth == behind  # nor did these (503)
            other = asyncio.create_task(pay_as(app, GLOBEX, "globex-1"))
            await settled(writer)
            assert not other.done(), other.result().body
        finally:
            disk.set()
        answers = await asyncio.gather(*running_slow, *flooded, other)

    assert before > 0
    assert {answer.status for answer in over} == {429}
    assert refused.status == 503
    assert {answer.status for answer in again} == {503}
    assert {answer.status for answer in answers} == {200}


async def test_the_writes_of_the_batch_being_committed_count_against_the_share_mark(tmp_path: Path) -> None:
    # The queue empties at the start of every commit: read alone, it let a flood in whole at
    # each commit, and the flood's writes then took every merchant past admit_limit.
    writer = Writer(tmp_path / FILE_NAME, admit_limit=40, fair_share_percent=50)
    first = await hold(writer)
    disk, inside = threading.Event(), threading.Event()

    def stalled(_: object) -> None:
        inside.set()
        disk.wait(30)

    for _ in range(30):
        writer.submit(Write(None, apply=lambda _: None))
    writer.submit(Write(None, apply=stalled))
    first.set()  # the writer takes the 31 writes into its next batch, and stalls in it
    try:
        assert await asyncio.to_thread(inside.wait, 10)
        assert writer.depth == 0
        with pytest.raises(StoreShareError, match="31 writes are waiting"):
            writer.admit(over_share=True)
        writer.admit()  # within its share: 31 of 40
    finally:
        disk.set()
    await writer.submit_and_wait(Write(None))
    writer.admit(over_share=True)  # committed: nothing waits
    writer.close()
