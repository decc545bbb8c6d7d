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

import contextlib
import errno
import hashlib
import hmac
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import parse_qsl

import orjson

from engine.context import MAX_IDEMPOTENCY_KEY_LENGTH
from engine.shards import PART_MASK, ShardedDict
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
#: Every claim of a new key is the same answer (an instance made each time cost 1,100 instructions).
_CLAIMED = Claimed()


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

    __slots__ = ("_entries", "_hot_s", "_now", "_parts", "_spill", "_ttl_s")

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
        # Its parts, which a claim and its completion (once for every payment under a key) index
        # themselves: each method of the ShardedDict is a Python call (engine.shards.PART_MASK).
        self._parts = self._entries.parts()

    async def claim(self, merchant_id: str, key: str, fingerprint: str) -> ClaimOutcome:
        now = self._now()
        merchant_key = (merchant_id, key)
        entries = self._parts[hash(merchant_key) & PART_MASK]
        self._expire(entries, now)
        entry = entries.get(merchant_key)
        if entry is not None and now - entry[1] >= self._hot_s and self._leaves(entry, now):
            del entries[merchant_key]  # old enough to leave, though the sweep has not reached it yet
            self._left(merchant_key, entry, now)
            entry = None
        if entry is None:
            entries[merchant_key] = (fingerprint, now, *_IN_FLIGHT)
            return _CLAIMED
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
        merchant_key = (merchant_id, key)
        entries = self._parts[hash(merchant_key) & PART_MASK]
        entry = entries.get(merchant_key)
        if entry is not None:
            entries[merchant_key] = (entry[0], entry[1], *response, 0)

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
#: How a start's own secret file is named before it is published (``.idempotency-key.secret.*``).
_UNPUBLISHED_PREFIX = f".{SECRET_FILE}."
_UNPUBLISHED_SUFFIX = ".partial"
_SECRET_BYTES = 32
_TAG_CHARACTERS = 16  # of the HMAC's hex digest: 64 bits


def process_secret() -> bytes:
    """A key secret for keys that live in this process's memory only."""
    return os.urandom(_SECRET_BYTES)


def load_or_create_secret(data_dir: Path, *, link: Callable[[str, Path], None] = os.link) -> bytes:
    """The data folder's key secret, made (readable by the owner only) the first time.

    The secret on disk is the one every process uses, and once there it is never replaced: keys
    stored under it must be kept the same way after a restart. Two starts at once on a new folder
    both wrote one ``.partial`` file and renamed it into place: the second rename failed ("cannot
    write the key secret ... No such file or directory"), or landed after the first start had
    taken its own secret, which it then served with while the file held the other's, so that after
    a restart a repeat of a key holding a card number was charged again. Each start now writes a
    file of its own and publishes it with a hard link, which never replaces a file: the start that
    finds the secret there already uses that one. ``link`` is :func:`os.link` (a test's stand-in
    for a file system without hard links)."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = _publish_secret(path, link)
    except OSError as error:
        raise IngestError(f"cannot read the key secret {path}: {error.strerror}") from None
    if len(secret) != _SECRET_BYTES:
        raise IngestError(f"{path} is not a key secret ({_SECRET_BYTES} bytes); restore it or move it away")
    return secret


def _publish_secret(path: Path, link: Callable[[str, Path], None]) -> bytes:
    """A new secret at ``path``, or the one another process put there first."""
    secret = process_secret()
    try:
        # A file of this process's own (made for its owner only), whole on disk before it is named.
        descriptor, partial = tempfile.mkstemp(
            prefix=_UNPUBLISHED_PREFIX, suffix=_UNPUBLISHED_SUFFIX, dir=path.parent
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(secret)
                file.flush()
                os.fsync(file.fileno())
            try:
                link(partial, path)
            except FileExistsError:
                return path.read_bytes()  # another start's, whole: it was linked once written
            except OSError as error:
                if error.errno not in _NO_LINKS:
                    raise
                return _create_secret(path, secret)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        _sync_folder(path.parent)
    except OSError as error:
        raise IngestError(f"cannot write the key secret {path}: {error.strerror}") from None
    return secret


def sweep_unpublished_secrets(data_dir: Path) -> int:
    """Remove the secret files a start wrote and never removed (it crashed, or was killed, between
    writing one and publishing it), and say how many: nothing else ever did, and each start that
    died so left one more. Only while no other process may be writing its own: the caller holds
    the folder alone (``payorch.server``'s ``flock``). One that cannot be removed is left."""
    removed = 0
    try:
        names = os.listdir(data_dir)
    except OSError:
        return 0
    for name in names:
        if name.startswith(_UNPUBLISHED_PREFIX) and name.endswith(_UNPUBLISHED_SUFFIX):
            with contextlib.suppress(OSError):
                os.unlink(data_dir / name)  # one published too is only a second name of the secret
                removed += 1
    return removed


#: What a file system without hard links (FAT, some network mounts) answers ``link(2)`` with.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})


def _create_secret(path: Path, secret: bytes) -> bytes:
    """``secret`` written at ``path`` where no hard link can publish it: created only if absent
    (``O_EXCL``), so that it never replaces another's; a start that finds it there reads that one.
    (A start reading it in the moment between its creation and its write finds it short, and
    refuses to start: once, at the first start, where starts race on a folder on such a disk.)"""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secret)
            file.flush()
            os.fsync(file.fileno())
    except OSError:
        path.unlink()  # this start's, never whole: the next start makes one again
        raise
    _sync_folder(path.parent)
    return secret


def _sync_folder(folder: Path) -> None:
    """The new file's name made durable with its folder, where the file system allows it: a secret
    lost in a crash after keys were stored under it would leave them unmatched."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


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
