"""Each merchant's share of the work admitted to the one writer, and who holds more than it.

Every merchant's payments and complaints wait for the same writer (``ingest.store.writer``).
While the disk keeps up its queue stays short and everything is let in; past ``admit_limit``
writes waiting, nothing new is. With that limit alone, one merchant sending a flood filled the
queue to it, and every other merchant's trickle of payments was then refused (503) with the
flood: with the disk held and ``admit_limit: 40``, one merchant's payments were let in until 42
writes waited (10 payments), and another merchant's first payment was refused.

So the queue has a second mark, ``fair_share_percent`` of the limit (half by default). Past it,
a merchant is let in only while it holds no more than an equal share of the work admitted and
not yet finished, counting one merchant more than those holding any: ``held * (holding + 1) <=
all``, as things stood before the request. The one more is the merchant yet to come, whose room
the rule keeps: a merchant alone, or two flooding together, are refused at the mark, where a
merchant holding nothing is always let in, and one holding little is let in until it holds as
much as the others (the same test: the flood refused at 22 writes, after 5 payments, the other
merchant's payment let in). Past ``admit_limit`` every merchant is refused alike (the disk is not
keeping up with what is admitted, whoever sent it). Nothing admitted is ever dropped: only new
work is refused, and the queue stays bounded by what was admitted.

The mark is read against the writes queued and those of the batch being committed: the queue
alone empties at the start of every commit, and read then it let a sustained flood in whole at
each commit. In process, one merchant's 200 clients paying as fast as they are let in against
another merchant's 4 clients, every commit 20 ms slower, ``admit_limit: 200``, 10 s: the other
merchant was refused 112 times of 273 before (41%); 19 of 210 with the mark read
against the queue alone; 2 of 223 against the queue and the batch. With the flood's clients
retrying at once rather than after ``Retry-After``: 149 of 298, 129 of 283, 16 of 165. The price
is the flood's: 6,873 of its payments answered 200 before, 1,703 with the mark (it holds what
half of ``admit_limit`` allows, here about 40 payments at once; at the default 10,000 writes a
merchant's 500 payments in flight, ``max_in_flight``, stay far below the mark).

The work counted is the merchant's payments running (from the moment the desk takes them to
their end, when their last commit is durable) and its complaints being stored. A count of work,
not of writes queued: the writes of a payment come over its life (about four before its first
processor call), and a payment running is what will queue them. Counting the queue's writes per
merchant would cost a dictionary update on two threads for each of a payment's eight writes; the
count here is a few dictionary operations per payment (0.3 µs), on the event loop's thread
only. Memory is one entry per merchant holding work, dropped when its work ends.
"""

from __future__ import annotations

from engine.types import MerchantId


class WriterShares:
    """The work each merchant has admitted to the writer and not finished. Used from the event
    loop's thread only."""

    __slots__ = ("_held", "_total")

    def __init__(self) -> None:
        self._held: dict[MerchantId, int] = {}
        self._total = 0

    @property
    def merchants(self) -> int:
        """How many merchants hold work now."""
        return len(self._held)

    def held(self, merchant_id: MerchantId) -> int:
        return self._held.get(merchant_id, 0)

    def enter(self, merchant_id: MerchantId) -> None:
        """Count one more piece of work of ``merchant_id`` (a payment taken, a complaint stored)."""
        self._held[merchant_id] = self._held.get(merchant_id, 0) + 1
        self._total += 1

    def leave(self, merchant_id: MerchantId) -> None:
        """The work :meth:`enter` counted has ended."""
        left = self._held[merchant_id] - 1
        if left:
            self._held[merchant_id] = left
        else:
            del self._held[merchant_id]
        self._total -= 1

    def over_share(self, merchant_id: MerchantId, *, entered: bool) -> bool:
        """Whether new work of ``merchant_id`` is past its share (see the module text), judged as
        things stood before it: ``entered`` says whether it is already counted."""
        held, total, holding = self._held.get(merchant_id, 0), self._total, len(self._held)
        if entered:
            held -= 1
            total -= 1
            holding -= held == 0
        return held * (holding + 1) > total
