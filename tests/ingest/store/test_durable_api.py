"""The API over the DuckDB store, in process: what a payment leaves in ``payorch.duckdb``, what
survives a restart (results, events, idempotency keys, complaints), and 503 when the writer is
behind. Each "restart" closes the app (its lifespan commits and closes the database) and builds a
new one on the same data folder."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import shutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import duckdb
import orjson
import pytest

from engine.config import StoreConfig
from engine.events import PaymentCompleted, PaymentFailed
from ingest.api.app import create_app
from ingest.api.idempotency import Claimed, Replay, StoredResponse
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.ledger_journal import FILE_NAME as LEDGER_FILE
from ingest.ledger_journal import read_journal
from ingest.records import StoredPayment
from ingest.store import records
from ingest.store.schema import CURRENT_VERSION, FILE_NAME
from ingest.store.writer import Write, Writer
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, Answer, body_of, call
from tests.ingest.store.test_writer import as_version

ADMIN = (b"authorization", b"Bearer adm_e2e_admin")
SPLIT = b'{"amount": "$100.00", "currency": "USD", "method": "apple_pay"}'


@asynccontextmanager
async def running(
    data_dir: Path, store: StoreConfig | None = None, config_text: str = CONFIG, **options: object
) -> AsyncIterator[object]:
    config = parse_config(config_text)
    if store is not None:
        config = dataclasses.replace(config, store=store)
    settings = Settings(config=config, data_dir=data_dir, **options)  # type: ignore[arg-type]
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def pay(app: object, key: str | None = None, body: bytes = SPLIT) -> Answer:
    headers = [ACME, JSON] + ([(b"idempotency-key", key.encode())] if key else [])
    return await call(app, "POST", "/v1/payments", headers, body_of(body))


async def held(writer: Writer) -> threading.Event:
    """Hold ``writer`` inside a commit until the event returned is set: what is queued meanwhile
    is not committed, and no read finds it."""
    disk, inside = threading.Event(), threading.Event()

    def stalled(_: object) -> None:
        inside.set()
        disk.wait(30)

    writer.submit(Write(None, apply=stalled))
    assert await asyncio.to_thread(inside.wait, 10)
    return disk


async def stall(writer: Writer) -> threading.Event:
    """Hold ``writer`` inside a commit with 10 writes waiting behind it (more than an admit limit
    of 5), until the event returned is set. The writes are queued only once the writer is inside
    the stalled commit: queued earlier, they could join its batch and leave the queue empty."""
    disk = await held(writer)
    for _ in range(10):
        writer.submit(Write(None, apply=lambda _: None))
    return disk


def charges(data_dir: Path) -> list[dict[str, object]]:
    return [line for line in read_journal(data_dir / LEDGER_FILE) if line.get("change") == "charge"]


async def test_a_payment_is_in_the_database_when_it_is_answered(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        answer = await pay(app)
        assert answer.status == 200, answer.body
        payment_id = answer.json()["payment_id"]
        # Read beside the writer, while the app runs: the answer came after the commit.
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        types = writer.read_now(
            lambda c: c.execute(
                "SELECT event_type FROM events WHERE payment_id = ? ORDER BY seq", [payment_id]
            ).fetchall()
        )
        assert [row[0] for row in types] == [
            "PaymentReceived",
            "PlanBuilt",
            "StepAttempted",
            "StepSucceeded",
            "StepAttempted",
            "StepSucceeded",
            "PaymentCompleted",
        ]
        stored = writer.read_now(
            lambda c: c.execute(
                "SELECT status, document FROM payments WHERE payment_id = ?", [payment_id]
            ).fetchone()
        )
        assert stored[0] == "succeeded"
        assert orjson.loads(stored[1]) == answer.json()


async def test_results_events_and_keys_survive_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        first = await pay(app, key="order-1")
        assert first.status == 200
        payment_id = first.json()["payment_id"]
        before = await call(app, "GET", f"/v1/payments/{payment_id}", [ACME], body_of(b""))
    assert len(charges(tmp_path)) == 2

    async with running(tmp_path) as app:
        again = await call(app, "GET", f"/v1/payments/{payment_id}", [ACME], body_of(b""))
        replay = await pay(app, key="order-1")
        reused = await pay(app, key="order-1", body=b'{"amount": 5, "currency": "USD"}')

    assert again.status == 200
    assert again.json() == before.json()
    events = again.json()["events"]
    assert isinstance(events, list)
    assert events[-1]["type"] == "PaymentCompleted"
    assert replay.status == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.body == first.body
    assert reused.status == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert len(charges(tmp_path)) == 2  # the replay charged nothing


async def test_a_form_payments_key_stored_before_forms_were_compared_by_field_still_replays(
    tmp_path: Path,
) -> None:
    form = b"amount=12.50&currency=usd&method=card"
    stored = b'{"payment_id": "pay_before", "status": "succeeded"}'
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, 1)  # a payorch that told bodies apart by their bytes, forms too
        connection.execute(
            "INSERT INTO idempotency_keys VALUES "
            "(1, 'm_acme', 'order-1', 'answered', ?, now(), 200, ?, 'application/json')",
            [hashlib.sha256(b"raw:" + form).hexdigest(), stored],
        )

    async with running(tmp_path) as app:
        headers = [
            ACME,
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"idempotency-key", b"order-1"),
        ]
        again = await call(app, "POST", "/v1/payments", headers, body_of(form))
        other = await call(app, "POST", "/v1/payments", headers, body_of(b"amount=12.51&currency=usd"))

    assert again.status == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.body == stored
    assert other.status == 422  # another body under the key is still refused
    assert other.json()["code"] == "idempotency_key_reused"
    assert charges(tmp_path) == []


async def test_the_start_logs_the_migrations_it_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, CURRENT_VERSION - 2)
    caplog.set_level(logging.INFO, logger="payorch.api")
    async with running(tmp_path):
        pass
    async with running(tmp_path):  # nothing to migrate: nothing said
        pass

    lines = [record.getMessage() for record in caplog.records if "migrated" in record.getMessage()]
    path, last = tmp_path / FILE_NAME, CURRENT_VERSION
    assert lines == [
        f"database {path}: migrated to schema version {last} (migrations {last - 1}, {last} applied now)"
    ]


async def test_the_start_names_the_one_migration_it_applied_in_the_singular(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The upgrade from the release before, one migration: it said "(migrations 9 applied now)".
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, CURRENT_VERSION - 1)
    caplog.set_level(logging.INFO, logger="payorch.api")
    async with running(tmp_path):
        pass

    lines = [record.getMessage() for record in caplog.records if "migrated" in record.getMessage()]
    path, last = tmp_path / FILE_NAME, CURRENT_VERSION
    assert lines == [f"database {path}: migrated to schema version {last} (migration {last} applied now)"]


async def test_the_start_warns_of_a_log_duckdb_could_not_replay_to_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path) as app:
        assert (await pay(app)).status == 200
    # What a crash leaves: a commit in the log only, here with its end damaged.
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        connection.execute("CREATE TABLE committed_rows AS SELECT 1 AS x")
        log = tmp_path / f"{FILE_NAME}.wal"
        logged = log.read_bytes()
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        shutil.copyfile(tmp_path / FILE_NAME, crashed / FILE_NAME)
        (crashed / log.name).write_bytes(logged[:-10])
    caplog.set_level(logging.WARNING, logger="payorch.api")
    async with running(crashed):
        pass

    kept = list(crashed.glob(f"{FILE_NAME}.wal.unreadable-*"))
    lines = [line for line in (r.getMessage() for r in caplog.records) if "could not be replayed" in line]
    assert len(kept) == 1
    assert len(lines) == 1
    assert f"kept whole as {kept[0]}" in lines[0]


async def test_the_first_start_says_it_created_the_database_not_that_it_migrated_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="payorch.api")
    async with running(tmp_path):
        pass

    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("database ")]
    assert lines == [f"database {tmp_path / FILE_NAME}: created at schema version {CURRENT_VERSION}"]


async def test_an_answer_stays_in_memory_only_until_committed_and_replays_from_the_database(
    tmp_path: Path,
) -> None:
    # Keys are kept a day: their answers (a few kilobytes each) held in memory grew the process by
    # gigabytes a day under steady traffic, and a start read them all back.
    async with running(tmp_path) as app:
        first = await pay(app, key="order-1")
        held = app.state.parts.idempotency.body_bytes  # type: ignore[attr-defined]
        replay = await pay(app, key="order-1")
    async with running(tmp_path) as app:
        held_after_restart = app.state.parts.idempotency.body_bytes  # type: ignore[attr-defined]
        replay_after_restart = await pay(app, key="order-1")
        reused = await pay(app, key="order-1", body=b'{"amount": 5, "currency": "USD"}')

    assert first.status == 200
    assert (held, held_after_restart) == (0, 0)
    for repeat in (replay, replay_after_restart):
        assert (repeat.status, repeat.headers["idempotent-replayed"]) == (200, "true")
        assert repeat.body == first.body
    assert (reused.status, reused.json()["code"]) == (422, "idempotency_key_reused")
    assert len(charges(tmp_path)) == 2  # the split's two legs, once


async def test_a_repeat_before_the_answers_commit_replays_it_once_committed(tmp_path: Path) -> None:
    # Replayed before its commit, an answer could be one a crash takes back: crash recovery then
    # finishes the payment anew, and the key replays another answer (a soak under SIGKILL saw a
    # replay's step latency differ from the stored result's).
    async with running(tmp_path) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        claimed = await parts.idempotency.claim("m_acme", "order-2", "fingerprint")
        parts.idempotency.hold("m_acme", "order-2")  # its request went on to charge
        disk = await stall(parts.writer)
        await parts.idempotency.complete("m_acme", "order-2", StoredResponse(200, b'{"paid": true}'))
        held = parts.idempotency.body_bytes
        repeat = asyncio.create_task(parts.idempotency.claim("m_acme", "order-2", "fingerprint"))
        await asyncio.sleep(0.1)
        answered_before_the_commit = repeat.done()
        disk.set()
        replayed = await repeat
        committed = parts.writer.read_now(
            lambda c: c.execute(
                "SELECT state FROM idempotency_keys WHERE key = 'order-2' ORDER BY version"
            ).fetchall()
        )
        held_once_committed = parts.idempotency.body_bytes
        repeat_once_committed = await parts.idempotency.claim("m_acme", "order-2", "fingerprint")

    assert isinstance(claimed, Claimed)
    assert held == len(b'{"paid": true}')  # the writer is behind: memory holds the answer
    assert not answered_before_the_commit
    assert replayed == Replay(StoredResponse(200, b'{"paid": true}'))
    assert committed == [("in_flight",), ("answered",)]
    assert held_once_committed == 0
    assert repeat_once_committed == Replay(StoredResponse(200, b'{"paid": true}'))


async def test_violations_and_complaints_are_kept(tmp_path: Path) -> None:
    complaint = orjson.dumps(
        {
            "complaint_id": "cmp_1",
            "category": "timeout",
            "description": "slow",
            "received_at": "2026-11-26T08:00:00Z",
        }
    )
    async with running(tmp_path) as app:
        refused = await pay(app, body=b'{"amount": "lots"}')
        assert refused.status == 422
        filed = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(complaint))
        assert filed.status == 201

    async with running(tmp_path) as app:
        listed = await call(app, "GET", "/v1/violations", [ADMIN], body_of(b""))
        again = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(complaint))

    violations = listed.json()["violations"]
    assert isinstance(violations, list)
    assert [violation["contract_id"] for violation in violations] == ["api/validation"]
    assert again.status == 200  # already filed: the stored complaint
    assert again.json()["complaint_id"] == "cmp_1"
    with duckdb.connect(str(tmp_path / FILE_NAME), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM complaints").fetchone() == (1,)
        received = connection.execute(
            "SELECT count(*) FROM events WHERE event_type = 'PaymentReceived'"
        ).fetchone()
        assert received == (1,)  # the refused request is recorded too


async def test_the_store_blocks_memory_limit_is_duckdbs(tmp_path: Path) -> None:
    def memory_limit(connection: duckdb.DuckDBPyConnection) -> object:
        return connection.execute("SELECT current_setting('memory_limit')").fetchone()

    async with running(tmp_path, store=StoreConfig(memory_limit_mb=256)) as app:
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        assert writer.read_now(memory_limit) == ("256.0 MiB",)
        assert (await pay(app)).status == 200


async def test_a_writer_behind_gives_503_charges_nothing_and_keeps_what_it_took(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, store=StoreConfig(admit_limit=5)) as app:
        acknowledged = await pay(app, key="before-the-stall")
        assert acknowledged.status == 200
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        disk = await stall(writer)

        busy = await pay(app, key="during-the-stall")

        assert busy.status == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["code"] == "service_unavailable"
        disk.set()
    assert len(charges(tmp_path)) == 2  # only the acknowledged payment's two steps

    async with running(tmp_path) as app:
        replay = await pay(app, key="before-the-stall")
        retried = await pay(app, key="during-the-stall")
    assert replay.headers["idempotent-replayed"] == "true"
    assert retried.status == 200  # the refused request kept no key: its retry is a new payment
    assert "idempotent-replayed" not in retried.headers


async def test_a_repeat_replays_whatever_the_service_would_make_of_its_body_now(tmp_path: Path) -> None:
    card = b'{"amount": 1250, "method": "card"}'
    async with running(tmp_path) as app:
        first = await pay(app, key="order-before-the-change", body=card)
    # The merchant stops taking cards: a new card payment is refused, a repeat is not.
    without_cards = CONFIG.replace(
        "      - method: card\n        processors: [stripe_sim]\n  - merchant_id: m_slow",
        "  - merchant_id: m_slow",
        1,
    )
    assert without_cards != CONFIG
    async with running(tmp_path, config_text=without_cards) as app:
        repeat = await pay(app, key="order-before-the-change", body=card)
        new = await pay(app, key="order-after-the-change", body=card)
        other_body = await pay(app, key="order-before-the-change", body=b'{"amount": "lots"}')

    assert first.status == 200
    assert (repeat.status, repeat.headers["idempotent-replayed"]) == (200, "true")
    assert repeat.body == first.body
    assert (new.status, new.json()["errors"][-1]["code"]) == (422, "method_not_enabled")  # type: ignore[index]
    # A key already used, with another (even unreadable) body: the key's answer, as Stripe gives.
    assert (other_body.status, other_body.json()["code"]) == (422, "idempotency_key_reused")
    assert len(charges(tmp_path)) == 1


async def test_a_repeat_replays_while_the_writer_is_behind(tmp_path: Path) -> None:
    async with running(tmp_path, store=StoreConfig(admit_limit=5)) as app:
        first = await pay(app, key="paid-before-the-stall")
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        disk = await stall(writer)

        repeat = await pay(app, key="paid-before-the-stall")
        new = await pay(app, key="new-during-the-stall")
        disk.set()

    assert first.status == 200
    assert (repeat.status, repeat.headers["idempotent-replayed"]) == (200, "true")  # not "busy"
    assert repeat.body == first.body
    assert new.status == 503


async def test_a_payments_terminal_event_is_committed_with_its_result(tmp_path: Path) -> None:
    # One write per batch: a terminal event queued apart from its result would be committed
    # alone, and a crash right after would keep an ended payment that GET cannot find and whose
    # key crash recovery never answers.
    async with running(tmp_path, store=StoreConfig(max_rows=1)) as app:
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        batches: list[list[tuple[str, object]]] = []
        write_batch = writer._write

        def recording(batch: list[Write]) -> int:
            rows: list[tuple[str, object]] = []
            for write in batch:
                for table, row in [(write.table, write.row)] if write.table is not None else write.joined:
                    rows.append((table.name, row[1] if table.name == "events" else row[0]))
            batches.append(rows)
            return int(write_batch(batch))

        writer._write = recording
        declined = (
            b'{"amount": "$100.00", "currency": "USD", "metadata": {"card_number": "4000000000000002"}}'
        )
        refused = b'{"amount": "twelve dollars", "currency": "USD"}'  # a 422: events, no result
        answers = [await pay(app, key="ends-1"), await pay(app, body=refused)]
        answers.append(await pay(app, body=declined))

    assert [answer.status for answer in answers] == [200, 422, 200], [a.body for a in answers]
    terminal = [
        (index, event.payment_id, type(event).__name__)
        for index, rows in enumerate(batches)
        for table, event in rows
        if isinstance(event, PaymentCompleted | PaymentFailed) and table == "events"
    ]
    kinds = [kind for _, _, kind in terminal]
    # The split that succeeded, the declined card's that failed (the refusal has no terminal event).
    assert sorted(type_ for type_ in kinds) == ["PaymentCompleted", "PaymentFailed"]
    for index, payment_id, _ in terminal:
        assert ("payments", payment_id) in batches[index], f"batch {index} holds no result for {payment_id}"


async def test_a_payments_row_names_the_seq_range_its_events_are_read_from(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        refused = await pay(app, body=b'{"amount": "twelve"}')  # events of its own, no result
        paid = [(await pay(app)).json()["payment_id"] for _ in range(3)]
        read = await call(app, "GET", f"/v1/payments/{paid[1]}", [ACME], body_of(b""))
    assert refused.status == 422

    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        for payment_id in paid:
            bounds = connection.execute(
                "SELECT first_seq, last_seq FROM payments WHERE payment_id = ?", [payment_id]
            ).fetchone()
            seqs = connection.execute(
                "SELECT min(seq), max(seq) FROM events WHERE payment_id = ?", [payment_id]
            ).fetchone()
            assert bounds == seqs, payment_id
        # A row written before the range was kept (schema version 2) has none: its events are
        # looked for everywhere.
        connection.execute(
            "UPDATE payments SET first_seq = NULL, last_seq = NULL WHERE payment_id = ?", [paid[1]]
        )

    async with running(tmp_path) as app:
        unbounded = await call(app, "GET", f"/v1/payments/{paid[1]}", [ACME], body_of(b""))
    assert read.status == unbounded.status == 200
    assert len(read.json()["events"]) == 7  # type: ignore[arg-type]
    assert unbounded.json() == read.json()


class _Recording:
    """A connection that notes each statement run on it (and its parameters)."""

    def __init__(
        self, connection: duckdb.DuckDBPyConnection, statements: list[tuple[str, list[object]]]
    ) -> None:
        self._connection, self._statements = connection, statements

    def execute(self, sql: str, parameters: list[object]) -> duckdb.DuckDBPyConnection:
        self._statements.append((sql, parameters))
        return self._connection.execute(sql, parameters)


async def test_a_payment_is_read_through_its_index_and_its_newest_row_counts(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        payment_id = str((await pay(app)).json()["payment_id"])
        writer: Writer = app.state.parts.writer  # type: ignore[attr-defined]

        def rewritten(connection: duckdb.DuckDBPyConnection) -> None:
            # A later row of the payment, as crash recovery writes one.
            connection.execute(
                "INSERT INTO payments SELECT payment_id, merchant_id, 'failed', "
                'updated_at + INTERVAL 1 SECOND, \'{"status": "failed"}\', first_seq, last_seq '
                "FROM payments WHERE payment_id = ?",
                [payment_id],
            )

        await writer.submit_and_wait(Write(None, apply=rewritten))
        statements: list[tuple[str, list[object]]] = []

        def read(connection: duckdb.DuckDBPyConnection) -> tuple[StoredPayment | None, list[str]]:
            stored = records._payment(
                cast(duckdb.DuckDBPyConnection, _Recording(connection, statements)), payment_id
            )
            plans = [
                str(connection.execute(f"EXPLAIN ANALYZE {sql}", parameters).fetchall())
                for sql, parameters in statements
                if "FROM payments" in sql
            ]
            return stored, plans

        stored, plans = writer.read_now(read)

    assert stored is not None
    assert stored.document["status"] == "failed"
    assert plans and all("Index Scan" in plan for plan in plans)  # not a scan of every payment
