"""A dict split by key hash, for the maps that gain an entry with every payment.

A dict grows by rebuilding its whole table in one step once it is two thirds full: at 44,000
entries that is a few milliseconds, and every map keyed by payment fills at the same count, so
they all rebuild within the same request (27 ms measured here at 43,690 payments, all of it
added to one request's latency and to every request queued behind it). Split into 256 dicts, each
rebuild moves a 256th of the entries, and the parts fill at different moments.

The parts are also kept in the garbage collector's oldest view from the start. A plain dict whose
entries hold nothing the collector tracks is dropped from its view at a full collection, and
taken back into the *youngest* generation at the next entry that is a tuple: from then on every
young collection walks the whole dict, which grows with every payment (young collections of 3-5 ms
were measured here at 30,000 payments). A dict that stays tracked stays where it is; once
``gc.freeze()`` has run (the API does at startup) no collection walks the parts at all, and only
the entries added since the last young collection are looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

SHARDS = 256  # a power of two: the shard is the hash's low bits
#: The part of ``key`` is ``parts()[hash(key) & PART_MASK]``. A hot caller that touches several
#: maps with one key (or one map several times) finds the part once and uses it as a plain dict:
#: each method of :class:`ShardedDict` is a Python call, about a twentieth of a simulated charge.
PART_MASK = SHARDS - 1


_PIN = object()


def _tracked(part: MutableMapping[K, V]) -> MutableMapping[K, V]:
    """``part``, tracked by the collector for good: a dict starts untracked and becomes tracked
    when it first holds a container (here a list, removed again at once)."""
    pinned: MutableMapping[Any, Any] = part
    pinned[_PIN] = []
    del pinned[_PIN]
    return part


class ShardedDict(Generic[K, V]):
    """The parts of a dict (``dict`` operations only, no ordering across parts)."""

    __slots__ = ("_shards",)

    def __init__(self, factory: Callable[[], MutableMapping[K, V]] = dict) -> None:
        self._shards: tuple[MutableMapping[K, V], ...] = tuple(_tracked(factory()) for _ in range(SHARDS))

    def parts(self) -> tuple[MutableMapping[K, V], ...]:
        """Every part, in order: the part of ``key`` is at ``hash(key) & PART_MASK``."""
        return self._shards

    def shard(self, key: K) -> MutableMapping[K, V]:
        """The part that holds ``key``."""
        return self._shards[hash(key) & (SHARDS - 1)]

    def __getitem__(self, key: K) -> V:
        return self._shards[hash(key) & (SHARDS - 1)][key]

    def __setitem__(self, key: K, value: V) -> None:
        self._shards[hash(key) & (SHARDS - 1)][key] = value

    def __delitem__(self, key: K) -> None:
        del self._shards[hash(key) & (SHARDS - 1)][key]

    def __contains__(self, key: K) -> bool:
        return key in self._shards[hash(key) & (SHARDS - 1)]

    def __len__(self) -> int:
        return sum(len(shard) for shard in self._shards)

    def __iter__(self) -> Iterator[K]:
        for shard in self._shards:
            yield from shard

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        return self._shards[hash(key) & (SHARDS - 1)].get(key, default)

    def setdefault(self, key: K, default: V) -> V:
        return self._shards[hash(key) & (SHARDS - 1)].setdefault(key, default)

    @overload
    def pop(self, key: K) -> V: ...

    @overload
    def pop(self, key: K, default: D) -> V | D: ...

    def pop(self, key: K, default: Any = _PIN) -> object:
        part = self._shards[hash(key) & (SHARDS - 1)]
        return part.pop(key) if default is _PIN else part.pop(key, default)

    def values(self) -> Iterator[V]:
        for shard in self._shards:
            yield from shard.values()

    def items(self) -> Iterator[tuple[K, V]]:
        for shard in self._shards:
            yield from shard.items()
