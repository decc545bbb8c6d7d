"""The idempotency store against a tiny model: claims, completions, releases and expiry."""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from engine.shards import SHARDS
from ingest.api.idempotency import (
    Claimed,
    InFlight,
    MemoryIdempotencyStore,
    Mismatch,
    Replay,
    StoredResponse,
    body_fingerprint,
)

TTL = 100.0
merchants = st.sampled_from(["m_a", "m_b"])
keys = st.sampled_from(["k1", "k2", "k3"])
bodies = st.sampled_from([b'{"amount": 1}', b'{ "amount" : 1 }', b'{"amount": 2}', b"amount=1"])


class IdempotencyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.store = MemoryIdempotencyStore(TTL, lambda: self.now)
        # model: (merchant, key) -> (fingerprint, created, response or None)
        self.model: dict[tuple[str, str], tuple[str, float, StoredResponse | None]] = {}

    def _live(self, slot: tuple[str, str]) -> tuple[str, float, StoredResponse | None] | None:
        entry = self.model.get(slot)
        if entry is None:
            return None
        _, created, response = entry
        if response is not None and self.now - created >= TTL:
            return None
        return entry

    @rule(merchant=merchants, key=keys, body=bodies)
    def claim(self, merchant: str, key: str, body: bytes) -> None:
        fingerprint = body_fingerprint(body)
        outcome = asyncio.run(self.store.claim(merchant, key, fingerprint))
        entry = self._live((merchant, key))
        if entry is None:
            assert isinstance(outcome, Claimed)
            self.model[merchant, key] = (fingerprint, self.now, None)
        elif entry[0] != fingerprint:
            assert isinstance(outcome, Mismatch)
        elif entry[2] is None:
            assert isinstance(outcome, InFlight)
        else:
            assert outcome == Replay(entry[2])

    @rule(merchant=merchants, key=keys, status=st.sampled_from([200, 500]))
    def complete(self, merchant: str, key: str, status: int) -> None:
        entry = self.model.get((merchant, key))
        if entry is None or entry[2] is not None:
            return  # only the claimant completes, once
        response = StoredResponse(status, f"{merchant}/{key}/{self.now}".encode())
        asyncio.run(self.store.complete(merchant, key, response))
        self.model[merchant, key] = (entry[0], entry[1], response)

    @rule(merchant=merchants, key=keys)
    def release(self, merchant: str, key: str) -> None:
        entry = self.model.get((merchant, key))
        if entry is None or entry[2] is not None:
            return
        asyncio.run(self.store.release(merchant, key))
        del self.model[merchant, key]

    @rule(seconds=st.sampled_from([1.0, 30.0, 99.0, 150.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def same_key_with_equal_json_is_the_same_request(self) -> None:
        assert body_fingerprint(b'{"amount": 1}') == body_fingerprint(b'{ "amount" : 1 }')
        assert body_fingerprint(b'{"amount": 1}') != body_fingerprint(b'{"amount": 2}')


IdempotencyMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestIdempotencyStore = IdempotencyMachine.TestCase


def test_a_form_is_the_same_request_whatever_the_order_of_its_fields() -> None:
    form = "application/x-www-form-urlencoded; charset=utf-8"
    first = body_fingerprint(b"amount=12.50&currency=usd&metadata%5Border%5D=7", form)

    assert body_fingerprint(b"currency=usd&metadata%5Border%5D=7&amount=12.50", form) == first
    assert body_fingerprint(b"amount=12.50&currency=usd&metadata%5Border%5D=7&", form) == first
    assert body_fingerprint(b"amount=12.51&currency=usd&metadata%5Border%5D=7", form) != first
    # A repeated field's values in another order are another request (the parser reads them so).
    assert body_fingerprint(b"amount=1&amount=2", form) != body_fingerprint(b"amount=2&amount=1", form)
    # Not a form: the bytes decide.
    assert body_fingerprint(b"a=1&b=2", "text/plain") != body_fingerprint(b"b=2&a=1", "text/plain")


def test_in_flight_key_is_never_expired() -> None:
    now = [0.0]
    store = MemoryIdempotencyStore(10.0, lambda: now[0])
    assert isinstance(asyncio.run(store.claim("m", "k", "f")), Claimed)
    now[0] = 1000.0
    assert isinstance(asyncio.run(store.claim("m", "k", "f")), InFlight)


def test_released_key_can_be_claimed_with_another_body() -> None:
    store = MemoryIdempotencyStore(10.0, lambda: 0.0)
    asyncio.run(store.claim("m", "k", "f1"))
    asyncio.run(store.release("m", "k"))
    assert isinstance(asyncio.run(store.claim("m", "k", "f2")), Claimed)


def test_a_key_left_in_flight_does_not_keep_the_expired_keys_of_its_part() -> None:
    """A key crash recovery could not settle stays in flight (until the next start); the keys
    answered after it, in the same part of the store, still expire, so memory stays bounded."""
    now = [0.0]
    store = MemoryIdempotencyStore(10.0, lambda: now[0])
    store.restore("m", "stuck", "f", 0.0, None)  # in flight, as a start restores it
    part = hash(("m", "stuck")) & (SHARDS - 1)
    same_part = [k for k in (f"k{n}" for n in range(20_000)) if hash(("m", k)) & (SHARDS - 1) == part]
    old, new = same_part[:20], same_part[20]
    for key in old:
        asyncio.run(store.claim("m", key, "f"))
        asyncio.run(store.complete("m", key, StoredResponse(200, b"x" * 100)))
    assert store.body_bytes == 2000

    now[0] = 11.0
    assert isinstance(asyncio.run(store.claim("m", new, "f")), Claimed)

    assert store.body_bytes == 0  # every answered key of the part expired
    assert isinstance(asyncio.run(store.claim("m", "stuck", "f")), InFlight)  # and the stuck one stays


def test_a_part_whose_old_keys_are_all_in_flight_keeps_them_all() -> None:
    now = [0.0]
    store = MemoryIdempotencyStore(10.0, lambda: now[0])
    part = hash(("m", "k0")) & (SHARDS - 1)
    same_part = [k for k in (f"k{n}" for n in range(20_000)) if hash(("m", k)) & (SHARDS - 1) == part]
    for key in same_part[:3]:
        store.restore("m", key, "f", 0.0, None)
    now[0] = 11.0
    assert isinstance(asyncio.run(store.claim("m", same_part[3], "f")), Claimed)
    for key in same_part[:3]:
        assert isinstance(asyncio.run(store.claim("m", key, "f")), InFlight)
