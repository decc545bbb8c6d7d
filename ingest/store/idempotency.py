"""Idempotency keys that survive a restart: the in-memory store answers, DuckDB remembers.

Every change to a key is written through the single writer, in order with the payment's events:

* a claim is stored (in flight) before anything is charged: the payment's first ``StepAttempted``
  waits for a commit, which holds the claim too;
* a completion stores the answer, and the API answers only after it is committed;
* a release (a request refused before it charged anything) frees the key.

Each change is a row added to ``idempotency_keys`` (the newest row of a key is its state). On
start, the keys younger than the time-to-live are read back, oldest first; older rows are
deleted. A key whose request was in flight when the process stopped comes back in flight (a
repeat gets 409) until crash recovery settles its payment; crash recovery also answers or frees a
key whose payment the crash left without an interrupted one to settle (``ingest.store.recovery``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
            ("version", pa.int64()),
            ("merchant_id", pa.string()),
            ("key", pa.string()),
            ("state", pa.string()),
            ("fingerprint", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("status_code", pa.int32()),
            ("body", pa.binary()),
            ("media_type", pa.string()),
        ]
    ),
    "INSERT INTO idempotency_keys SELECT * FROM batch",
)
IN_FLIGHT, ANSWERED, RELEASED = "in_flight", "answered", "released"


class DurableIdempotencyStore:
    """:class:`~ingest.api.idempotency.IdempotencyStore` written through to ``idempotency_keys``:
    every change is a row added (no upsert: an insert costs half), the newest row of a key wins."""

    __slots__ = ("_claims", "_memory", "_version", "_wall", "_writer", "restored")

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
        # What a change writes besides its state, for the keys claimed and not yet answered.
        self._claims: dict[tuple[str, str], tuple[str, datetime]] = {}
        now = wall()
        oldest = now - timedelta(seconds=ttl_s)
        last_version, rows = writer.read_now(lambda connection: _load(connection, oldest))
        self._version = itertools.count(last_version + 1)
        for merchant_id, key, state, fingerprint, created_at, status_code, body, media_type in rows:
            answered = state == ANSWERED
            response = StoredResponse(status_code, bytes(body), media_type) if answered else None
            self._memory.restore(merchant_id, key, fingerprint, (now - created_at).total_seconds(), response)
            if not answered:
                self._claims[merchant_id, key] = (fingerprint, created_at)
        self.restored = len(rows)

    def unanswered(self) -> dict[tuple[str, str], datetime]:
        """The keys claimed and neither answered nor released yet, with the time of their claim."""
        return {merchant_key: created_at for merchant_key, (_, created_at) in self._claims.items()}

    async def claim(self, merchant_id: str, key: str, fingerprint: str) -> ClaimOutcome:
        outcome = await self._memory.claim(merchant_id, key, fingerprint)
        if isinstance(outcome, Claimed):
            created_at = self._wall()
            self._claims[merchant_id, key] = (fingerprint, created_at)
            self._write(merchant_id, key, IN_FLIGHT, fingerprint, created_at)
        return outcome

    async def complete(self, merchant_id: str, key: str, response: StoredResponse) -> None:
        await self._memory.complete(merchant_id, key, response)
        claimed = self._claims.pop((merchant_id, key), None)
        if claimed is not None:
            self._write(merchant_id, key, ANSWERED, *claimed, response)

    async def release(self, merchant_id: str, key: str) -> None:
        await self._memory.release(merchant_id, key)
        claimed = self._claims.pop((merchant_id, key), None)
        if claimed is not None:
            self._write(merchant_id, key, RELEASED, *claimed)

    def _write(
        self,
        merchant_id: str,
        key: str,
        state: str,
        fingerprint: str,
        created_at: datetime,
        response: StoredResponse | None = None,
    ) -> None:
        answer = (None, None, None) if response is None else tuple(response)
        row = (next(self._version), merchant_id, key, state, fingerprint, created_at, *answer)
        self._writer.submit(Write(KEYS, row))


def _load(connection: duckdb.DuckDBPyConnection, oldest: datetime) -> tuple[int, list[tuple[Any, ...]]]:
    connection.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [oldest])
    last = connection.execute("SELECT coalesce(max(version), 0) FROM idempotency_keys").fetchone()
    rows = connection.execute(
        "SELECT merchant_id, key, state, fingerprint, created_at, status_code, body, media_type "
        "FROM idempotency_keys "
        "QUALIFY row_number() OVER (PARTITION BY merchant_id, key ORDER BY version DESC) = 1 "
        "ORDER BY version"
    ).fetchall()
    return (0 if last is None else int(last[0])), [row for row in rows if row[2] != RELEASED]
