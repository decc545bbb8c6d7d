"""Idempotency keys that survive a restart: the in-memory store answers, DuckDB remembers.

Every change to a key is written through the single writer, in order with the payment's events:

* a claim is stored (in flight) before anything is charged: the payment's first ``StepAttempted``
  waits for a commit, which holds the claim too;
* a completion stores the answer, and the API answers only after it is committed;
* a release (a request refused before it charged anything) deletes the key.

On start, the keys younger than the time-to-live are read back, oldest first; older ones are
deleted. A key whose request was in flight when the process stopped comes back in flight (a
repeat gets 409) until crash recovery settles its payment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from ingest.api.idempotency import (
    Claimed,
    ClaimOutcome,
    MemoryIdempotencyStore,
    StoredResponse,
)
from ingest.store.writer import Table, Write, Writer

KEYS = Table(
    "idempotency_keys",
    pa.schema(
        [
            ("merchant_id", pa.string()),
            ("key", pa.string()),
            ("fingerprint", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("status_code", pa.int32()),
            ("body", pa.binary()),
            ("media_type", pa.string()),
        ]
    ),
    "INSERT OR REPLACE INTO idempotency_keys SELECT * FROM batch",
    key=lambda row: (row[0], row[1]),
)


class DurableIdempotencyStore:
    """:class:`~ingest.api.idempotency.IdempotencyStore` written through to ``idempotency_keys``."""

    __slots__ = ("_claims", "_memory", "_wall", "_writer", "restored")

    def __init__(
        self,
        writer: Writer,
        ttl_s: float,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._writer = writer
        self._wall = wall
        self._memory = MemoryIdempotencyStore(ttl_s, monotonic)
        # What a completion writes besides the answer, for the keys claimed in this process.
        self._claims: dict[tuple[str, str], tuple[str, datetime]] = {}
        now = wall()
        oldest = now - timedelta(seconds=ttl_s)
        rows = writer.read_now(lambda connection: _load(connection, oldest))
        for merchant_id, key, fingerprint, created_at, status_code, body, media_type in rows:
            response = None if status_code is None else StoredResponse(status_code, bytes(body), media_type)
            age_s = (now - created_at).total_seconds()
            self._memory.restore(merchant_id, key, fingerprint, age_s, response)
        self.restored = len(rows)

    async def claim(self, merchant_id: str, key: str, fingerprint: str) -> ClaimOutcome:
        outcome = await self._memory.claim(merchant_id, key, fingerprint)
        if isinstance(outcome, Claimed):
            created_at = self._wall()
            self._claims[merchant_id, key] = (fingerprint, created_at)
            self._writer.submit(Write(KEYS, (merchant_id, key, fingerprint, created_at, None, None, None)))
        return outcome

    async def complete(self, merchant_id: str, key: str, response: StoredResponse) -> None:
        await self._memory.complete(merchant_id, key, response)
        claimed = self._claims.pop((merchant_id, key), None)
        if claimed is not None:
            fingerprint, created_at = claimed
            row = (merchant_id, key, fingerprint, created_at, *response)
            self._writer.submit(Write(KEYS, row))
        else:  # a key restored in flight: its row is already stored
            answer = (response.status_code, response.body, response.media_type, merchant_id, key)
            self._writer.submit(Write(None, apply=lambda connection: _complete(connection, answer)))

    async def release(self, merchant_id: str, key: str) -> None:
        await self._memory.release(merchant_id, key)
        self._claims.pop((merchant_id, key), None)
        self._writer.submit(Write(None, apply=lambda connection: _release(connection, merchant_id, key)))


def _load(connection: duckdb.DuckDBPyConnection, oldest: datetime) -> list[tuple[object, ...]]:
    connection.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [oldest])
    return connection.execute(
        "SELECT merchant_id, key, fingerprint, created_at, status_code, body, media_type "
        "FROM idempotency_keys ORDER BY created_at"
    ).fetchall()


def _complete(connection: duckdb.DuckDBPyConnection, answer: tuple[int, bytes, str, str, str]) -> None:
    connection.execute(
        "UPDATE idempotency_keys SET status_code = ?, body = ?, media_type = ? "
        "WHERE merchant_id = ? AND key = ?",
        list(answer),
    )


def _release(connection: duckdb.DuckDBPyConnection, merchant_id: str, key: str) -> None:
    connection.execute(
        "DELETE FROM idempotency_keys WHERE merchant_id = ? AND key = ? AND status_code IS NULL",
        [merchant_id, key],
    )
