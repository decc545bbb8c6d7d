"""The writes that work let in to the writer has yet to queue, counted from the moment it is let in.

The writer admits new work (a payment, a complaint) while at most ``admit_limit`` writes are
behind (``ingest.store.writer``). Read against the queue alone, that let a burst in whole: requests
arriving together all passed admission before any of them had queued anything, and then queued
their writes past the limit. With the disk held and ``admit_limit: 40``, 40 payments sent at once
were all let in and queued 160 writes (4 each before the first commit they wait for): what the
queue holds was bounded by the HTTP concurrency, not by the limit.

So each piece of work let in is an :class:`Admission` of the writes it is expected to queue over
its life, and the writer counts those not queued yet (:attr:`AdmittedWrites.unwritten`) as behind,
with the queue. A write queued in the work's context (its request's task, and the tasks that task
starts, which copy the context) takes one off its admission, until none is left: more writes than
expected are queued as any other (never refused: the work was let in), fewer are given back when
the work ends (:meth:`Admission.end`). The writes behind are then at most ``admit_limit`` plus what
the last piece of work let in expects, whatever arrives together.

The cost is one context variable read per write queued and a few integer operations per piece of
work, on the event loop's thread only (the writes of a payment are queued there).
"""

from __future__ import annotations

from contextvars import ContextVar


class AdmittedWrites:
    """The writes of the work admitted that it has not queued yet, over all of it. Used from the
    event loop's thread only."""

    __slots__ = ("unwritten",)

    def __init__(self) -> None:
        self.unwritten = 0

    def admit(self, writes: int) -> Admission:
        """Count ``writes`` more to come of work let in now; the writes queued from here on in the
        caller's context count against them. With none expected (a check only), the context keeps
        the admission it had."""
        admission = Admission(self, writes)
        if writes:
            self.unwritten += writes
            _CURRENT.set(admission)
        return admission


class Admission:
    """One piece of work let in: the writes it is still expected to queue."""

    __slots__ = ("_ledger", "unwritten")

    def __init__(self, ledger: AdmittedWrites, writes: int) -> None:
        self._ledger = ledger
        self.unwritten = writes

    def queued(self) -> None:
        """One write of the work queued."""
        if self.unwritten:
            self.unwritten -= 1
            self._ledger.unwritten -= 1

    def end(self) -> None:
        """The work has ended: what it has not queued will never come."""
        self._ledger.unwritten -= self.unwritten
        self.unwritten = 0


#: The admission of the work running in this context (``None``: none, as at start-up's recovery).
_CURRENT: ContextVar[Admission | None] = ContextVar("payorch_admission", default=None)

#: Work that expects nothing (memory records, which never fall behind).
NOTHING_ADMITTED = Admission(AdmittedWrites(), 0)


def queued() -> None:
    """One write was queued in this context: it is one of its work's expected writes, if any."""
    admission = _CURRENT.get()
    if admission is not None:
        admission.queued()
