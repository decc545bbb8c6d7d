"""How fast each merchant may file complaints (``merchants[].complaint_limits``).

Every complaint stored is a row kept for good and a commit of the one writer, which the other
merchants' payments wait behind. Unlimited, one merchant filing as fast as it can (175 a second
from 16 clients on two shared cores) took another merchant's payments from 118 to 173 ms (p50)
and grew the database without end (320 bytes to 5 KB a complaint). So each merchant has two
token buckets, a minute's and a day's (:class:`engine.config.ComplaintLimits`): a complaint
takes a token from each before it is stored, and without one it is refused 429
``rate_limited`` with the seconds until both have one.

Only the complaints a merchant adds count: one that is not stored after all (refused 422, or
filed before: 200 or 409) gives its tokens back, and a complaint filed before is answered as
before even past the limit (a client retrying a 201 whose answer it lost gets its 200, never a
429 for a complaint that is kept). A refused complaint is not stored: it was not accepted, so
nothing is lost. The buckets live in memory: a restart fills them again.

The limits hold a merchant's own key. A complaint filed with an admin key (an operator importing
a backlog of complaints taken by phone, on the merchant's behalf) takes no token: counted, a few
hundred of them locked the merchant out of filing its own for a minute, and 10,000 for a day.
Nor has the admin a limit of its own: its keys are the operators', who need a backlog in as fast
as the service takes it, not a client to throttle. What protects the other merchants' payments
from it holds still: the writer's admission, 503 with ``Retry-After`` while it is behind, first
for the merchant past its share of the writer's work, which these complaints count in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.complaints import Complaint
from engine.config import ComplaintLimits, MerchantConfig
from engine.types import MerchantId
from ingest.api.problems import ApiProblem
from ingest.records import Records

MINUTE_S = 60.0
DAY_S = 86_400.0
#: Below a millionth of a token or a second, a difference is a float's rounding.
_EPSILON = 1e-6


@dataclass(slots=True)
class _Bucket:
    """``capacity`` tokens at most, refilled at ``per_second``; ``tokens`` as of ``at``."""

    capacity: float
    per_second: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.per_second)
        self.at = now

    def wait_s(self) -> float:
        """Seconds until a token is there (0: one is, to a float's error: a client that waited
        the ``Retry-After`` it was given is let in)."""
        return 0.0 if self.tokens >= 1 - _EPSILON else (1 - self.tokens) / self.per_second


@dataclass(frozen=True, slots=True)
class Refusal:
    """A complaint over its merchant's limits: which one (``"per_minute"`` or ``"per_day"``, the
    one that frees last) and the whole seconds until both allow one more (``Retry-After``)."""

    limit: str
    retry_after_s: int
    allowed: int


class ComplaintGate:
    """Each merchant's complaint buckets. Used from the event loop's thread only."""

    __slots__ = ("_buckets", "_monotonic")

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._buckets: dict[MerchantId, tuple[_Bucket, _Bucket]] = {}

    def take(self, merchant_id: MerchantId, limits: ComplaintLimits) -> Refusal | None:
        """Take a token of each of the merchant's buckets, or none and say why."""
        now = self._monotonic()
        buckets = self._buckets.get(merchant_id)
        if buckets is None:
            buckets = (
                _Bucket(limits.per_minute, limits.per_minute / MINUTE_S, limits.per_minute, now),
                _Bucket(limits.per_day, limits.per_day / DAY_S, limits.per_day, now),
            )
            self._buckets[merchant_id] = buckets
        for bucket in buckets:
            bucket.refill(now)
        (minute_wait, day_wait) = (bucket.wait_s() for bucket in buckets)
        if minute_wait or day_wait:
            by_day = day_wait > minute_wait
            return Refusal(
                "per_day" if by_day else "per_minute",
                # Whole seconds, rounded up, but not for a float's error (21360.000000001).
                max(1, math.ceil(max(minute_wait, day_wait) - _EPSILON)),
                limits.per_day if by_day else limits.per_minute,
            )
        for bucket in buckets:
            bucket.tokens -= 1
        return None

    def give_back(self, merchant_id: MerchantId) -> None:
        """Return the tokens of a complaint :meth:`take` let through that was not stored."""
        for bucket in self._buckets.get(merchant_id, ()):
            bucket.tokens = min(bucket.capacity, bucket.tokens + 1)


async def admit(
    gate: ComplaintGate, records: Records, merchant: MerchantConfig, complaint: Complaint
) -> bool:
    """Whether ``complaint`` took tokens of ``merchant``'s (give them back unless it is stored);
    ``False`` for one over the limits that was filed before, which is answered as before. 429
    ``rate_limited`` for a new complaint over them."""
    refusal = gate.take(merchant.merchant_id, merchant.complaint_limits)
    if refusal is None:
        return True
    if await records.complaints_named(complaint.complaint_id, merchant.merchant_id):
        return False  # filed before: its answer (200, or 409) adds no row
    every = "a minute" if refusal.limit == "per_minute" else "a day"
    raise ApiProblem(
        "rate_limited",
        f"This merchant files complaints faster than its limit of {refusal.allowed} {every} "
        f"(merchants[].complaint_limits.{refusal.limit}); this complaint was not stored. Retry after "
        "Retry-After seconds, with the same complaint_id.",
        headers={"Retry-After": str(refusal.retry_after_s)},
    )
