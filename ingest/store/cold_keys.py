"""Which idempotency keys may have been answered before the hot window: Bloom filters by age.

The durable key store keeps a key whole in memory for its first ``hot_s`` (retries mostly come
within minutes), then only here: its merchant and key, hashed into the Bloom filter of the slice
of time it was created in. A claim of a key no filter holds is new for certain; one a filter holds
is looked up in the database (a real repeat, or a false positive at most once in
``1 / FALSE_POSITIVE_RATE`` claims). A key costs about 2.4 bytes here, against about 450 bytes
whole in memory (the entry, its key and fingerprint strings, the dict's slot), measured here
with tracemalloc: held whole for the 24 hours a key is kept, 100 payments a second came to about
4 GB.

Slices cover ``slice_s`` of creation time each, and a slice is dropped once its newest key is
older than the keys' time to live. A slice is sized from the keys its predecessor took (with a
margin), and a slice that fills before its time is up is followed at once by a larger one, so the
false positive rate holds under any load.
"""

from __future__ import annotations

from collections import deque

from rbloom import Bloom

FALSE_POSITIVE_RATE = 1e-4
SLICE_S = 3600.0
MIN_CAPACITY = 65_536  # keys; about 157 KB of filter
_GROWTH = 1.25


class _Slice:
    __slots__ = ("capacity", "count", "filter", "first_at", "newest_at")

    def __init__(self, capacity: int, created_at: float) -> None:
        self.capacity = capacity
        self.count = 0
        self.filter = Bloom(capacity, FALSE_POSITIVE_RATE)
        self.first_at = created_at
        self.newest_at = created_at


class ColdKeys:
    """(merchant, key) pairs by creation time (seconds on the owner's monotonic clock), kept
    until ``ttl_s`` after it; membership may be a false positive, never a false negative."""

    __slots__ = ("_slice_s", "_slices", "_ttl_s")

    def __init__(self, ttl_s: float, slice_s: float = SLICE_S) -> None:
        self._ttl_s = ttl_s
        self._slice_s = slice_s
        self._slices: deque[_Slice] = deque()

    def add(self, merchant_key: tuple[str, str], created_at: float) -> None:
        """Remember ``merchant_key``, created at ``created_at``. Keys come oldest first, give or
        take: a slice takes a key however old, and covers it until its own newest key expires."""
        current = self._slices[-1] if self._slices else None
        if current is None:
            current = self._open(MIN_CAPACITY, created_at)
        elif current.count >= current.capacity:  # filled before its time was up: the rate grew
            current = self._open(round(current.capacity * _GROWTH), created_at)
        elif created_at - current.first_at >= self._slice_s:  # its count is the last slice's rate
            current = self._open(round(current.count * _GROWTH), created_at)
        current.filter.add(hash(merchant_key))
        current.count += 1
        current.newest_at = max(current.newest_at, created_at)

    def _open(self, capacity: int, created_at: float) -> _Slice:
        opened = _Slice(max(MIN_CAPACITY, capacity), created_at)
        self._slices.append(opened)
        return opened

    def __contains__(self, merchant_key: tuple[str, str]) -> bool:
        hashed = hash(merchant_key)
        return any(hashed in part.filter for part in self._slices)

    def expire(self, now: float) -> None:
        """Drop the slices whose keys are all older than the time to live at ``now``."""
        while self._slices and now - self._slices[0].newest_at >= self._ttl_s:
            self._slices.popleft()

    @property
    def slices(self) -> int:
        return len(self._slices)

    @property
    def keys(self) -> int:
        """Keys added and not dropped yet."""
        return sum(part.count for part in self._slices)

    @property
    def filter_bytes(self) -> int:
        return sum(part.filter.size_in_bits // 8 for part in self._slices)
