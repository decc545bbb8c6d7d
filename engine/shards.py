"""A dict split by key hash, for the maps that gain an entry with every payment.

A dict grows by rebuilding its whole table in one step once it is two thirds full: at 44,000
entries that is a few milliseconds, and every map keyed by payment fills at the same count, so
they all rebuild within the same request (27 ms measured here at 43,690 payments, all of it
added to one request's latency and to every request queued behind it). Split into 256 dicts, each
rebuild moves a 256th of the entries, and the parts fill at different moments.

The parts also stay in the garbage collector's view for good. A plain ``dict`` whose entries hold
nothing the collector tracks (an empty one too) is dropped from its view at a full collection, and
taken back into the *youngest* generation at the next entry that is a tuple: from then on every
young collection walks the whole dict, which grows with every payment (young collections of 3-5 ms
were measured here at 30,000 payments). The collector drops only exact dicts from its view, so a
part is a :class:`Part`, a ``dict`` subclass with nothing added, which stays tracked where it is;
once ``gc.freeze()`` has run (the API does at startup) no collection walks the parts at all, and
only the entries added since the last young collection are looked at.

The parts were plain dicts, tracked at their making by an entry put in and taken out. A full
collection between the making of the parts and the freeze (the collector's own, when building an
app allocated enough) dropped them again, before the freeze could keep them: in bench_observe the
first app built lost every part that way, and its young collections grew with the maps, from 0.4
to 3 ms.
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


_MISSING = object()


class Part(dict):  # type: ignore[type-arg]
    """A part of a :class:`ShardedDict`: a dict the collector never drops from its view (it drops
    exact dicts only), however plain its entries."""

    __slots__ = ()


class ShardedDict(Generic[K, V]):
    """The parts of a dict (``dict`` operations only, no ordering across parts)."""

    __slots__ = ("_shards",)

    def __init__(self, factory: Callable[[], MutableMapping[K, V]] = Part) -> None:
        """``factory`` makes each part: a mapping the collector always tracks (a :class:`Part`, an
        ``OrderedDict``), else the parts may leave its view (see the module's docstring)."""
        self._shards: tuple[MutableMapping[K, V], ...] = tuple(factory() for _ in range(SHARDS))

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

    def pop(self, key: K, default: Any = _MISSING) -> object:
        part = self._shards[hash(key) & (SHARDS - 1)]
        return part.pop(key) if default is _MISSING else part.pop(key, default)

    def values(self) -> Iterator[V]:
        for shard in self._shards:
            yield from shard.values()

    def items(self) -> Iterator[tuple[K, V]]:
        for shard in self._shards:
            yield from shard.items()
