"""Idempotency keys for ``POST /v1/payments``, with Stripe's semantics.

A key is scoped to its merchant. The first request with a key *claims* it; until that request
finishes, a repeat gets ``InFlight`` (409 ``idempotency_key_in_use``). A finished request stores
its response: a repeat with the same body fingerprint replays it (``Idempotent-Replayed: true``),
one with another body is ``Mismatch`` (422 ``idempotency_key_reused``). A request that was not
processed at all (refused by the parser, 503) *releases* its key, as Stripe saves no result for
requests that failed validation. Keys are kept at least ``ttl_s`` (24 hours by default).

:class:`IdempotencyStore` is the port; :class:`MemoryIdempotencyStore` keeps keys in this process
(the durable store keeps them across restarts behind the same interface).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import parse_qsl

import orjson

from engine.context import MAX_IDEMPOTENCY_KEY_LENGTH
from engine.shards import ShardedDict
from engine.validation import ValidationIssue
from ingest.errors import IngestError
from ingest.parsing.issues import warning
from ingest.parsing.masking import mask_luhn_numbers


class StoredResponse(NamedTuple):
    """The response a finished request gave, replayed byte for byte. (A named tuple: kept for a
    day per key, and tuples of bytes and numbers are invisible to the garbage collector.)"""

    status_code: int
    body: bytes
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is new (or expired): this request owns it and must complete or release it."""


@dataclass(frozen=True, slots=True)
class InFlight:
    """Another request with the key has not finished."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was used with a different body."""


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse
    #: Where the owner keeps the body, when it asked the memory to drop it (the body is then empty).
    locator: int = 0


ClaimOutcome = Claimed | InFlight | Mismatch | Replay


class IdempotencyStore(Protocol):
    async def claim(self, merchant_id: str, key: str, fingerprint: str) -> ClaimOutcome: ...

    def hold(self, merchant_id: str, key: str) -> None:
        """The request that claimed ``key`` goes on to charge: make its claim durable (before
        anything of the payment). A claim released before this leaves nothing behind."""
        ...

    async def complete(self, merchant_id: str, key: str, response: StoredResponse) -> None: ...

    async def release(self, merchant_id: str, key: str) -> None: ...


FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


def body_fingerprint(body: bytes, content_type: str | None = None) -> str:
    """What makes two bodies "the same request": equal JSON documents (whatever the key order or
    whitespace); for a form, the same fields with the same values (whatever the order of the
    fields, as Stripe compares parameters; a repeated field's values keep their order); else
    equal bytes."""
    canonical: bytes | None
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        canonical = _form(body) if _is_form(content_type) else None
    return hashlib.sha256(b"raw:" + body if canonical is None else canonical).hexdigest()


def earlier_fingerprint(body: bytes, content_type: str | None = None) -> str | None:
    """The fingerprint payorch gave a form body before forms were compared field by field (that
    of its bytes), when :func:`body_fingerprint` gives it another: a key stored then, repeated with
    the same bytes, is the same request (else ``None``)."""
    if not _is_form(content_type):
        return None
    fingerprint = hashlib.sha256(b"raw:" + body).hexdigest()
    return None if fingerprint == body_fingerprint(body, content_type) else fingerprint


def _is_form(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == FORM_MEDIA_TYPE


def _form(body: bytes) -> bytes | None:
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    fields.sort(key=lambda field: field[0])  # stable: a repeated field's values keep their order
    return b"form:" + orjson.dumps(fields)


#: (fingerprint, created_at, status_code, body, media_type, locator), the status ``None`` while the
#: request is in flight, the locator 0 unless the body was dropped: one flat tuple, because only an
#: exact tuple of strings, bytes and numbers is dropped from the garbage collector's view (a nested
#: one stays in view a collection longer), and a key is kept for a day.
_Entry = tuple[str, float, int | None, bytes, str, int]
_IN_FLIGHT = (None, b"", "", 0)


class MemoryIdempotencyStore:
    """Keys of this process, expired in creation order (O(1) amortised per claim).

    The keys are split into :class:`~engine.shards.ShardedDict` parts (one is gained per payment,
    and a single table would rebuild itself in one step as it grows); each part keeps its keys in
    creation order, and a claim sweeps the part it lands in.

    An owner that keeps answers elsewhere (the durable store) may ask for answered keys to leave
    memory after ``hot_s`` instead of ``ttl_s``: each is then handed to ``spill`` (its merchant and
    key, and its creation time on this store's clock), once its body has left memory too (see
    :meth:`drop_body`), and the owner answers for it until ``ttl_s``. A claim of a spilled key is
    ``Claimed`` here; the owner must look further before it charges.
    """

    __slots__ = ("_entries", "_hot_s", "_now", "_spill", "_ttl_s")

    def __init__(
        self,
        ttl_s: float,
        now: Callable[[], float],
        *,
        hot_s: float | None = None,
        spill: Callable[[tuple[str, str], float], None] | None = None,
    ) -> None:
        self._ttl_s = ttl_s
        self._hot_s = ttl_s if hot_s is None else min(hot_s, ttl_s)
        self._now = now
        self._spill = spill
        self._entries: ShardedDict[tuple[str, str], _Entry] = ShardedDict(OrderedDict)

    async def claim(self, merchant_id: str, key: str, fingerprint: str) -> ClaimOutcome:
        now = self._now()
        merchant_key = (merchant_id, key)
        entries = self._entries.shard(merchant_key)
        self._expire(entries, now)
        entry = entries.get(merchant_key)
        if entry is not None and now - entry[1] >= self._hot_s and self._leaves(entry, now):
            del entries[merchant_key]  # old enough to leave, though the sweep has not reached it yet
            self._left(merchant_key, entry, now)
            entry = None
        if entry is None:
            entries[merchant_key] = (fingerprint, now, *_IN_FLIGHT)
            return Claimed()
        stored_fingerprint, _, status_code, body, media_type, locator = entry
        if stored_fingerprint != fingerprint:
            return Mismatch()
        if status_code is None:
            return InFlight()
        return Replay(StoredResponse(status_code, body, media_type), locator)

    def hold(self, merchant_id: str, key: str) -> None:
        """Memory holds the claim already."""

    @property
    def held(self) -> int:
        """How many keys are in memory."""
        return len(self._entries)

    async def complete(self, merchant_id: str, key: str, response: StoredResponse) -> None:
        entry = self._entries.get((merchant_id, key))
        if entry is not None:
            self._entries[merchant_id, key] = (entry[0], entry[1], *response, 0)

    async def release(self, merchant_id: str, key: str) -> None:
        entry = self._entries.get((merchant_id, key))
        if entry is not None and entry[2] is None:
            del self._entries[merchant_id, key]

    def drop_body(self, merchant_id: str, key: str, locator: int) -> None:
        """Forget an answered key's body, keeping what tells a repeat apart (its fingerprint, its
        status): for an owner that keeps the body elsewhere, at ``locator`` (not 0). A repeat's
        :class:`Replay` then holds an empty body (a stored answer never has one) and the locator,
        for the owner to fill in."""
        entry = self._entries.get((merchant_id, key))
        if entry is not None and entry[2] is not None:
            self._entries[merchant_id, key] = (entry[0], entry[1], entry[2], b"", entry[4], locator)

    @property
    def body_bytes(self) -> int:
        """The bytes of the stored answers held in memory."""
        return sum(len(entry[3]) for entry in self._entries.values())

    def restore(
        self,
        merchant_id: str,
        key: str,
        fingerprint: str,
        age_s: float,
        response: StoredResponse | None,
        locator: int = 0,
    ) -> None:
        """Put back a key read from a durable store, ``age_s`` old (``response`` ``None``: its
        request was in flight when the process stopped; an empty body: kept at ``locator``, as
        :meth:`drop_body` says). Keys are restored oldest first."""
        created_at = self._now() - max(0.0, age_s)
        answer = _IN_FLIGHT if response is None else (*response, locator)
        self._entries[merchant_id, key] = (fingerprint, created_at, *answer)

    def _expire(self, entries: MutableMapping[tuple[str, str], _Entry], now: float) -> None:
        # Entries sit in creation order, so the old ones are at the front; the sweep stops at the
        # first one younger than ``hot_s``. Those that must stay are moved to the back and the sweep
        # goes on: a request still in flight (its owner would complete a key another request had
        # claimed) and, for an owner that spills, an answer whose body has not left memory (the
        # owner cannot answer for it yet). Stopping at one let a key crash recovery could not settle
        # (in flight until the next start) keep every key of its part for good. Moved, it is met
        # again only once the keys in front of it have left, so a sweep moves each key at most once.
        moved: tuple[str, str] | None = None  # the first key this sweep moved
        while entries:
            merchant_key, entry = next(iter(entries.items()))
            if merchant_key == moved or now - entry[1] < self._hot_s:
                return
            del entries[merchant_key]
            if self._leaves(entry, now):
                self._left(merchant_key, entry, now)
            else:
                entries[merchant_key] = entry  # to the back
                moved = moved or merchant_key

    def _leaves(self, entry: _Entry, now: float) -> bool:
        """Whether an entry older than ``hot_s`` may leave memory."""
        if entry[2] is None:  # in flight
            return False
        return self._spill is None or now - entry[1] >= self._ttl_s or entry[5] != 0

    def _left(self, merchant_key: tuple[str, str], entry: _Entry, now: float) -> None:
        if self._spill is not None and now - entry[1] < self._ttl_s:
            self._spill(merchant_key, entry[1])


# -- keys that hold a card number ------------------------------------------------------------------

#: The secret of :class:`KeyKeeper`, in the data folder: keys kept across restarts must come out
#: the same after one.
SECRET_FILE = "idempotency-key.secret"  # noqa: S105 - a file name, not a secret
_SECRET_BYTES = 32
_TAG_CHARACTERS = 16  # of the HMAC's hex digest: 64 bits


def process_secret() -> bytes:
    """A key secret for keys that live in this process's memory only."""
    return os.urandom(_SECRET_BYTES)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The data folder's key secret, made (readable by the owner only) the first time."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = process_secret()
        partial = path.with_name(f".{path.name}.partial")
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(secret)
                file.flush()
                os.fsync(file.fileno())
            partial.replace(path)
        except OSError as error:
            raise IngestError(f"cannot write the key secret {path}: {error.strerror}") from None
        return secret
    except OSError as error:
        raise IngestError(f"cannot read the key secret {path}: {error.strerror}") from None
    if len(secret) != _SECRET_BYTES:
        raise IngestError(f"{path} is not a key secret ({_SECRET_BYTES} bytes); restore it or move it away")
    return secret


#: A tag's hex digits as letters: ``0``-``9`` become ``g``-``p``.
_HEX_AS_LETTERS = str.maketrans("0123456789", "ghijklmnop")


class KeyKeeper:
    """How a merchant's idempotency key is kept, in events, answers and the database.

    A key is kept as given unless it holds a card number (PRODUCT.md section 5: kept only masked,
    everywhere). Such a key is kept masked, with a tag that tells keys apart which mask alike:
    ``order 424242******4242#9f86d081884c7d65``. The tag is an HMAC of the whole key under a
    secret of the data folder (:func:`load_or_create_secret`): a plain hash of a masked number
    gives its six hidden digits away to anyone trying the 100,000 candidates. A repeat of the
    same key is kept the same way, so it still replays. "Holds a card number" is the wider rule
    of :func:`~ingest.parsing.masking.mask_luhn_numbers` (any 13-19 digits passing Luhn), the
    one keys were stored under: a key stored masked must be kept the same way by its repeat.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def kept(self, key: str) -> tuple[str, ValidationIssue | None]:
        """The key as kept, and the warning to give when it is not the key as given."""
        masked = mask_luhn_numbers(key)
        if masked == key:
            return key, None
        tag = hmac.new(self._secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        room = MAX_IDEMPOTENCY_KEY_LENGTH - _TAG_CHARACTERS - 1
        kept = f"{masked[:room]}#{tag[:_TAG_CHARACTERS]}"
        message = f"masked a card number in the idempotency key, kept as {kept!r} (repeats still replay)"
        return kept, warning("idempotency_key", "card_number_masked", message, kept)

    def identifier(self, value: str) -> str:
        """An identifier a merchant chose (a ``complaint_id``) as kept: as given, unless it holds a
        card number (a reference that happens to pass Luhn). Then it is kept masked, as an
        identifier can hold it (``x`` for each hidden digit), with the tag in letters (``a`` to
        ``p``, no digit that could form a card number): ``ticket-424242xxxxxx4242.ghijabcd...``.
        The same identifier is kept the same way, so a retry still finds what it filed."""
        masked = mask_luhn_numbers(value)
        if masked == value:
            return value
        tag = hmac.new(self._secret, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        room = MAX_IDEMPOTENCY_KEY_LENGTH - _TAG_CHARACTERS - 1
        return f"{masked.replace('*', 'x')[:room]}.{tag[:_TAG_CHARACTERS].translate(_HEX_AS_LETTERS)}"
