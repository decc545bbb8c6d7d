"""What a payment under a key costs the memory idempotency store: its claim and its completion
(every payment under a key makes both) index the store's parts themselves, and a claim of a new
key hands out one shared answer. Behaviour is tested in test_idempotency.py."""

from __future__ import annotations

import pytest

from engine.shards import ShardedDict
from ingest.api.idempotency import Claimed, MemoryIdempotencyStore, Replay, StoredResponse


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_claim_and_its_completion_call_no_method_of_the_sharded_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each method of ShardedDict is a Python call (about 500 instructions with its hash): a
    claim found its part through one, a completion read and wrote its entry through two."""
    store = MemoryIdempotencyStore(86_400.0, _Clock())
    called: list[str] = []
    for name in ("shard", "get", "__getitem__", "__setitem__", "__contains__", "setdefault"):
        method = getattr(ShardedDict, name)

        def counting(self: object, *args: object, _name: str = name, _method: object = method) -> object:
            called.append(_name)
            return _method(self, *args)  # type: ignore[operator]

        monkeypatch.setattr(ShardedDict, name, counting)
    answer = StoredResponse(200, b'{"status":"succeeded"}')

    claimed = await store.claim("m_acme", "k-1", "fingerprint")
    await store.complete("m_acme", "k-1", answer)
    repeat = await store.claim("m_acme", "k-1", "fingerprint")

    assert isinstance(claimed, Claimed)
    assert repeat == Replay(answer)
    assert called == []


async def test_every_new_key_is_claimed_with_the_same_answer() -> None:
    store = MemoryIdempotencyStore(86_400.0, _Clock())

    first = await store.claim("m_acme", "k-1", "fingerprint")
    second = await store.claim("m_acme", "k-2", "fingerprint")

    assert isinstance(first, Claimed)
    assert second is first
