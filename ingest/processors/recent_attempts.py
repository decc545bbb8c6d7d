"""What this process recently asked Stripe to charge, by payorch idempotency key.

Stripe's Search API is eventually consistent: a PaymentIntent usually becomes searchable within
a minute of its creation (longer during incidents). ``status`` and ``void_or_refund`` find
intents by searching their metadata, so right after a charge a search can miss it. This memory
closes that gap for the process that made the charge:

* a key whose charge succeeded remembers its PaymentIntent id, which can be retrieved directly
  (retrieval is strongly consistent);
* a key whose last attempt ended in doubt (a timeout, a 5xx, an unreadable answer) is reported,
  so that "the search found nothing" is read as "unknown", not "not charged".

Entries expire after ``window_s`` seconds (by then the search has caught up) and the memory
never holds more than ``max_entries`` keys, forgetting the oldest first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attempt:
    """The latest attempt for one key: when it was made, and its PaymentIntent if it charged."""

    at: float
    intent_id: str | None
    in_doubt: bool


class RecentAttempts:
    """A bounded, expiring map from idempotency key to its latest :class:`Attempt`."""

    def __init__(
        self, clock: Callable[[], float], *, window_s: float = 300.0, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._window_s = window_s
        self._max_entries = max_entries
        self._attempts: OrderedDict[str, Attempt] = OrderedDict()

    def charged(self, key: str, intent_id: str) -> None:
        """The charge for ``key`` succeeded as ``intent_id``."""
        self._put(key, intent_id, in_doubt=False)

    def in_doubt(self, key: str) -> None:
        """An attempt for ``key`` failed in a way that may still have charged."""
        known = self.get(key)
        self._put(key, known.intent_id if known else None, in_doubt=True)

    def settled(self, key: str) -> None:
        """An attempt for ``key`` was answered definitively without a charge."""
        known = self.get(key)
        if known is not None and known.intent_id is None:
            self._put(key, None, in_doubt=False)

    def get(self, key: str) -> Attempt | None:
        """The latest attempt for ``key``, unless it is older than the window."""
        self._expire()
        return self._attempts.get(key)

    def _put(self, key: str, intent_id: str | None, *, in_doubt: bool) -> None:
        self._attempts.pop(key, None)
        self._attempts[key] = Attempt(self._clock(), intent_id, in_doubt)
        while len(self._attempts) > self._max_entries:
            self._attempts.popitem(last=False)
        self._expire()

    def _expire(self) -> None:
        horizon = self._clock() - self._window_s
        while self._attempts:
            oldest = next(iter(self._attempts.values()))
            if oldest.at >= horizon:
                return
            self._attempts.popitem(last=False)
