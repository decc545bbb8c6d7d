"""The :class:`~ingest.records.Records` port over DuckDB, through the single :class:`Writer`.

What must be durable before money moves or an answer leaves is waited for; the rest is queued
and committed with the next batch, in order:

* ``StepAttempted`` is committed before its processor is called (intent before effect): its
  ``emit`` returns only after the commit. A payment's first one refused by the disk raises
  :class:`ChargeNotSentError`: no processor was called for the payment, nothing was charged.
* every other event, violation and result is queued; :meth:`DuckDBRecords.sync`, which the API
  calls before it answers a payment, returns once everything queued so far is committed, so the
  answer never gets ahead of the payment's terminal event, its result and its idempotency key.
* a payment's terminal event (``PaymentCompleted`` or ``PaymentFailed``) waits for its result and
  is committed with it, in one transaction: a crash between two batches could otherwise keep the
  ended payment without its result (``GET`` would not find it, and its idempotency key would stay
  in flight, since crash recovery finishes only payments without a terminal event). ``sync``
  queues any terminal event still waiting, so none is ever left behind.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import Any, TypeVar

import duckdb
import orjson
import pyarrow as pa

from engine.complaints import Complaint
from engine.contracts import ContractViolation, Severity
from engine.events import (
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
)
from engine.results import CompositeResult
from engine.types import ContractId, MerchantId, PaymentId, RequestId
from ingest.codec.events import event_to_proto
from ingest.codec.result_json import REJECTED, JsonObject, issue_from_json, issue_to_json
from ingest.records import (
    ComplaintQuery,
    PaymentPlace,
    PaymentQuery,
    RecordedViolation,
    StoredPayment,
    ViolationPlace,
    ViolationQuery,
)
from ingest.store import charged_column, event_columns, failure_column, payment_list
from ingest.store.admission import Admission
from ingest.store.complaint_ids import ComplaintIds
from ingest.store.event_columns import PaymentTerms, stored_terms, terms_after
from ingest.store.writer import StoreError, Table, Write, Writer

_TS = pa.timestamp("us", tz="UTC")


class ChargeNotSentError(StoreError):
    """A payment's first ``StepAttempted`` could not be committed: no processor was called for the
    payment (intent before effect), so nothing of it was charged."""


#: The row of an event, from its seq, the event, its envelope's bytes and its payment's terms.
_Row = Callable[[int, DomainEvent, bytes, PaymentTerms | None], tuple[Any, ...]]


def _row_of(kind: type[DomainEvent]) -> _Row:
    """How the events table keeps an event of ``kind``: the fields every event shares, then step
    index, processor, amount, error code, accepted, the envelope ``proto`` (given), decline code
    (the columns' order in the table: ``decline_code`` came later, migration 4), then the columns
    of :mod:`ingest.store.event_columns`, :mod:`ingest.store.charged_column` and
    :mod:`ingest.store.failure_column`. A ``PlanBuilt``'s amount is its total (it was left NULL
    before migration 8).

    The function is written out once per kind, as ``dataclasses`` writes an ``__init__``: a field
    the kind has is read as an attribute, one it lacks is the constant ``None``, and the row is
    made in one tuple. The writer makes one for every event; with a getter called per column (a
    Python function for each missing one) a row cost 1.1 µs, written out 0.8."""
    names = {field.name for field in fields(kind)}
    charged, details = charged_column.charged_of(kind), failure_column.details_of(kind)

    def read(*candidates: str) -> str:
        found = next((name for name in candidates if name in names), None)
        return "None" if found is None else f"event.{found}"

    def value_of(*candidates: str) -> str:  # an enum member's value
        found = read(*candidates)
        return "None" if found == "None" else f"(None if {found} is None else {found}.value)"

    source = (
        "def row(seq, event, proto, terms):\n"
        "    currency, method, status, attempt, latency = cut(event, terms)\n"
        "    return (seq, event.payment_id, event.request_id, event.merchant_id, event.event_type, "
        f"event.timestamp, {read('step_index')}, {read('processor_id')}, "
        f"{read('amount_cents', 'amount', 'total_amount', 'total_amount_cents')}, "
        f"{value_of('error_code', 'final_error')}, {read('accepted')}, proto, "
        f"{value_of('decline_code')}, currency, method, status, attempt, latency, "
        f"{'None' if charged is None else 'charged(event)'}, "
        f"{'None' if details is None else 'details(event)'})\n"
    )
    scope: dict[str, Any] = {"cut": event_columns.cut_of(kind), "charged": charged, "details": details}
    # Only the names of the kind's own dataclass fields enter the text.
    exec(source, scope)  # noqa: S102
    row: _Row = scope["row"]
    return row


_ROWS: dict[type[DomainEvent], _Row] = {}


def _event_row(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row of ``(seq, event)``, or of ``(seq, event, terms)``: the terms of the event's payment
    known before it (:mod:`ingest.store.event_columns`; without them, its currency and step method
    are those the event itself holds)."""
    event = item[1]
    kind = type(event)
    row = _ROWS.get(kind)
    if row is None:
        row = _ROWS[kind] = _row_of(kind)
    # ``event_to_bytes`` without the call of its own, one of four Python calls an event here.
    proto = event_to_proto(event).SerializeToString()
    return row(item[0], event, proto, item[2] if len(item) > 2 else None)


EVENTS = Table(
    "events",
    pa.schema(
        [
            ("seq", pa.int64()),
            ("payment_id", pa.string()),
            ("request_id", pa.string()),
            ("merchant_id", pa.string()),
            ("event_type", pa.string()),
            ("ts", _TS),
            ("step_index", pa.int32()),
            ("processor_id", pa.string()),
            ("amount_cents", pa.int64()),
            ("error_code", pa.string()),
            ("accepted", pa.bool_()),
            ("proto", pa.binary()),
            ("decline_code", pa.string()),
            *event_columns.COLUMNS,
            charged_column.COLUMN,
            failure_column.COLUMN,
        ]
    ),
    "INSERT INTO events SELECT * FROM batch",
    _event_row,
)


def _violation_row(item: tuple[int, ContractViolation]) -> tuple[Any, ...]:
    seq, violation = item
    return (
        seq,
        violation.contract_id,
        violation.severity.value,
        violation.owner,
        violation.message,
        violation.request_id,
        violation.payment_id,
        violation.merchant_id,
        violation.timestamp,
    )


VIOLATIONS = Table(
    "violations",
    pa.schema(
        [
            ("seq", pa.int64()),
            ("contract_id", pa.string()),
            ("severity", pa.string()),
            ("owner", pa.string()),
            ("message", pa.string()),
            ("request_id", pa.string()),
            ("payment_id", pa.string()),
            ("merchant_id", pa.string()),
            ("ts", _TS),
        ]
    ),
    "INSERT INTO violations SELECT * FROM batch",
    _violation_row,
)

PAYMENTS = Table(
    "payments",
    pa.schema(
        [
            ("payment_id", pa.string()),
            ("merchant_id", pa.string()),
            ("status", pa.string()),
            ("updated_at", _TS),
            ("document", pa.string()),
            ("first_seq", pa.int64()),
            ("last_seq", pa.int64()),
        ]
    ),
    "INSERT INTO payments SELECT * FROM batch",
)

COMPLAINTS = Table(
    "complaints",
    pa.schema(
        [
            ("complaint_id", pa.string()),
            ("merchant_id", pa.string()),
            ("received_at", _TS),
            ("category", pa.string()),
            ("description", pa.string()),
            ("payment_id", pa.string()),
            ("request_id", pa.string()),
            ("contract_id", pa.string()),
            ("validation_errors", pa.string()),  # JSON: the corrections made as it was filed
        ]
    ),
    "INSERT OR IGNORE INTO complaints SELECT * FROM batch",
)


#: Payments running at once are a few thousand at most: past this many PaymentReceived seqs kept,
#: the oldest are of payments whose result never came.
_MAX_OPENED = 65_536
#: The share of the oldest entries let go at once when a map reaches its bound (see :func:`_keep`).
_DROPPED_SHARE = 64
_NO_SEQ_ABOVE = 2**63 - 1
_Kept = TypeVar("_Kept")
_Found = TypeVar("_Found")  # what a payment read finds


def _keep(kept: dict[str, _Kept], key: str, value: _Kept) -> None:
    """``kept[key] = value``, ``kept`` (a map of running payments) bounded by :data:`_MAX_OPENED`: at
    the bound its oldest entries (insertion order) are let go, those of payments that never ended,
    while the newest, still running, stay. Cleared whole, every payment running then read as "no
    such payment" (404, which says "never charged") until it ended, and lost its terms (its events
    not committed yet were written without them). A 64th of them at once: one at a time, each found by
    ``next(iter(kept))`` walked over the slots of those let go before it, 18 us a payment at the
    bound; a pass per 1,024 payments (about 80 us) makes it under 1 us. Below the bound, the
    usual case, a payment costs what a plain insert does (0.2 us with its pop)."""
    if len(kept) >= _MAX_OPENED:
        for oldest in list(itertools.islice(kept, max(1, _MAX_OPENED // _DROPPED_SHARE))):
            del kept[oldest]
    kept[key] = value


def _last_seq(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    row = connection.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()  # noqa: S608 - a constant name
    return 0 if row is None else int(row[0])


class DuckDBRecords:
    """Events, violations, results and complaints in ``payorch.duckdb`` (see the module text)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        #: Terminal events waiting for their payment's result, by payment id (see the module text).
        self._endings: dict[str, Write] = {}
        #: The seq of each running payment's PaymentReceived, for its result's row (its events'
        #: range, which a read of the payment looks in).
        self._opened: dict[str, int] = {}
        #: The same for each payment this start's crash recovery left unsettled (a later start
        #: settles it): read as a running one is, until then.
        self._left: dict[str, int] = {}
        #: The terms (currency, steps' methods) of each running payment, cut into its events' rows.
        self._terms: dict[str, PaymentTerms] = {}
        self._event_seq = itertools.count(writer.read_now(lambda c: _last_seq(c, "events")) + 1)
        self._violation_seq = itertools.count(writer.read_now(lambda c: _last_seq(c, "violations")) + 1)
        #: Every complaint id stored: a lookup of another is answered without a read.
        self._complaint_ids = ComplaintIds(writer.read_now(_complaint_ids))
        #: The complaints being stored now, by merchant and id: another filing of one waits for it.
        self._complaints_pending: dict[tuple[str, str], asyncio.Future[None]] = {}

    @property
    def writer(self) -> Writer:
        return self._writer

    async def emit(self, event: DomainEvent) -> None:
        kind = type(event)
        terms = self._terms.get(event.payment_id)
        if terms is None and kind is not PaymentReceived and kind is not PlanBuilt:
            # A payment received before this start, which crash recovery finishes (or one whose
            # terms were let go, see below): its terms are in its stored events.
            terms = await self._writer.read(partial(stored_terms, payment_id=event.payment_id))
        self._keep_terms(event, terms)
        seq = next(self._event_seq)
        write = Write(EVENTS, (seq, event, terms))
        if kind is StepAttempted:
            try:
                await self._writer.submit_and_wait(write)
            except StoreError as error:
                # Steps run in order, and a step that fails ends the payment: attempt 1 of step 0
                # is a payment's first charge, and none was sent before it.
                if isinstance(event, StepAttempted) and (event.step_index, event.attempt) == (0, 1):
                    raise ChargeNotSentError(str(error)) from error
                raise
        elif kind is PaymentCompleted or kind is PaymentFailed:
            self._endings[event.payment_id] = write
        else:
            if type(event) is PaymentReceived:  # accepted, or refused (see save_refusal)
                _keep(self._opened, event.payment_id, seq)  # bounded: results that never came (faults)
            self._writer.submit(write)

    def _keep_terms(self, event: DomainEvent, terms: PaymentTerms | None) -> None:
        """Keep what the payment's later events are about, until its last event."""
        kind, kept = type(event), self._terms
        if (
            kind is PaymentCompleted
            or kind is PaymentFailed
            or (type(event) is PaymentReceived and not event.accepted)
        ):
            kept.pop(event.payment_id, None)
            return
        after = terms_after(event, terms)
        if after is not None and kept.get(event.payment_id) is not after:
            _keep(kept, event.payment_id, after)  # bounded: payments that never ended (faults)

    async def record_violation(self, violation: ContractViolation) -> None:
        self._writer.submit(Write(VIOLATIONS, (next(self._violation_seq), violation)))

    async def save_result(
        self, result: CompositeResult, document: bytes, *, first_seq: int | None = None
    ) -> None:
        ending = self._endings.pop(result.payment_id, None)
        opened = self._opened.pop(result.payment_id, first_seq)
        row = (
            result.payment_id,
            result.merchant_id,
            result.status.value,
            datetime.now(UTC),
            document.decode(),
            opened,
            None if ending is None else ending.row[0],  # the terminal event is the last
        )
        write = Write(PAYMENTS, row)
        self._writer.submit(write if ending is None else Write.together(ending, write))

    async def save_refusal(self, received: PaymentReceived, document: bytes) -> None:
        # Its one event is the payment's whole range, so a read looks in that row group only.
        seq = self._opened.pop(received.payment_id, None)
        row = (
            received.payment_id,
            received.merchant_id,
            REJECTED,
            datetime.now(UTC),
            document.decode(),
            seq,
            seq,
        )
        self._writer.submit(Write(PAYMENTS, row))

    async def sync(self) -> None:
        """Return once everything recorded so far is committed."""
        endings = self._endings
        while endings:  # a terminal event whose result never came (a fault between them)
            _, ending = endings.popitem()
            self._writer.submit(ending)
        await self._writer.submit_and_wait(Write(None))

    def admit(self, *, over_share: bool = False, writes: int = 0) -> Admission:
        return self._writer.admit(over_share=over_share, writes=writes)

    async def record_complaint(self, complaint: Complaint) -> Complaint | None:
        """Store ``complaint`` unless its merchant filed its id before (that complaint is returned).

        An id no filter holds was never stored (:class:`ComplaintIds`): the common case, a new
        complaint, is queued without a read, which waited for the lock every read shares (behind
        an admin's long read, as long). The same id filed twice at once waits for the first filing
        to be committed (or refused), then reads: no two rows of one id meet in a batch, and the
        row stored is always the first one's, so nothing is read back."""
        key = (complaint.merchant_id, complaint.complaint_id)
        while (pending := self._complaints_pending.get(key)) is not None:
            await asyncio.shield(pending)  # its commit or its failure; the first filer reports which
        if complaint.complaint_id in self._complaint_ids:  # maybe stored: read it (stored, or a false hit)
            first: Complaint | None = await self._writer.read(
                lambda c: _complaint(c, complaint.merchant_id, complaint.complaint_id)
            )
            if first is not None:
                return first
            if key in self._complaints_pending:  # filed meanwhile, during the read: wait for it
                return await self.record_complaint(complaint)
        row = (
            complaint.complaint_id,
            complaint.merchant_id,
            complaint.received_at,
            complaint.category,
            complaint.description,
            complaint.payment_id,
            complaint.request_id,
            complaint.contract_id,
            orjson.dumps([issue_to_json(issue) for issue in complaint.validation_errors]).decode(),
        )
        self._complaint_ids.add(complaint.complaint_id)
        done = asyncio.get_running_loop().create_future()
        self._complaints_pending[key] = done
        try:
            await self._writer.submit_and_wait(Write(COMPLAINTS, row))
        finally:
            del self._complaints_pending[key]
            done.set_result(None)
        return None

    async def complaints_named(self, complaint_id: str, merchant_id: str | None) -> Sequence[Complaint]:
        if complaint_id not in self._complaint_ids:  # never stored: no read (see ComplaintIds)
            return []
        found: list[Complaint] = await self._writer.read(
            lambda c: _complaints_named(c, complaint_id, merchant_id)
        )
        return found

    async def complaints_page(self, query: ComplaintQuery) -> Sequence[Complaint]:
        found: list[Complaint] = await self._writer.read(lambda c: _complaints_page(c, query))
        return found

    def keep_left(self, payment_id: str, first_seq: int) -> None:
        """Note a payment crash recovery left unsettled at this start, whose events begin at
        ``first_seq``: it has no result until a later start settles it, and is read as a running
        one, from its events so far (it may have charged)."""
        self._left[payment_id] = first_seq

    def _first_seq(self, payment_id: str) -> int | None:
        """Where the events of ``payment_id`` begin when it has no result yet (running here, or
        left by crash recovery); ``None`` for any other."""
        opened = self._opened.get(payment_id)
        return self._left.get(payment_id) if opened is None else opened

    async def payment(self, payment_id: str) -> StoredPayment | None:
        # A payment with no result yet is one received here and still running, or one crash
        # recovery left (:meth:`_first_seq`): its events are read from their first. Any other
        # without a result row is not looked for in the events: no index finds a payment id there,
        # and a scan of those since the start took 260 ms at 20M events, for every id that names
        # nothing.
        return await self._read_payment(_payment, payment_id)

    async def payment_merchant(self, payment_id: str) -> str | None:
        return await self._read_payment(_payment_merchant, payment_id)

    async def _read_payment(self, query: Callable[..., _Found | None], payment_id: str) -> _Found | None:
        """``query`` of ``payment_id`` (from its first event's seq, when known); when it finds
        nothing, again once whatever was queued before is committed (a result still in the queue)."""
        found: _Found | None = None
        for _ in range(2):
            opened = self._first_seq(payment_id)
            found = await self._writer.read(partial(query, payment_id=payment_id, opened=opened))
            if found is not None or not await self._flushed():
                break
        return found

    async def _flushed(self) -> bool:
        """Commit what is queued, for a read of a payment that found nothing, to read it again:
        a payment whose result is queued and not committed yet is no longer among the running ones
        (``save_result`` let it go), and one just received has its ``PaymentReceived`` queued;
        either would read as "no such payment" for those few milliseconds. Whether a second read
        may find more (not once the store is closed)."""
        try:
            await self._writer.submit_and_wait(Write(None))
        except StoreError:
            return False
        return True

    async def payment_place(self, payment_id: str, merchant_id: str | None) -> PaymentPlace | None:
        found: PaymentPlace | None = await self._writer.read(
            lambda c: payment_list.payment_place(c, payment_id, merchant_id)
        )
        return found

    async def payments_page(self, query: PaymentQuery) -> Sequence[StoredPayment]:
        found: list[StoredPayment] = await self._writer.read(lambda c: payment_list.payments_page(c, query))
        return found

    async def request_payments(self, merchant_id: str, request_id: str) -> frozenset[str] | None:
        # What was queued before is committed first: a reused key's violation is answered
        # without waiting for its commit, and a merchant may name that request at once.
        await self._writer.submit_and_wait(Write(None))
        found: frozenset[str] | None = await self._writer.read(
            lambda c: _request_payments(c, merchant_id, request_id)
        )
        return found

    async def violations(self, query: ViolationQuery) -> Sequence[ContractViolation]:
        return [recorded.violation for recorded in await self.violations_page(query)]

    async def violations_page(self, query: ViolationQuery) -> Sequence[RecordedViolation]:
        found: list[RecordedViolation] = await self._writer.read(lambda c: _violations(c, query))
        return found

    async def violation_place(self, seq: int) -> ViolationPlace | None:
        found: ViolationPlace | None = await self._writer.read(lambda c: _violation_place(c, seq))
        return found

    def complaints(self) -> list[Complaint]:
        found: list[Complaint] = self._writer.read_now(_complaints)
        return found

    def healthy(self) -> bool:
        return self._writer.alive


def _payment(
    connection: duckdb.DuckDBPyConnection, payment_id: str, opened: int | None = None
) -> StoredPayment | None:
    rows = _result_rows(connection, payment_id)
    if not rows:
        if opened is None:
            return None
        # No result yet: running, its events from ``opened`` on.
        running = payment_list.running_payment(connection, payment_id, opened)
        if running is not None:
            return running
        # Or it ended between the two reads: its result was committed with its last event.
        rows = _result_rows(connection, payment_id)
        if not rows:
            return None
    row = max(rows, key=itemgetter(4))
    # Only the row groups of the payment's seq range are read (a bound not known: from the start,
    # or to the end).
    first = 0 if row[2] is None else int(row[2])
    last = _NO_SEQ_ABOVE if row[3] is None else int(row[3])
    events = connection.execute(
        "SELECT proto FROM events WHERE seq BETWEEN ? AND ? AND payment_id = ? ORDER BY seq",
        [first, last, payment_id],
    ).fetchall()
    document: JsonObject = orjson.loads(row[1])
    document["events"] = [payment_list.event_document(bytes(event[0])) for event in events]
    return StoredPayment(str(row[0]), document)


def _result_rows(connection: duckdb.DuckDBPyConnection, payment_id: str) -> list[tuple[Any, ...]]:
    # Every row of the payment (one, or a few once crash recovery finished it), through the
    # ``payments_by_id`` index, and the newest picked by the caller: asked for ``ORDER BY
    # updated_at DESC LIMIT 1``, DuckDB plans a top-N over a scan of the whole table, and a read
    # took longer with every payment kept (10 ms at 200,000 payments, 70 to 900 ms at 2.2M,
    # against about 1 ms).
    rows: list[tuple[Any, ...]] = connection.execute(
        "SELECT merchant_id, document, first_seq, last_seq, updated_at FROM payments WHERE payment_id = ?",
        [payment_id],
    ).fetchall()
    return rows


def _payment_merchant(
    connection: duckdb.DuckDBPyConnection, payment_id: str, opened: int | None
) -> str | None:
    # Every row of a payment (one, or a few) names its merchant; the same plain filter as
    # _payment's, which DuckDB answers through the ``payments_by_id`` index. One running (no
    # result yet) is found by its PaymentReceived, at ``opened``.
    rows = connection.execute(
        "SELECT merchant_id FROM payments WHERE payment_id = ?", [payment_id]
    ).fetchall()
    if rows:
        return str(rows[0][0])
    return None if opened is None else payment_list.running_merchant(connection, payment_id, opened)


def _request_payments(
    connection: duckdb.DuckDBPyConnection, merchant_id: str, request_id: str
) -> frozenset[str] | None:
    # Every request that reached the engine or was refused has its PaymentReceived; a reused
    # idempotency key has only its violation (which may name no payment).
    rows = connection.execute(
        "SELECT payment_id FROM events WHERE request_id = ? AND merchant_id = ? "
        "UNION SELECT payment_id FROM violations WHERE request_id = ? AND merchant_id = ?",
        [request_id, merchant_id, request_id, merchant_id],
    ).fetchall()
    if not rows:
        return None
    return frozenset(str(row[0]) for row in rows if row[0] is not None)


def _violation_place(connection: duckdb.DuckDBPyConnection, seq: int) -> ViolationPlace | None:
    # ``seq`` grows with the rows' order: the scan reads the one row group that can hold it.
    rows = connection.execute("SELECT ts FROM violations WHERE seq = ?", [seq]).fetchall()
    return ViolationPlace(rows[0][0].astimezone(UTC), seq) if rows else None


def _violations(connection: duckdb.DuckDBPyConnection, query: ViolationQuery) -> list[RecordedViolation]:
    conditions: list[str] = []
    parameters: list[object] = []
    if query.after is not None:
        conditions.append("(ts < ? OR ts = ? AND seq < ?)")
        parameters += [query.after.timestamp, query.after.timestamp, query.after.seq]
    if query.contract_id is not None:
        conditions.append("contract_id = ?")
        parameters.append(query.contract_id)
    if query.since is not None:
        conditions.append("ts >= ?")
        parameters.append(query.since)
    if query.until is not None:
        conditions.append("ts < ?")
        parameters.append(query.until)
    for column, value in (
        ("payment_id", query.payment_id),
        ("request_id", query.request_id),
        ("merchant_id", query.merchant_id),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            parameters.append(value)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = connection.execute(
        "SELECT contract_id, request_id, severity, message, owner, ts, payment_id, merchant_id, seq "  # noqa: S608 - conditions are constants
        f"FROM violations {where} ORDER BY ts DESC, seq DESC LIMIT ?",
        [*parameters, query.limit],
    ).fetchall()
    return [
        RecordedViolation(
            int(row[8]),
            ContractViolation(
                contract_id=ContractId(row[0]),
                request_id=RequestId(row[1]),
                severity=Severity(row[2]),
                message=row[3],
                owner=row[4],
                timestamp=row[5].astimezone(UTC),
                payment_id=None if row[6] is None else PaymentId(row[6]),
                merchant_id=None if row[7] is None else MerchantId(row[7]),
            ),
        )
        for row in rows
    ]


_COMPLAINT_COLUMNS = (
    "complaint_id, merchant_id, received_at, category, description, payment_id, request_id, contract_id, "
    "validation_errors"
)


def _complaint_of(row: tuple[Any, ...]) -> Complaint:
    return Complaint(
        complaint_id=row[0],
        merchant_id=MerchantId(row[1]),
        received_at=row[2].astimezone(UTC),
        category=row[3],
        description=row[4],
        payment_id=None if row[5] is None else PaymentId(row[5]),
        request_id=None if row[6] is None else RequestId(row[6]),
        contract_id=None if row[7] is None else ContractId(row[7]),
        validation_errors=() if row[8] is None else tuple(map(issue_from_json, orjson.loads(row[8]))),
    )


def _complaint(
    connection: duckdb.DuckDBPyConnection, merchant_id: str, complaint_id: str
) -> Complaint | None:
    row = connection.execute(
        f"SELECT {_COMPLAINT_COLUMNS} FROM complaints WHERE merchant_id = ? AND complaint_id = ?",  # noqa: S608 - constant columns
        [merchant_id, complaint_id],
    ).fetchone()
    return None if row is None else _complaint_of(row)


def _complaints_named(
    connection: duckdb.DuckDBPyConnection, complaint_id: str, merchant_id: str | None
) -> list[Complaint]:
    rows = connection.execute(
        f"SELECT {_COMPLAINT_COLUMNS} FROM complaints WHERE complaint_id = $id "  # noqa: S608 - constant columns
        "AND ($merchant IS NULL OR merchant_id = $merchant) ORDER BY merchant_id",
        {"id": complaint_id, "merchant": merchant_id},
    ).fetchall()
    return [_complaint_of(row) for row in rows]


def _complaint_ids(connection: duckdb.DuckDBPyConnection) -> list[str]:
    return [str(row[0]) for row in connection.execute("SELECT complaint_id FROM complaints").fetchall()]


def _complaints(connection: duckdb.DuckDBPyConnection) -> list[Complaint]:
    rows = connection.execute(
        f"SELECT {_COMPLAINT_COLUMNS} FROM complaints ORDER BY received_at, complaint_id"  # noqa: S608
    ).fetchall()
    return [_complaint_of(row) for row in rows]


def _complaints_page(connection: duckdb.DuckDBPyConnection, query: ComplaintQuery) -> list[Complaint]:
    # Ordered as ingest.records.complaint_order, descending; VARCHARs compare by their bytes, as
    # Python's str by code point (UTF-8 keeps that order), so both stores list alike.
    conditions: list[str] = []
    parameters: list[object] = []
    for condition, value in (
        ("merchant_id = ?", query.merchant_id),
        ("received_at >= ?", query.since),
        ("received_at < ?", query.until),
    ):
        if value is not None:
            conditions.append(condition)
            parameters.append(value)
    if query.after is not None:
        after = query.after
        conditions.append(
            "(received_at < ? OR received_at = ? "
            "AND (merchant_id < ? OR merchant_id = ? AND complaint_id < ?))"
        )
        parameters += [after.received_at, after.received_at, after.merchant_id, after.merchant_id]
        parameters.append(after.complaint_id)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = connection.execute(
        f"SELECT {_COMPLAINT_COLUMNS} FROM complaints {where} "  # noqa: S608 - conditions are constants
        "ORDER BY received_at DESC, merchant_id DESC, complaint_id DESC LIMIT ?",
        [*parameters, query.limit],
    ).fetchall()
    return [_complaint_of(row) for row in rows]
