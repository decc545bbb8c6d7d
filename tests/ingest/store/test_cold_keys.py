"""Keys older than the hot window leave memory and are marked in Bloom filters; a repeat of one is
answered from the database, and nothing about a key's meaning changes (ingest.store.cold_keys,
ingest.store.idempotency)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import duckdb
import pytest
import pytest_asyncio

import ingest.store.idempotency as durable_keys
from engine.config import StoreConfig
from ingest.api.idempotency import Claimed, InFlight, Mismatch, Replay, StoredResponse
from ingest.store.cold_keys import MIN_CAPACITY, ColdKeys
from ingest.store.idempotency import DurableIdempotencyStore
from ingest.store.schema import FILE_NAME
from ingest.store.writer import Write, Writer
from tests.ingest.store.test_durable_api import charges, pay, running

TTL_S, HOT_S = 24 * 3600.0, 600.0
ANSWER = StoredResponse(200, b'{"status": "succeeded"}')

# -- the filters -----------------------------------------------------------------------------------


def test_a_key_added_is_always_found_and_few_others_are() -> None:
    cold = ColdKeys(TTL_S)
    added = [("m_acme", f"order-{n}") for n in range(100_000)]
    for n, merchant_key in enumerate(added):
        cold.add(merchant_key, n / 1000)

    others = sum(("m_acme", f"other-{n}") in cold for n in range(100_000))

    assert all(merchant_key in cold for merchant_key in added)  # never a false negative
    assert others < 100  # a false positive rate of 1e-4 expects 10
    assert cold.filter_bytes < 2 * 100_000 * 3  # about 2.4 bytes a key, with the slices' margin


def test_the_same_key_of_another_merchant_is_another_key() -> None:
    cold = ColdKeys(TTL_S)
    cold.add(("m_acme", "order-1"), 0.0)

    assert ("m_acme", "order-1") in cold
    assert ("m_globex", "order-1") not in cold


def test_slices_follow_creation_time_and_grow_with_the_rate() -> None:
    cold = ColdKeys(TTL_S, slice_s=60.0)
    for n in range(MIN_CAPACITY + 1):  # more keys than a first slice takes, within its minute
        cold.add(("m_acme", f"a-{n}"), 0.0)
    grown = cold.slices
    cold.add(("m_acme", "b-0"), 61.0)  # the second slice's minute is up: a third one starts

    assert grown == 2
    assert cold.slices == 3
    assert cold.keys == MIN_CAPACITY + 2


def test_a_slice_is_dropped_once_its_newest_key_has_lived_the_time_to_live() -> None:
    cold = ColdKeys(ttl_s=1000.0, slice_s=100.0)
    cold.add(("m_acme", "early"), 0.0)
    cold.add(("m_acme", "late-in-the-first-slice"), 99.0)
    cold.add(("m_acme", "second-slice"), 150.0)

    cold.expire(1098.0)
    kept_while_one_key_lives = cold.slices
    cold.expire(1099.0)

    assert kept_while_one_key_lives == 2
    assert cold.slices == 1
    assert ("m_acme", "second-slice") in cold


# -- the durable store ------------------------------------------------------------------------------


class Clocks:
    """A monotonic clock and a wall clock that move together, unless the wall clock is stepped."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.start = datetime(2026, 11, 26, 12, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds - 1000.0)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock alone (NTP, an operator), as no real time passes."""
        self.start += timedelta(seconds=seconds)


@pytest_asyncio.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    opened = Writer(tmp_path / FILE_NAME)
    yield opened
    await asyncio.to_thread(opened.close)


def store(writer: Writer, clocks: Clocks) -> DurableIdempotencyStore:
    return DurableIdempotencyStore(writer, TTL_S, clocks.monotonic, clocks.wall, hot_s=HOT_S)


async def committed(writer: Writer) -> None:
    """Until everything queued is committed and the store has heard so."""
    await writer.submit_and_wait(Write(None))
    for _ in range(3):
        await asyncio.sleep(0)


async def answered(
    keys: DurableIdempotencyStore, writer: Writer, key: str, fingerprint: str = "fp-1"
) -> None:
    assert isinstance(await keys.claim("m_acme", key, fingerprint), Claimed)
    await keys.complete("m_acme", key, ANSWER)
    await committed(writer)


async def test_an_answered_key_leaves_memory_after_the_hot_window_and_still_replays(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "order-1")
    held_while_hot = keys.held
    clocks.advance(HOT_S + 1)

    repeat = await keys.claim("m_acme", "order-1", "fp-1")
    other_body = await keys.claim("m_acme", "order-1", "fp-2")

    assert held_while_hot == 1
    assert repeat == Replay(ANSWER)  # the body read back from the database
    assert other_body == Mismatch()
    assert keys.held == 0
    assert keys.cold.keys == 1


async def test_a_key_is_new_again_after_the_time_to_live(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "order-1")
    clocks.advance(HOT_S + 1)
    assert await keys.claim("m_acme", "order-1", "fp-1") == Replay(ANSWER)
    clocks.advance(TTL_S)

    assert await keys.claim("m_acme", "order-1", "fp-2") == Claimed()


async def test_what_the_database_cannot_answer_for_stays_in_memory(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    assert await keys.claim("m_acme", "in-flight", "fp-1") == Claimed()
    assert await keys.claim("m_acme", "uncommitted", "fp-1") == Claimed()
    await committed(writer)
    inside, disk = threading.Event(), threading.Event()

    def stalled(_: object) -> None:
        inside.set()
        disk.wait(30)

    writer.submit(Write(None, apply=stalled))
    assert await asyncio.to_thread(inside.wait, 10)
    await keys.complete("m_acme", "uncommitted", ANSWER)  # its commit waits behind the stall
    clocks.advance(HOT_S + 1)

    in_flight = await keys.claim("m_acme", "in-flight", "fp-1")
    repeat = asyncio.ensure_future(keys.claim("m_acme", "uncommitted", "fp-1"))
    await asyncio.sleep(0.2)
    # The answer is replayed only once it is durable: the repeat waits for the stalled commit
    # (the test waited here for the stall's 30 s timeout, the disk released only after it).
    waited = not repeat.done()
    disk.set()
    uncommitted = await repeat
    await committed(writer)

    assert in_flight == InFlight()
    assert waited
    assert uncommitted == Replay(ANSWER)  # from memory: the database was not asked
    assert keys.cold.keys == 0


async def test_a_repeat_during_the_lookup_waits_for_it(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "order-1")
    clocks.advance(HOT_S + 1)
    looking, go_on = threading.Event(), threading.Event()
    newest = durable_keys._newest

    def slow_newest(*args: Any, **options: Any) -> Any:
        looking.set()
        go_on.wait(30)
        return newest(*args, **options)

    monkeypatch.setattr(durable_keys, "_newest", slow_newest)
    first = asyncio.create_task(keys.claim("m_acme", "order-1", "fp-1"))
    assert await asyncio.to_thread(looking.wait, 10)
    concurrent = await keys.claim("m_acme", "order-1", "fp-1")
    go_on.set()

    assert concurrent == InFlight()  # never a second claim of a key that may be answered
    assert await first == Replay(ANSWER)


async def test_a_false_positive_claims_the_key_as_new(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    keys.cold.add(("m_acme", "never-used"), clocks.monotonic())  # as a filter might wrongly say

    claimed = await keys.claim("m_acme", "never-used", "fp-1")
    repeat = await keys.claim("m_acme", "never-used", "fp-1")

    assert claimed == Claimed()
    assert repeat == InFlight()  # the claim holds the key, and is written as any other
    assert keys.unanswered().keys() == {("m_acme", "never-used")}


async def test_a_start_reads_keys_older_than_the_hot_window_into_the_filters(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "old")
    clocks.advance(HOT_S + 1)
    await answered(keys, writer, "recent")

    restarted = store(writer, clocks)
    held, marked = restarted.held, restarted.cold.keys
    old = await restarted.claim("m_acme", "old", "fp-1")
    recent = await restarted.claim("m_acme", "recent", "fp-1")

    assert (held, marked) == (1, 1)
    assert (old, recent) == (Replay(ANSWER), Replay(ANSWER))


def stored_keys(writer: Writer) -> list[str]:
    """The keys ``idempotency_keys`` holds a row of."""
    rows = writer.read_now(lambda c: c.execute("SELECT DISTINCT key FROM idempotency_keys").fetchall())
    return sorted(str(row[0]) for row in rows)


async def test_a_running_process_deletes_the_rows_of_keys_past_the_time_to_live(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "old")
    assert await keys.claim("m_acme", "stuck", "fp-1") == Claimed()  # never answered: in flight
    keys.hold("m_acme", "stuck")
    await committed(writer)
    clocks.advance(TTL_S - 10)
    await answered(keys, writer, "young")
    before = stored_keys(writer)
    clocks.advance(durable_keys.PURGE_INTERVAL_S + 10)

    await answered(keys, writer, "new")  # a claim after the interval deletes what expired
    after = stored_keys(writer)
    stuck = await keys.claim("m_acme", "stuck", "fp-1")

    assert before == ["old", "stuck", "young"]
    assert after == ["new", "stuck", "young"]  # a key in flight stays, however old
    assert stuck == InFlight()
    assert await keys.claim("m_acme", "young", "fp-1") == Replay(ANSWER)


async def test_a_wall_clock_stepped_forward_forgets_no_key_before_its_time(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "order-1")
    clocks.advance(HOT_S + durable_keys.PURGE_INTERVAL_S)  # out of memory; a purge is due
    clocks.step_wall(25 * 3600)  # 11 minutes of real time have passed, the wall clock says a day more

    repeat = await keys.claim("m_acme", "order-1", "fp-1")
    kept = stored_keys(writer)
    clocks.advance(TTL_S)  # a day of real time, since the key's claim
    await answered(keys, writer, "later")
    clocks.advance(durable_keys.PURGE_INTERVAL_S)
    await answered(keys, writer, "last")  # its claim deletes what expired

    assert repeat == Replay(ANSWER)  # not Claimed: a second charge
    assert kept == ["order-1"]
    assert stored_keys(writer) == ["last", "later"]  # deleted once its day was up, not kept for good


async def test_a_wall_clock_stepped_back_keeps_each_key_its_time(writer: Writer) -> None:
    clocks = Clocks()
    keys = store(writer, clocks)
    await answered(keys, writer, "before-the-step")
    clocks.advance(HOT_S + 1)
    clocks.step_wall(-3600)
    await answered(keys, writer, "after-the-step")
    clocks.advance(HOT_S + 1)

    repeats = [await keys.claim("m_acme", key, "fp-1") for key in ("before-the-step", "after-the-step")]
    # The first key's day is up, not the second's; a purge is due.
    clocks.advance(TTL_S - 2 * HOT_S + durable_keys.PURGE_INTERVAL_S)
    await answered(keys, writer, "new")
    second = await keys.claim("m_acme", "after-the-step", "fp-1")

    assert repeats == [Replay(ANSWER), Replay(ANSWER)]
    assert second == Replay(ANSWER)
    assert "after-the-step" in stored_keys(writer)


class FetchRecordingWriter(Writer):
    """A writer whose reads note how many rows each fetch of many rows brought back."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fetched: list[int] = []

    def read_now(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        def recorded(cursor: duckdb.DuckDBPyConnection) -> Any:
            return query(cast(duckdb.DuckDBPyConnection, _FetchRecordingCursor(cursor, self.fetched)))

        return super().read_now(recorded)


class _FetchRecordingCursor:
    """The calls of a connection that the start's read makes, passed on to ``cursor``."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, fetched: list[int]) -> None:
        self._cursor, self._fetched = cursor, fetched

    def execute(self, *args: Any) -> _FetchRecordingCursor:
        self._cursor.execute(*args)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchmany(self, size: int) -> list[Any]:
        rows = self._cursor.fetchmany(size)
        self._fetched.append(len(rows))
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._cursor.fetchall()
        self._fetched.append(len(rows))
        return rows


async def test_a_start_reads_the_keys_back_a_chunk_at_a_time(tmp_path: Path) -> None:
    clocks = Clocks()
    writer = FetchRecordingWriter(tmp_path / FILE_NAME)
    try:
        keys = store(writer, clocks)
        for n in range(5):
            await answered(keys, writer, f"old-{n}")
        clocks.advance(HOT_S + 1)
        await answered(keys, writer, "recent")
        assert await keys.claim("m_acme", "in-flight", "fp-1") == Claimed()
        assert await keys.claim("m_acme", "refused", "fp-1") == Claimed()
        keys.hold("m_acme", "in-flight")
        keys.hold("m_acme", "refused")  # its payment went on, and was refused (freed) after
        await keys.release("m_acme", "refused")
        await committed(writer)
        writer.fetched.clear()

        restarted = DurableIdempotencyStore(
            writer, TTL_S, clocks.monotonic, clocks.wall, hot_s=HOT_S, load_chunk_rows=2
        )
        fetched = [count for count in writer.fetched if count]
        restored = (restarted.restored, restarted.held, restarted.cold.keys)
        outcomes = [
            await restarted.claim("m_acme", key, "fp-1") for key in ("old-0", "old-4", "recent", "in-flight")
        ]
        refused = await restarted.claim("m_acme", "refused", "fp-2")
    finally:
        await asyncio.to_thread(writer.close)

    assert fetched == [2, 2, 2, 1]  # never every key at once: 7 kept, the released one not read
    assert restored == (7, 2, 5)
    assert outcomes == [Replay(ANSWER), Replay(ANSWER), Replay(ANSWER), InFlight()]
    assert refused == Claimed()


async def test_through_the_api_a_repeat_after_the_hot_window_replays_and_charges_nothing(
    tmp_path: Path,
) -> None:
    # A hot window of 0 s: every answered key leaves memory at its shard's next sweep.
    async with running(tmp_path, idempotency_hot_s=0.0) as app:
        first = await pay(app, key="order-1")
        repeat = await pay(app, key="order-1")
        reused = await pay(app, key="order-1", body=b'{"amount": 5, "currency": "USD"}')
        held = app.state.parts.idempotency.held  # type: ignore[attr-defined]
    async with running(tmp_path, idempotency_hot_s=0.0) as app:
        held_after_restart = app.state.parts.idempotency.held  # type: ignore[attr-defined]
        after_restart = await pay(app, key="order-1")

    assert first.status == 200
    for replay in (repeat, after_restart):
        assert (replay.status, replay.headers["idempotent-replayed"]) == (200, "true")
        assert replay.body == first.body
    assert (reused.status, reused.json()["code"]) == (422, "idempotency_key_reused")
    assert (held, held_after_restart) == (0, 0)
    assert len(charges(tmp_path)) == 2  # the split's two legs, once


async def test_the_config_files_hot_window_sets_how_long_answered_keys_are_held_whole(tmp_path: Path) -> None:
    held = []
    for folder, store in (("cold", StoreConfig(idempotency_hot_s=0)), ("default", None)):
        async with running(tmp_path / folder, store=store) as app:
            first = await pay(app, key="order-1")
            repeat = await pay(app, key="order-1")
            held.append(app.state.parts.idempotency.held)  # type: ignore[attr-defined]
        assert (repeat.status, repeat.headers["idempotent-replayed"]) == (200, "true")
        assert repeat.body == first.body

    assert held == [0, 1]  # store.idempotency_hot_s: 0, and the default (600 s)
