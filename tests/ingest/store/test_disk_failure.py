"""A disk that refuses a commit (full, read-only, failing) stops the store for good: nothing that
was not committed is ever answered as if it were, nothing new is taken, and the service says it
is not ready (ingest.store.writer, ingest.store.idempotency). The disk's refusal is played by a
statement that raises DuckDB's ``IOException``, as a full disk makes DuckDB do."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import TypeVar

import duckdb
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from engine.ledger import LedgerEntry
from engine.types import PaymentId, ProcessorId
from ingest.api.idempotency import Claimed, InFlight
from ingest.ledger_journal import FILE_NAME as LEDGER_FILE
from ingest.ledger_journal import FileLedgerJournal, read_journal
from ingest.store.schema import FILE_NAME
from ingest.store.writer import StoreError, Write, Writer
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import body_of, call
from tests.ingest.store.test_cold_keys import ANSWER, Clocks, committed, store
from tests.ingest.store.test_durable_api import charges, pay, running
from tests.ingest.store.test_writer import full_disk

T = TypeVar("T")


def refuse(_: duckdb.DuckDBPyConnection) -> None:
    raise duckdb.IOException('Could not write file "payorch.duckdb.wal": No space left on device')


async def refused_with_writes_behind(
    app: object, start: Callable[[], Coroutine[object, object, T]], behind: int
) -> T:
    """What ``start`` answers when the disk refuses the commit in progress while ``behind`` of its
    writes wait in the queue behind that commit (their own commit then fails as well)."""
    writer = app.state.parts.writer  # type: ignore[attr-defined]
    disk, inside = threading.Event(), threading.Event()

    def refused_after_a_while(connection: duckdb.DuckDBPyConnection) -> None:
        inside.set()
        disk.wait(30)
        refuse(connection)

    writer.submit(Write(None, apply=refused_after_a_while))
    assert await asyncio.to_thread(inside.wait, 10)
    started = asyncio.create_task(start())
    while writer.depth < behind:
        await asyncio.sleep(0.001)
    disk.set()
    return await started


@pytest_asyncio.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    opened = Writer(tmp_path / FILE_NAME)
    yield opened
    await asyncio.to_thread(opened.close)


async def test_an_answer_the_disk_refused_is_not_replayed(writer: Writer) -> None:
    keys = store(writer, Clocks())
    assert await keys.claim("m_acme", "order-1", "fp-1") == Claimed()
    await committed(writer)
    writer.submit(Write(None, apply=refuse))  # the disk refuses from here on
    await keys.complete("m_acme", "order-1", ANSWER)

    # The payment's answer is in memory only: replayed, it would be an answer no record backs
    # (and crash recovery, at the next start, may finish the payment otherwise).
    assert await keys.claim("m_acme", "order-1", "fp-1") == InFlight()


async def test_after_the_disk_refused_a_commit_the_service_is_not_ready_and_takes_no_payment(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        first = await pay(app, key="order-1")
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="No space left on device"):
            await writer.submit_and_wait(Write(None, apply=refuse))

        ready = await call(app, "GET", "/readyz", [], body_of(b""))
        new = await pay(app, key="order-2")
        repeat = await pay(app, key="order-1")

    assert first.status == 200, first.body
    assert (ready.status, new.status, new.json()["code"]) == (503, 503, "service_unavailable")
    # The service stops: a supervisor's restart takes seconds, not the busy writer's one.
    assert new.headers["retry-after"] == "5"
    detail = str(new.json()["detail"])
    assert "disk" in detail and "behind" not in detail
    assert (repeat.status, repeat.headers["idempotent-replayed"]) == (200, "true")  # it was committed
    assert repeat.body == first.body
    assert len(charges(tmp_path)) == 2  # the first payment's split legs only: order-2 charged nothing


async def test_a_payment_whose_outcome_the_disk_refused_is_not_said_to_be_processed(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        records, writer = parts.records, parts.writer
        sync = records.sync

        async def refused_then_sync() -> None:
            # The disk refuses from the batch holding the payment's terminal event on.
            writer.submit(Write(None, apply=refuse))
            await sync()

        records.sync = refused_then_sync
        answer = await pay(app, key="order-1")
        counted = {
            sample.labels["status"]: sample.value
            for family in text_string_to_metric_families(parts.metrics.render().decode())
            for sample in family.samples
            if sample.name == "payorch_payments_total"
        }

    problem = answer.json()
    detail = str(problem["detail"])
    assert (answer.status, problem["code"]) == (500, "internal_error"), answer.body
    # Its outcome is settled by the next start, maybe as failed, nothing charged: not "processed".
    assert "processed" not in detail
    assert "same Idempotency-Key" in detail and "new key" in detail
    assert str(problem["payment_id"]).startswith("pay_")
    # Counted as answered, not as the success its next start may settle as failed.
    assert counted == {"error": 1}


async def test_a_payment_whose_first_attempt_the_disk_refused_is_503_nothing_charged_and_its_key_pays_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        # The disk refuses the commit in progress while the payment's first StepAttempted waits
        # behind it (with its other writes): its commit fails before any processor is called.
        answer = await refused_with_writes_behind(app, partial(pay, app, key="order-1"), behind=3)
    assert (answer.status, answer.json()["code"]) == (503, "service_unavailable"), answer.body
    assert answer.headers["retry-after"] == "1"
    assert "nothing was charged" in str(answer.json()["detail"])
    assert charges(tmp_path) == []

    async with running(tmp_path) as app:  # restarted with room: the same key pays, once
        retried = await pay(app, key="order-1")
        again = await pay(app, key="order-1")
    assert retried.status == 200, retried.body
    assert "idempotent-replayed" not in retried.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert len(charges(tmp_path)) == 2  # the split payment's two legs, once


async def test_books_of_the_simulated_processors_the_disk_refuses_stop_the_store_not_the_processor(
    tmp_path: Path,
) -> None:
    # One fault opens stripe_sim's circuit: a fault blamed on it would show.
    config = CONFIG.replace(
        "  - id: stripe_sim\n    kind: simulated\n",
        "  - id: stripe_sim\n    kind: simulated\n    breaker: {failure_threshold: 1}\n",
    )
    assert config != CONFIG
    limit = 8 * 1024 * 1024
    # The books file takes what the disk has left: its next line is refused.
    (tmp_path / LEDGER_FILE).write_bytes(b" " * (limit - 1) + b"\n")
    async with running(tmp_path, config_text=config) as app:
        with full_disk(limit):
            answer = await pay(app, key="order-1", body=b'{"amount": 1250, "method": "card"}')
        metrics = (await call(app, "GET", "/metrics", [], body_of(b""))).body.decode()
        failure = app.state.parts.writer.failure  # type: ignore[attr-defined]

    assert "processor/panic" not in metrics
    assert 'payorch_circuit_state{processor="stripe_sim"} 0.0' in metrics
    assert failure == (
        f"the simulated processors' ledger {tmp_path / LEDGER_FILE} could not be written (File too large)"
    )
    # The charge was made, its record not: the answer says it may have been charged.
    assert (answer.status, answer.json()["code"]) == (500, "internal_error"), answer.body


def test_the_books_go_on_after_a_line_the_disk_took_in_part(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE
    path.write_bytes(b'{"change": "charge", "processor_id": "stripe_s')  # the disk was full mid-line
    journal = FileLedgerJournal(path)  # restarted with room
    entry = LedgerEntry(
        ProcessorId("stripe_sim"), "pay_1:step:0", PaymentId("pay_1"), 0, 1250, "USD", "ref_1"
    )
    journal.write("charge", entry)
    journal.close()

    assert [line["idempotency_key"] for line in read_journal(path)] == ["pay_1:step:0"]
