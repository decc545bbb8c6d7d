"""The ledger: what every processor of a run really holds, the ground truth behind the answers.

All simulated processors of one run share one :class:`Ledger`. Each charge is one
:class:`LedgerEntry`, keyed by ``(processor_id, idempotency_key)``; tests and invariant checks
read it to see what merchants' customers were actually charged, whatever the processors answered
(a charge whose answer timed out is here too).

Invariants:

* at most one entry per ``(processor_id, idempotency_key)``: charging the same key twice at the
  same processor is a double charge and raises :class:`DoubleChargeError`;
* an entry is refunded at most once; ``refunded_cents`` never exceeds ``amount_cents``;
* ``held_cents(payment_id)`` is the sum of ``amount_cents - refunded_cents`` over the
  payment's entries.

Every operation is O(1) (listing operations are linear in what they list). The ledger is used
from one event loop and takes no locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from engine.errors import DomainError
from engine.money import MAX_MINOR_UNITS, check_minor_units
from engine.shards import PART_MASK, ShardedDict
from engine.types import MAX_COUNT, PaymentId, ProcessorId, check_count

#: A step of a payment: (payment_id, step_index).
StepKey = tuple[PaymentId, int]
#: Where a charge is held: (processor_id, idempotency_key).
ChargeKey = tuple[ProcessorId, str]


class DoubleChargeError(DomainError):
    """The same idempotency key was charged twice at the same processor: a double charge."""


class LedgerEntry(NamedTuple):
    """One charge a processor holds (or held, when ``refunded``).

    A named tuple, so that the ledger can keep it as a plain tuple: it keeps one per charge for as
    long as the process runs, and plain tuples of strings and numbers are invisible to the garbage
    collector, whose full collections would otherwise take longer with every charge.
    """

    processor_id: ProcessorId
    idempotency_key: str
    payment_id: PaymentId
    step_index: int
    amount_cents: int
    currency: str
    reference: str
    refunded: bool = False
    refunded_cents: int = 0

    @property
    def held_cents(self) -> int:
        """What this charge still holds: the amount less what was refunded."""
        return self.amount_cents - self.refunded_cents


#: ``LedgerEntry._make`` without its Python frame and length check: the ledger stores only tuples
#: it built with every field.
_entry: Callable[[type[LedgerEntry], tuple[Any, ...]], LedgerEntry] = tuple.__new__


class LedgerJournal(Protocol):
    """Where a ledger copies each change as it happens, for readers outside the process (a
    simulated processor's own books survive the service that called it)."""

    def write(self, change: str, entry: LedgerEntry) -> None:
        """Record ``change`` (``charge`` or ``refund``) with the entry as it now stands."""
        ...


class Ledger:
    """An in-memory record of every charge and refund, shared by the simulated processors.

    It deliberately has no ``__len__``: an empty ledger is still truthy, so that
    ``ledger or Ledger()`` never swaps a shared, still-empty ledger for a private one.
    """

    __slots__ = (
        "_by_step_parts",
        "_doubled",
        "_entries",
        "_entry_parts",
        "_held",
        "_held_parts",
        "_journal",
        "_open_by_step",
    )

    def __init__(self, journal: LedgerJournal | None = None) -> None:
        self._journal = journal
        # Entries are stored as plain tuples: only an exact tuple of strings and numbers is ever
        # dropped from the garbage collector's view (a named tuple, a subclass, never is).
        self._entries: ShardedDict[ChargeKey, tuple[Any, ...]] = ShardedDict()
        self._held: ShardedDict[PaymentId, int] = ShardedDict()
        # Unrefunded charges per step, in charge order, as tuples (GC-invisible, see LedgerEntry).
        self._open_by_step: ShardedDict[StepKey, tuple[ChargeKey, ...]] = ShardedDict()
        self._doubled: dict[StepKey, None] = {}
        # Their parts, which a charge (the hot path) indexes itself (see engine.shards.PART_MASK).
        self._entry_parts = self._entries.parts()
        self._held_parts = self._held.parts()
        self._by_step_parts = self._open_by_step.parts()

    def record_charge(
        self,
        processor_id: ProcessorId,
        idempotency_key: str,
        *,
        payment_id: PaymentId,
        step_index: int,
        amount_cents: int,
        currency: str,
        reference: str,
    ) -> LedgerEntry:
        """Record that ``processor_id`` charged ``amount_cents`` under ``idempotency_key``.

        Raises :class:`DoubleChargeError` when that processor already holds a charge (refunded
        or not) for the key: a processor must replay the first outcome instead.
        """
        key = (processor_id, idempotency_key)
        entries = self._entry_parts[hash(key) & PART_MASK]
        if key in entries:
            raise DoubleChargeError(
                "ledger.idempotency_key", key, "was already charged at this processor (double charge)"
            )
        # The checks' own first test, inline: the simulators pass checked values, and a call each
        # would be a third of a charge's Python. Anything else gets the checks' own error.
        if not (type(amount_cents) is int and 0 <= amount_cents <= MAX_MINOR_UNITS):
            check_minor_units("ledger.amount_cents", amount_cents)
        if not (type(step_index) is int and 0 <= step_index <= MAX_COUNT):
            check_count("ledger.step_index", step_index)
        stored = (
            processor_id,
            idempotency_key,
            payment_id,
            step_index,
            amount_cents,
            currency,
            reference,
            False,
            0,
        )
        entries[key] = stored
        held = self._held_parts[hash(payment_id) & PART_MASK]
        held[payment_id] = held.get(payment_id, 0) + amount_cents
        step = (payment_id, step_index)
        by_step = self._by_step_parts[hash(step) & PART_MASK]
        earlier = by_step.get(step)
        if earlier is None:
            by_step[step] = (key,)
        else:
            by_step[step] = (*earlier, key)
            self._doubled[step] = None
        entry = _entry(LedgerEntry, stored)
        if self._journal is not None:
            self._journal.write("charge", entry)
        return entry

    def record_refund(
        self, processor_id: ProcessorId, idempotency_key: str, *, up_to: int | None = None
    ) -> int:
        """Refund the charge held for the key and return the amount refunded now.

        A charge is refunded once, in full or up to ``up_to`` (a partial refund still marks the
        charge refunded: it no longer counts as an open charge of its step, while the part not
        refunded stays in :meth:`held_cents`). Returns 0, changing nothing, when nothing is
        held for the key, when it was already refunded, or when ``up_to`` is 0.
        """
        key = (processor_id, idempotency_key)
        entry = self.lookup(processor_id, idempotency_key)
        if entry is None or entry.refunded:
            return 0
        amount = entry.amount_cents if up_to is None else min(entry.amount_cents, up_to)
        if amount <= 0:
            return 0
        refunded = entry._replace(refunded=True, refunded_cents=amount)
        self._entries[key] = tuple(refunded)
        self._held[entry.payment_id] -= amount
        step = (entry.payment_id, entry.step_index)
        open_charges = tuple(charge for charge in self._open_by_step[step] if charge != key)
        self._open_by_step[step] = open_charges
        if len(open_charges) < 2:
            self._doubled.pop(step, None)
        if not open_charges:
            del self._open_by_step[step]
        if self._journal is not None:
            self._journal.write("refund", refunded)
        return amount

    def restore(self, entry: LedgerEntry) -> None:
        """Take back an entry as the books outside the process last recorded it (at start, from the
        journal, in order): a charge, or its later state after a refund. Nothing is journaled."""
        key = (entry.processor_id, entry.idempotency_key)
        step = (entry.payment_id, entry.step_index)
        previous = self._entries.get(key)
        held_before = 0 if previous is None else LedgerEntry._make(previous).held_cents
        self._entries[key] = tuple(entry)
        self._held[entry.payment_id] = self._held.get(entry.payment_id, 0) - held_before + entry.held_cents
        open_charges = self._open_by_step.get(step, ())
        if entry.refunded:
            open_charges = tuple(charge for charge in open_charges if charge != key)
        elif key not in open_charges:
            open_charges = (*open_charges, key)
        if open_charges:
            self._open_by_step[step] = open_charges
        else:
            self._open_by_step.pop(step, None)
        if len(open_charges) > 1:
            self._doubled[step] = None
        else:
            self._doubled.pop(step, None)

    def lookup(self, processor_id: ProcessorId, idempotency_key: str) -> LedgerEntry | None:
        """The entry for the key at that processor, refunded or not; ``None`` if never charged."""
        key = (processor_id, idempotency_key)
        stored = self._entry_parts[hash(key) & PART_MASK].get(key)
        return None if stored is None else _entry(LedgerEntry, stored)

    def charges_for_step(self, payment_id: PaymentId, step_index: int) -> list[LedgerEntry]:
        """The unrefunded charges for one step, across all processors, in charge order."""
        open_charges = self._open_by_step.get((payment_id, step_index), ())
        return [LedgerEntry._make(self._entries[key]) for key in open_charges]

    def double_charged_steps(self) -> list[StepKey]:
        """Steps holding more than one unrefunded charge across processors (should be none)."""
        return list(self._doubled)

    def held_cents(self, payment_id: PaymentId) -> int:
        """What all processors together still hold for the payment."""
        return self._held.get(payment_id, 0)

    def entries(self) -> list[LedgerEntry]:
        """Every entry, in the order the charges were recorded (refunds update in place)."""
        return [LedgerEntry._make(stored) for stored in self._entries.values()]
