"""Which complaint ids may be in the database: Bloom filters over every id stored.

A complaint refused (429 past its merchant's limits, 503 while the writer is behind) is answered
as before when it was filed before under its id (a client retrying a 201 whose answer it lost is
told that its complaint is kept), so each refusal looked its id up in the database. A read takes
the lock every read shares (a payment looked up, a complaint filed, an admin's read), on a worker
thread: a merchant retrying a flood of new complaints against its limit made as many reads,
each queued behind whatever held the lock (an admin read of a long window, the payments' own), and
answered its 429s no faster than the database read.

The service is the only writer of its database, so it knows every id stored: those there at its
start (read once) and those it stores since (added before the row is queued). An id no filter
holds was never stored, and its lookup is answered without a read; one a filter holds is looked
up (stored, or a false positive at most once in ``1 / FALSE_POSITIVE_RATE`` lookups). Measured
here: 1,000,000 ids read and added in 0.44 s at start, 4.8 MB of filters.

The ids are the merchants' own, unique per merchant only: the filters hold the id alone (a lookup
with or without its merchant), another merchant's use of it being one more reason to read.
"""

from __future__ import annotations

from collections.abc import Iterable

from rbloom import Bloom

FALSE_POSITIVE_RATE = 1e-4
MIN_CAPACITY = 65_536  # ids; about 157 KB of filter


class ComplaintIds:
    """The complaint ids stored; membership may be a false positive, never a false negative. Used
    from the event loop's thread (filled before it runs)."""

    __slots__ = ("_capacity", "_count", "_filters")

    def __init__(self, stored: Iterable[str] = ()) -> None:
        ids = list(stored)
        self._capacity = max(MIN_CAPACITY, 2 * len(ids))  # of the last filter
        self._filters = [Bloom(self._capacity, FALSE_POSITIVE_RATE)]
        self._filters[0].update(ids)
        self._count = len(ids)  # in the last filter

    def add(self, complaint_id: str) -> None:
        """Remember ``complaint_id``, before its row is queued (a lookup meanwhile reads)."""
        if self._count >= self._capacity:
            # Full: a filter twice as large beside it, so that the false positive rate holds.
            self._capacity *= 2
            self._filters.append(Bloom(self._capacity, FALSE_POSITIVE_RATE))
            self._count = 0
        self._filters[-1].add(complaint_id)
        self._count += 1

    def __contains__(self, complaint_id: object) -> bool:
        return any(complaint_id in held for held in self._filters)
