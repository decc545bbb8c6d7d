"""What the API records and reads back: events, violations, results and complaints.

:class:`Records` is the port the API is written against (it is also the engine's event sink);
:class:`MemoryRecords` keeps everything in this process. The DuckDB store implements the same
port durably.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson

from engine.complaints import Complaint
from engine.contracts import ContractViolation
from engine.events import DomainEvent, PaymentCompleted, PaymentFailed, PaymentReceived
from engine.results import CompositeResult
from engine.shards import PART_MASK, ShardedDict
from ingest.codec.event_json import events_json, stored_json_to_documents
from ingest.codec.result_json import PROCESSING, REJECTED, JsonObject, running_to_json
from ingest.store.admission import NOTHING_ADMITTED, Admission

#: A payment's last event: its rows are made then.
_LAST = frozenset({PaymentCompleted, PaymentFailed})


@dataclass(frozen=True, slots=True)
class StoredPayment:
    """A payment as ``GET /v1/payments/{id}`` shows it: the CompositeResult document plus
    ``events``, its domain events in the order they happened."""

    merchant_id: str
    document: JsonObject


@dataclass(frozen=True, slots=True)
class ViolationPlace:
    """Where a violation stands in ``GET /v1/violations`` (newest first, this descending): when it
    happened, then the ``seq`` it was recorded under, which no two violations share, so the order
    is total even among violations of the same instant, and one recorded later never moves the
    others."""

    timestamp: datetime
    seq: int


@dataclass(frozen=True, slots=True)
class ViolationQuery:
    """Violations in :class:`ViolationPlace` order, newest first: of ``contract_id``, in ``[since,
    until)``, naming ``payment_id``, ``request_id`` and ``merchant_id``, each only when given; the
    first ``limit`` of those after ``after`` (the last one of the page before), when given."""

    contract_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000
    payment_id: str | None = None
    request_id: str | None = None
    merchant_id: str | None = None
    after: ViolationPlace | None = None


@dataclass(frozen=True, slots=True)
class RecordedViolation:
    """A violation as recorded: with the ``seq`` it is listed and named by."""

    seq: int
    violation: ContractViolation

    @property
    def place(self) -> ViolationPlace:
        return ViolationPlace(self.violation.timestamp, self.seq)


@dataclass(frozen=True, slots=True)
class ComplaintQuery:
    """A page of complaints in :func:`complaint_order`, newest first: ``merchant_id``'s only when
    given, received in ``[since, until)``, the first ``limit`` of those listed after ``after`` (the
    last one of the page before; a cursor, so that a walk neither repeats nor misses one while
    others are filed)."""

    merchant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    after: Complaint | None = None


@dataclass(frozen=True, slots=True)
class PaymentPlace:
    """Where a payment stands in ``GET /v1/payments`` (newest first, this descending): when it was
    received (its ``PaymentReceived``), then its id, which no two payments share, so the order is
    total even among payments received at the same instant, and a payment received later never
    moves the others."""

    received_at: datetime
    payment_id: str


@dataclass(frozen=True, slots=True)
class PaymentQuery:
    """A page of payments in :class:`PaymentPlace` order, newest first: ``merchant_id``'s only when
    given, received in ``[since, until)``, of ``status`` only when given (``processing``: no
    result recorded yet), the first ``limit`` of those after ``after`` (the last one of the page
    before)."""

    merchant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    limit: int = 100
    after: PaymentPlace | None = None


def complaint_order(complaint: Complaint) -> tuple[datetime, str, str]:
    """Where a complaint stands among the listed ones (the list is newest first, this descending):
    by ``received_at``, then merchant and id, which no two complaints share, so the order is total
    and a complaint filed later never moves the others."""
    return (complaint.received_at, complaint.merchant_id, complaint.complaint_id)


class Records(Protocol):
    async def emit(self, event: DomainEvent) -> None: ...

    async def record_violation(self, violation: ContractViolation) -> None: ...

    async def save_result(
        self, result: CompositeResult, document: bytes, *, first_seq: int | None = None
    ) -> None:
        """Store a payment's outcome; ``document`` is its ``payments.result.v1`` JSON, as answered.
        ``first_seq``: where its events begin in a durable store, when another process recorded
        its ``PaymentReceived`` (a payment crash recovery finishes)."""
        ...

    async def save_refusal(self, received: PaymentReceived, document: bytes) -> None:
        """Store what ``GET /v1/payments/{id}`` shows of a refused request, ``received`` (emitted
        before, ``accepted`` false): ``document`` is its JSON, status ``rejected``."""
        ...

    async def record_complaint(self, complaint: Complaint) -> Complaint | None:
        """Store ``complaint``; when its merchant already has a complaint of that id, keep the
        first and return it (complaint ids are the merchant's own: unique per merchant only)."""
        ...

    async def complaints_named(self, complaint_id: str, merchant_id: str | None) -> Sequence[Complaint]:
        """The complaints filed under ``complaint_id`` (one per merchant at most: the ids are each
        merchant's own), only ``merchant_id``'s when given; by merchant id."""
        ...

    async def complaints_page(self, query: ComplaintQuery) -> Sequence[Complaint]:
        """The complaints ``query`` names, descending in :func:`complaint_order`, at most
        ``query.limit``."""
        ...

    async def sync(self) -> None:
        """Return once everything recorded so far is durable (before a payment is answered)."""
        ...

    def admit(self, *, over_share: bool = False, writes: int = 0) -> Admission:
        """Raise ``StoreSaturatedError`` when no new payment or complaint should be taken now (the
        writer is behind; ``StoreStoppedError``, a kind of it, once the disk stopped it; and
        ``StoreShareError`` sooner for one of a merchant holding more than its share of the
        work admitted, ``over_share``: see ``ingest.store.shares``). Let in, the work counts as
        ``writes`` still to come until it queues them or ends (``ingest.store.admission``): end
        the admission returned when it does."""
        ...

    async def payment(self, payment_id: str) -> StoredPayment | None:
        """The payment ``payment_id`` as ``GET /v1/payments/{id}`` shows it: its result's document
        and its events; one with no result yet (running, or cut short) as :meth:`payments_page`
        lists it. ``None`` when there is no such payment."""
        ...

    def keep_left(self, payment_id: str, first_seq: int) -> None:
        """Note a payment crash recovery left unsettled at this start (its events from
        ``first_seq`` on, in a durable store): :meth:`payment` shows it as running until a later
        start settles it."""
        ...

    async def payment_place(self, payment_id: str, merchant_id: str | None) -> PaymentPlace | None:
        """Where the payment ``payment_id`` stands in the list (``merchant_id``'s only, when
        given); ``None`` when there is no such payment."""
        ...

    async def payments_page(self, query: PaymentQuery) -> Sequence[StoredPayment]:
        """The payments ``query`` names, newest first, at most ``query.limit``: each as
        :meth:`payment` shows an ended one; one with no result yet (running, or cut short) as
        :func:`~ingest.codec.result_json.running_to_json` makes it from its events so far."""
        ...

    async def payment_merchant(self, payment_id: str) -> str | None:
        """The merchant of the payment ``payment_id`` (``None``: no such payment, as for
        :meth:`payment`), without reading its events or its document: what a ``HEAD`` of it needs."""
        ...

    async def request_payments(self, merchant_id: str, request_id: str) -> frozenset[str] | None:
        """The payments recorded under ``request_id`` for ``merchant_id`` (by its events, or its
        violations that name one): none for a reused idempotency key (only its violation is
        recorded); ``None`` when nothing of the merchant is recorded under ``request_id``."""
        ...

    async def violations(self, query: ViolationQuery) -> Sequence[ContractViolation]:
        """Newest first, at most ``query.limit``: :meth:`violations_page`'s, without their seqs."""
        ...

    async def violations_page(self, query: ViolationQuery) -> Sequence[RecordedViolation]:
        """The violations ``query`` names, newest first (descending in :class:`ViolationPlace`
        order), at most ``query.limit``."""
        ...

    async def violation_place(self, seq: int) -> ViolationPlace | None:
        """Where the violation recorded under ``seq`` stands; ``None`` when there is none."""
        ...

    def healthy(self) -> bool: ...


class MemoryRecords:
    """Everything in memory, for a process without a data store and for tests.

    Results and a payment's events are kept as JSON bytes (``ingest.codec.event_json.events_json``),
    not as objects: the garbage collector never tracks bytes, whereas objects kept would make
    every full collection longer with every payment kept (about 300 ms per collection after
    20,000 payments here, all of it added to some request's latency), and tuples of them
    outlived young collections. A payment's events wait as they are until its last one (or its
    result, or a read); its rows are then made and encoded together, in one call.
    """

    __slots__ = (
        "_complaints",
        "_event_parts",
        "_events",
        "_pending",
        "_received",
        "_received_parts",
        "_request_parts",
        "_requests",
        "_result_parts",
        "_results",
        "_violations",
        "events_written",
    )

    def __init__(self) -> None:
        self.events_written = 0
        #: By payment id: its events' rows as JSON (``ingest.codec.event_json.events_json``).
        self._events: ShardedDict[str, bytes] = ShardedDict()
        self._pending: dict[str, list[DomainEvent]] = {}  # payments in flight only
        #: By payment id: its merchant, its result's document, and its status.
        self._results: ShardedDict[str, tuple[str, bytes, str]] = ShardedDict()
        #: By payment id: when it was received and its merchant (``GET /v1/payments``).
        self._received: ShardedDict[str, tuple[datetime, str]] = ShardedDict()
        self._violations: list[ContractViolation] = []
        self._complaints: dict[tuple[str, str], Complaint] = {}  # by (merchant_id, complaint_id)
        # By request id: its merchant (once known) and the payments recorded under it, as a tuple
        # of ids, not a frozenset: a set is tracked by the garbage collector for good (and so is
        # the tuple holding it), and every full collection would walk one more per payment kept.
        self._requests: ShardedDict[str, tuple[str | None, tuple[str, ...]]] = ShardedDict()
        # Their parts, which recording a payment indexes itself (``parts[hash(key) & PART_MASK]``,
        # see engine.shards): each method of a ShardedDict is one more Python call, six a payment.
        self._event_parts = self._events.parts()
        self._received_parts = self._received.parts()
        self._request_parts = self._requests.parts()
        self._result_parts = self._results.parts()

    async def emit(self, event: DomainEvent) -> None:
        self.events_written += 1
        payment_id = event.payment_id
        pending = self._pending.get(payment_id)
        if pending is None:
            self._pending[payment_id] = [event]
        else:
            pending.append(event)
        if type(event) is PaymentReceived:
            self._note_request(event.request_id, event.merchant_id, payment_id)
            self._received_parts[hash(payment_id) & PART_MASK][payment_id] = (
                event.timestamp,
                event.merchant_id,
            )
            if not event.accepted:
                self._keep(payment_id)
        elif type(event) in _LAST:
            self._keep(payment_id)

    def _keep(self, payment_id: str) -> None:
        """Turn the payment's pending events into the rows kept for good, after those kept before."""
        events = self._pending.pop(payment_id, None)
        if events:
            part = self._event_parts[hash(payment_id) & PART_MASK]
            stored = part.get(payment_id)
            encoded = events_json(events)
            part[payment_id] = encoded if stored is None else stored + b"," + encoded

    async def record_violation(self, violation: ContractViolation) -> None:
        self._violations.append(violation)
        self._note_request(violation.request_id, violation.merchant_id, violation.payment_id)

    def _note_request(self, request_id: str, merchant_id: str | None, payment_id: str | None) -> None:
        part = self._request_parts[hash(request_id) & PART_MASK]
        known_merchant, payments = part.get(request_id, (None, ()))
        part[request_id] = (
            known_merchant if merchant_id is None else merchant_id,
            payments if payment_id is None or payment_id in payments else (*payments, payment_id),
        )

    async def save_result(
        self, result: CompositeResult, document: bytes, *, first_seq: int | None = None
    ) -> None:
        payment_id = result.payment_id
        self._keep(payment_id)
        self._result_parts[hash(payment_id) & PART_MASK][payment_id] = (
            result.merchant_id,
            document,
            result.status.value,
        )

    async def save_refusal(self, received: PaymentReceived, document: bytes) -> None:
        self._results[received.payment_id] = (received.merchant_id, document, REJECTED)

    async def sync(self) -> None:
        """Everything here is as durable as it will get: nothing to wait for."""

    def admit(self, *, over_share: bool = False, writes: int = 0) -> Admission:
        """Memory never falls behind: nothing is counted."""
        return NOTHING_ADMITTED

    async def record_complaint(self, complaint: Complaint) -> Complaint | None:
        key = (complaint.merchant_id, complaint.complaint_id)
        first = self._complaints.get(key)
        if first is None:
            self._complaints[key] = complaint
        return first

    async def complaints_named(self, complaint_id: str, merchant_id: str | None) -> Sequence[Complaint]:
        return sorted(
            (
                complaint
                for (merchant, named), complaint in self._complaints.items()
                if named == complaint_id and merchant_id in (None, merchant)
            ),
            key=lambda complaint: complaint.merchant_id,
        )

    async def complaints_page(self, query: ComplaintQuery) -> Sequence[Complaint]:
        after = None if query.after is None else complaint_order(query.after)
        found = (
            complaint
            for complaint in self._complaints.values()
            if (query.merchant_id is None or complaint.merchant_id == query.merchant_id)
            and (query.since is None or complaint.received_at >= query.since)
            and (query.until is None or complaint.received_at < query.until)
            and (after is None or complaint_order(complaint) < after)
        )
        return heapq.nlargest(query.limit, found, key=complaint_order)

    async def payment(self, payment_id: str) -> StoredPayment | None:
        stored = self._results.get(payment_id)
        if stored is None:
            received = self._received.get(payment_id)
            if received is None:
                return None
            # No result yet: what its events say so far.
            return StoredPayment(received[1], running_to_json(self._events_of(payment_id)))
        merchant_id, result, _ = stored
        document: JsonObject = orjson.loads(result)
        document["events"] = self._events_of(payment_id)
        return StoredPayment(merchant_id, document)

    def _events_of(self, payment_id: str) -> list[JsonObject]:
        self._keep(payment_id)
        return stored_json_to_documents(self._events.get(payment_id, b""))

    def keep_left(self, payment_id: str, first_seq: int) -> None:
        """Nothing is recovered into memory: every payment received here is in ``_received``."""

    async def payment_merchant(self, payment_id: str) -> str | None:
        stored = self._results.get(payment_id)
        if stored is None:
            received = self._received.get(payment_id)
            return None if received is None else received[1]
        return stored[0]

    async def payment_place(self, payment_id: str, merchant_id: str | None) -> PaymentPlace | None:
        received = self._received.get(payment_id)
        if received is None or merchant_id not in (None, received[1]):
            return None
        return PaymentPlace(received[0], payment_id)

    async def payments_page(self, query: PaymentQuery) -> Sequence[StoredPayment]:
        after = None if query.after is None else (query.after.received_at, query.after.payment_id)
        places = (
            (received_at, payment_id)
            for payment_id, (received_at, merchant_id) in self._received.items()
            if (query.merchant_id is None or merchant_id == query.merchant_id)
            and (query.since is None or received_at >= query.since)
            and (query.until is None or received_at < query.until)
            and (after is None or (received_at, payment_id) < after)
            and (query.status is None or self._status(payment_id) == query.status)
        )
        found: list[StoredPayment] = []
        for _, payment_id in heapq.nlargest(query.limit, places):
            stored = await self.payment(payment_id)
            if stored is not None:  # every payment listed was received
                found.append(stored)
        return found

    def _status(self, payment_id: str) -> str:
        stored = self._results.get(payment_id)
        return PROCESSING if stored is None else stored[2]

    async def request_payments(self, merchant_id: str, request_id: str) -> frozenset[str] | None:
        known = self._requests.get(request_id)
        return None if known is None or known[0] != merchant_id else frozenset(known[1])

    async def violations(self, query: ViolationQuery) -> Sequence[ContractViolation]:
        return [recorded.violation for recorded in await self.violations_page(query)]

    async def violations_page(self, query: ViolationQuery) -> Sequence[RecordedViolation]:
        # A violation's seq is its place in the list, from 1, as the store numbers them.
        after = None if query.after is None else (query.after.timestamp, query.after.seq)
        found = (
            (violation.timestamp, seq)
            for seq, violation in enumerate(self._violations, start=1)
            if (query.contract_id is None or violation.contract_id == query.contract_id)
            and (query.since is None or violation.timestamp >= query.since)
            and (query.until is None or violation.timestamp < query.until)
            and (after is None or (violation.timestamp, seq) < after)
            and _names(query, violation)
        )
        return [
            RecordedViolation(seq, self._violations[seq - 1]) for _, seq in heapq.nlargest(query.limit, found)
        ]

    async def violation_place(self, seq: int) -> ViolationPlace | None:
        if not 1 <= seq <= len(self._violations):
            return None
        return ViolationPlace(self._violations[seq - 1].timestamp, seq)

    def complaints(self) -> list[Complaint]:
        return list(self._complaints.values())

    def healthy(self) -> bool:
        return True


def _names(query: ViolationQuery, violation: ContractViolation) -> bool:
    """Whether ``violation`` is of the payment, request and merchant ``query`` names (if any)."""
    return (
        (query.payment_id is None or violation.payment_id == query.payment_id)
        and (query.request_id is None or violation.request_id == query.request_id)
        and (query.merchant_id is None or violation.merchant_id == query.merchant_id)
    )


class RecordsHistory:
    """The violations of a window read back from the records (the ContractMonitor's history)."""

    #: A window's violations are read whole; far more than a fortnight of a busy service holds.
    LIMIT = 10_000_000

    def __init__(self, records: Records) -> None:
        self._records = records

    async def violations_between(self, start: datetime, end: datetime) -> Sequence[ContractViolation]:
        await self._records.sync()  # what was recorded before the report is in it
        return await self._records.violations(ViolationQuery(since=start, until=end, limit=self.LIMIT))
