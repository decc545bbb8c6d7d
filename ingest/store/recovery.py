"""Crash recovery at start: every payment the database shows interrupted is settled and finished
(``engine.recovery``) before the service takes new requests.

Interrupted means accepted (``PaymentReceived`` with ``accepted``) and without ``PaymentCompleted``
or ``PaymentFailed``. Each is read back from its ``payments.events.v1`` bytes, settled through its
processors' ``status``, finished per its policy, and stored like any other payment: its events,
its result, and its idempotency key's answer (so that the merchant's retry replays it instead of
charging again). A payment whose processor cannot answer stays interrupted for the next start.

Before it settles anything, a start makes the data folder its own (``ingest.store.ownership``):
one that finds payments to settle in a folder another service last started on (another host or
folder: a copy taken while that service ran) refuses, since that service may still be finishing
them, until the operator confirms it is gone (``--take-over``).

Each start then notes (``recovery_marks``) the seq below which every accepted payment has ended:
the first event of the oldest payment it left interrupted, else the next event. The next start
reads only the events from there, so its time grows with what was written since the oldest
payment that could still be unfinished, not with the whole history (a database without a mark
is read whole).

A crash can also cut between the commits of a keyed request that was not interrupted: its key's
claim committed, and then neither an accepted ``PaymentReceived`` (a refused request, or one cut
off before its payment began) nor, for a payment that ended, its key's answer. Such a key would
answer 409 until it expires. So a key still in flight once the interrupted payments are finished
is freed when no accepted payment carries it (nothing was charged: a charge waits for a commit
that holds its ``PaymentReceived``), and answered with its payment's stored result when that
payment ended and its result was committed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import duckdb

from engine.events import DomainEvent, PaymentReceived
from engine.observer import NULL_OBSERVER
from engine.recovery import Unsettled, interrupted, recover_payment
from ingest.api.encoding import dumps
from ingest.api.idempotency import KeyKeeper, StoredResponse
from ingest.api.parts import Parts
from ingest.codec.events import event_from_bytes
from ingest.codec.result_json import composite_result_to_json
from ingest.store.idempotency import DurableIdempotencyStore
from ingest.store.ownership import Claim, Owner, claim, last_owner, moved_line, record_owner, this_start
from ingest.store.writer import Write, Writer

logger = logging.getLogger("payorch.store")


@dataclass(slots=True)
class RecoveryReport:
    """What the start found and did."""

    interrupted: int = 0
    finished: int = 0
    settled_attempts: int = 0
    left: list[str] = field(default_factory=list)  # payment ids still interrupted, and why
    #: The payments left interrupted: payment id -> (its merchant, why it was left). They have no
    #: result until a later start settles them, yet may have charged: ``GET /v1/payments/{id}``
    #: shows each as ``processing``, saying why (it was a 404, which the service's own answers
    #: call "never charged", then a 503 while the list showed it ``processing``).
    left_payments: dict[str, tuple[str, str]] = field(default_factory=dict)

    def why_left(self, payment_id: str) -> str | None:
        """What a payment's ``interrupted`` says when this start left it unsettled; ``None`` for
        any other."""
        left = self.left_payments.get(payment_id)
        if left is None:
            return None
        return (
            f"cut short by a crash or a forced stop, and the service's last start could not settle it "
            f"({left[1]}); the next start settles it once its processor answers"
        )

    def summary(self) -> str:
        """One line for the operator, said at every start (0 interrupted payments too: that
        recovery ran)."""
        payments = "payment" if self.interrupted == 1 else "payments"
        attempts = (
            "attempt settled with its processor"
            if self.settled_attempts == 1
            else "attempts settled with their processors"
        )
        return (
            f"recovery: {self.interrupted} interrupted {payments}, {self.finished} finished, "
            f"{self.settled_attempts} {attempts}, {len(self.left)} left"
        )


def _interrupted_ids(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """The payments that may be interrupted, with the seq of their first event, oldest first:
    those received at or above the newest mark (every payment received below it has ended).

    Marks never decrease in the order they are written, so the newest is the highest: chosen by
    its ``marked_at`` instead, a mark noted while the wall clock ran years ahead stayed the newest
    until the clock caught up, and every start meanwhile read from it again."""
    mark = connection.execute("SELECT coalesce(max(below_seq), 0) FROM recovery_marks")
    below_seq = int(mark.fetchall()[0][0])
    # A payment's events all come after its PaymentReceived: none of one received at or above
    # the mark is below it. ``seq`` grows with the rows' order, so the scan skips the row groups
    # below the mark.
    rows = connection.execute(
        "SELECT payment_id, min(seq) FROM events WHERE seq >= ? GROUP BY payment_id "
        "HAVING NOT bool_or(event_type IN ('PaymentCompleted', 'PaymentFailed')) "
        """AND bool_or(event_type = 'PaymentReceived' AND accepted) """
        "ORDER BY min(seq)",
        [below_seq],
    ).fetchall()
    return [(str(row[0]), int(row[1])) for row in rows]


def _mark(connection: duckdb.DuckDBPyConnection, below_seq: int | None) -> None:
    """Note that every payment received below ``below_seq`` (``None``: every payment written
    so far) has ended."""
    if below_seq is None:
        row = connection.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchall()
        below_seq = int(row[0][0])
    connection.execute("INSERT INTO recovery_marks VALUES (?, ?)", [below_seq, datetime.now(UTC)])


def _events_of(connection: duckdb.DuckDBPyConnection, payment_id: str, first_seq: int) -> list[DomainEvent]:
    query = "SELECT proto FROM events WHERE seq >= ? AND payment_id = ? ORDER BY seq"
    rows = connection.execute(query, [first_seq, payment_id]).fetchall()
    return [event_from_bytes(bytes(row[0])) for row in rows]


async def recover_interrupted(parts: Parts) -> RecoveryReport:
    """Finish every interrupted payment (see the module text); nothing to do without a store.

    Up to :data:`RECOVERY_CONCURRENCY` payments are settled at once: each waits mostly on its
    processors' status calls, and one after another a start that found 93 payments cut short
    (processors answering in about 0.6 s) took 75 s before it listened, long enough for a
    supervisor's start-up probe to kill it and begin again."""
    report = RecoveryReport()
    writer = parts.writer
    if writer is None:
        return report
    found: list[tuple[str, int]] = await writer.read(_interrupted_ids)
    # Before anything is settled: a copy of another service's folder settles nothing.
    await _claim_folder(parts, writer, len(found))
    outcomes: list[_Outcome | None] = [None] * len(found)
    pending = iter(enumerate(found))

    async def settle_each() -> None:
        # Workers taking the next payment in turn: the tasks stay as few as the concurrency.
        for index, (payment_id, first_seq) in pending:
            outcomes[index] = await _recover_one(parts, writer, payment_id, first_seq)

    try:
        async with asyncio.TaskGroup() as workers:
            for _ in range(min(RECOVERY_CONCURRENCY, len(found))):
                workers.create_task(settle_each())
    except ExceptionGroup as failed:
        # A failure (a database that cannot be read) cancels the others and fails the start in
        # one line, as it did one payment at a time: the start knows the error, not the group.
        raise failed.exceptions[0] from None
    left_seqs: list[int] = []  # the first seq of each payment left interrupted
    for (payment_id, first_seq), outcome in zip(found, outcomes, strict=True):
        if outcome is None:  # not interrupted after all (its events end it)
            continue
        report.interrupted += 1
        if outcome.left is not None:
            report.left.append(outcome.left)
            report.left_payments[payment_id] = (outcome.merchant_id, outcome.left.partition(": ")[2])
            left_seqs.append(first_seq)
            parts.records.keep_left(payment_id, first_seq)  # read as running until a start settles it
            continue
        report.finished += 1
        report.settled_attempts += outcome.settled_attempts
    if isinstance(parts.idempotency, DurableIdempotencyStore):
        await _close_orphaned_keys(parts.idempotency, writer, parts.desk.keeper)
    await parts.records.sync()
    # Every payment received so far has ended but those left: the next start looks from the
    # oldest of them (or from the next event), not through the whole history again.
    await writer.submit_and_wait(Write(None, apply=partial(_mark, below_seq=min(left_seqs, default=None))))
    return report


async def _claim_folder(parts: Parts, writer: Writer, interrupted: int) -> None:
    """Make the data folder this start's, or refuse the start (``DataFolderMovedError``) when it
    was last another service's and holds payments to settle (``ingest.store.ownership``)."""
    settings = parts.settings
    here = this_start(settings.data_dir, settings.instance_name, settings.host_name)
    last: Owner | None = await writer.read(last_owner)
    allowed = claim(last, here, interrupted, settings.take_over)
    taken_from = None if last is None or allowed is Claim.OWN else last.instance_id
    await writer.submit_and_wait(
        Write(None, apply=partial(record_owner, owner=here, taken_over_from=taken_from))
    )
    if last is not None and allowed is not Claim.OWN:
        logger.warning("%s", moved_line(last, here, allowed))


#: How many interrupted payments crash recovery settles at once (see :func:`recover_interrupted`):
#: 93 of them, processors answering in about 0.6 s, took 75 s one at a time.
RECOVERY_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What recovery did with one interrupted payment of ``merchant_id``: finished it (``left``
    is ``None``) after asking about ``settled_attempts`` of its attempts, or left it, saying why."""

    merchant_id: str
    settled_attempts: int = 0
    left: str | None = None


async def _recover_one(parts: Parts, writer: Writer, payment_id: str, first_seq: int) -> _Outcome | None:
    """Settle and finish one payment; ``None`` when its events show it was not interrupted."""
    events: list[DomainEvent] = await writer.read(
        partial(_events_of, payment_id=payment_id, first_seq=first_seq)
    )
    if not interrupted(events):
        return None
    merchant_id = events[0].merchant_id
    merchant = parts.merchants.get(merchant_id)
    if merchant is None:
        return _Outcome(merchant_id, left=f"{payment_id}: merchant {merchant_id} is not configured")
    observer = parts.telemetry or NULL_OBSERVER
    try:
        # One trace per payment recovered: its events' log lines carry it, and its voids and
        # refunds are spans within it (they were unrelated roots, and the events had none).
        with observer.span(RECOVERY_SPAN, {PAYMENT_ID: payment_id}):
            recovered = await recover_payment(
                events,
                service=parts.engine.service,
                processors=parts.engine.processors,
                merchant=merchant,
                sink=parts.records,
                clock=parts.clock,
                observer=observer,
            )
    except Unsettled as why:
        return _Outcome(merchant_id, left=str(why))
    result = recovered.result
    document = dumps(composite_result_to_json(result))
    # The crashed process held where its events begin: the row names it, so that a read of
    # the payment looks only there, not through every event before it.
    await parts.records.save_result(result, document, first_seq=first_seq)
    if recovered.idempotency_key is not None:
        answer = StoredResponse(200, document)
        # A key holding a card number is renamed as kept (see _keyed_payments).
        key, _ = parts.desk.keeper.kept(recovered.idempotency_key)
        await parts.idempotency.complete(result.merchant_id, key, answer)
    # Its answer died with the crashed process, and so did its count: counted here, every
    # finished payment counts once in payorch_payments_total, as the store holds it.
    parts.metrics.count_payment(result.status.value)
    return _Outcome(merchant_id, settled_attempts=recovered.settled_attempts)


#: The span around the recovery of one payment (a root: the request that began it is gone), with
#: the payment's id.
RECOVERY_SPAN = "recovery"
PAYMENT_ID = "payorch.payment_id"

#: How long before its key's claim a payment's ``PaymentReceived`` may be stamped (clock steps).
_CLOCK_SLACK = timedelta(minutes=5)


async def _close_orphaned_keys(keys: DurableIdempotencyStore, writer: Writer, keeper: KeyKeeper) -> None:
    """Free or answer the keys left in flight without an interrupted payment (see the module text)."""
    unanswered = keys.unanswered()
    if not unanswered:
        return
    since = min(unanswered.values()) - _CLOCK_SLACK
    merchants = sorted({merchant_id for merchant_id, _ in unanswered})
    found = await writer.read(partial(_keyed_payments, merchants=merchants, since=since, keeper=keeper))
    for merchant_key in unanswered:
        merchant_id, key = merchant_key
        if merchant_key not in found:
            await keys.release(merchant_id, key)
            logger.warning("recovery: freed the key %r of %s: its request charged nothing", key, merchant_id)
            continue
        payment_id, document = found[merchant_key]
        if document is not None:
            await keys.complete(merchant_id, key, StoredResponse(200, document.encode()))
            logger.warning("recovery: the key %r of %s answers its payment %s", key, merchant_id, payment_id)


def _keyed_payments(
    connection: duckdb.DuckDBPyConnection, merchants: list[str], since: datetime, keeper: KeyKeeper
) -> dict[tuple[str, str], tuple[str, str | None]]:
    """The accepted payments received since ``since`` for ``merchants`` that carry an idempotency
    key: (merchant, key as kept) -> (payment id, its stored result or ``None``). A payorch of
    schema version 1 recorded a key holding a card number as given, and the start renamed its
    rows (``ingest.store.idempotency``): looked up as given, its key was freed though the
    payment had charged, and a repeat charged again."""
    rows = connection.execute(
        "SELECT e.payment_id, e.proto, p.document FROM events AS e LEFT JOIN ("
        "SELECT payment_id, arg_max(document, updated_at) AS document FROM payments GROUP BY payment_id"
        ") AS p USING (payment_id) "
        "WHERE e.event_type = 'PaymentReceived' AND e.accepted AND e.ts >= ? "
        "AND list_contains(?, e.merchant_id)",
        [since, merchants],
    ).fetchall()
    found: dict[tuple[str, str], tuple[str, str | None]] = {}
    for payment_id, proto, document in rows:
        received = event_from_bytes(bytes(proto))
        if isinstance(received, PaymentReceived) and received.idempotency_key is not None:
            key, _ = keeper.kept(received.idempotency_key)
            found[received.merchant_id, key] = (str(payment_id), document)
    return found
