"""What Stripe holds for one of payorch's idempotency keys, and when it provably holds nothing.

``status`` and ``void_or_refund`` know only the key, and after a restart this process remembers
nothing it sent (:mod:`ingest.processors.recent_attempts`). Stripe's Search API finds intents by
the key in their metadata, but it is not read-after-write: Stripe documents that a new object can
take up to a minute to become searchable, longer during an incident. An empty search therefore
proves nothing, and reading it as "not charged" (or as "nothing to refund") after a crash left
customers charged for payments that were reported failed. So :class:`IntentLookup` finds intents:

1. by id, when this process charged the key (retrieval is strongly consistent);
2. with the Search API, then retrieving each intent found by its id (the search's copy of an
   intent can be stale too: a refund or a confirmation may not show in it yet);
3. when the search finds nothing, by listing the newest PaymentIntents (the List API is not
   subject to the search's delay), newest first, back to ``window_s`` ago and for at most
   ``max_pages`` pages, keeping those whose metadata holds the key. This only helps to find: a
   list that fails counts as finding nothing (absence is proven only as below).

Finding nothing still proves nothing (the intent may be older than the window, or the create
may still be in flight). :meth:`IntentLookup.never_charged` proves it, or says it cannot:

* this process attempted the key and Stripe's last answer for it was definitive without a
  charge (a card error, stored by Stripe under the key): nothing was charged;
* this process has the key in doubt (a timeout, a 5xx): it cannot tell (its router may retry);
* this process knows nothing of the key (after a restart): Stripe's idempotency layer is asked.
  The key's create is sent again, with deliberately different parameters: an unconfirmed
  USD 1.00 intent without a payment method, marked as a probe, which can charge nothing. Stripe
  keeps the first request made with a key (for at least 24 hours) and compares the parameters of
  any later one. If the key was used, Stripe refuses the probe (``idempotency_error``, or a 409
  while the first request still runs): a create ran and its intent is just not visible yet, so
  it cannot be told. If the key was never used, the probe runs, and from then on the key is the
  probe's: the original create can never run under it, not even one still in flight. So nothing
  was charged, for sure. The probe's intent is cancelled; sent again, the probe is replayed, so
  the answer does not change.

Why not send the original create again (Stripe would replay its outcome, or run it now)? The
adapter cannot rebuild it: its PaymentMethod comes from the request's metadata, which ``status``
is not given and the event log does not keep. With other parameters Stripe refuses it as it
refuses the probe; with guessed ones it would charge a guessed payment method. (A key Stripe has
forgotten, after a day, looks unused to the probe; by then its intent is long searchable.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import stripe
from stripe.params import PaymentIntentListParams

from ingest.processors.recent_attempts import RecentAttempts
from ingest.processors.stripe_keys import IDEMPOTENCY_METADATA_KEY, search_query, stripe_idempotency_key
from ingest.processors.stripe_objects import IntentView, read_intent, read_intent_page, read_intents

#: The metadata key naming the payorch key a settlement probe was sent for.
PROBE_METADATA_KEY = "payorch_settlement_probe_for"

_PROBE_AMOUNT, _PROBE_CURRENCY = 100, "usd"  # USD 1.00, above Stripe's minimum, never confirmed
_PROBE_DESCRIPTION = "payorch settlement probe (cancelled)"
_PAGE = 100


class IntentLookup:
    """Finds the PaymentIntents of a key (see the module text); it never charges anything."""

    def __init__(
        self,
        client: stripe.StripeClient,
        recent: RecentAttempts,
        *,
        window_s: float = 3600.0,
        max_pages: int = 10,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._recent = recent
        self._window_s = window_s
        self._max_pages = max_pages
        self._wall_clock = wall_clock

    async def intents(self, key: str) -> tuple[IntentView, ...]:
        """The key's PaymentIntents that can be found, each with its latest charge expanded.

        Raises what the SDK raises, or ``MalformedProcessorResponseError``.
        """
        recent = self._recent.get(key)
        if recent is not None and recent.intent_id is not None:
            return (await self._retrieved(recent.intent_id),)
        found = read_intents(await self._client.v1.payment_intents.search_async({"query": search_query(key)}))
        if found:
            return tuple([await self._retrieved(intent.id) for intent in found])
        try:
            return await self._listed(key)
        except Exception:  # noqa: BLE001 - a help to find only; absence is proven by never_charged
            return ()

    async def never_charged(self, key: str) -> bool:
        """True only when it is certain that no charge was, or ever will be, made under ``key``
        (to be asked once :meth:`intents` found nothing)."""
        recent = self._recent.get(key)
        if recent is not None:
            return not recent.in_doubt and recent.intent_id is None
        try:
            probe = read_intent(
                await self._client.v1.payment_intents.create_async(
                    {
                        "amount": _PROBE_AMOUNT,
                        "currency": _PROBE_CURRENCY,
                        "description": _PROBE_DESCRIPTION,
                        "metadata": {PROBE_METADATA_KEY: key},
                    },
                    options={"idempotency_key": stripe_idempotency_key(key)},
                )
            )
        except Exception:  # noqa: BLE001 - refused (the key was used), or no answer: not proven
            return False
        if probe.metadata.get(PROBE_METADATA_KEY) != key:
            return False  # not our probe's intent: whatever it is, it proves nothing
        await self._cancel_probe(key, probe)
        return True

    async def _retrieved(self, intent_id: str) -> IntentView:
        return read_intent(
            await self._client.v1.payment_intents.retrieve_async(intent_id, {"expand": ["latest_charge"]})
        )

    async def _listed(self, key: str) -> tuple[IntentView, ...]:
        """The key's intents among the newest ones (the List API reads what was just written)."""
        params: PaymentIntentListParams = {
            "created": {"gte": int(self._wall_clock() - self._window_s)},
            "limit": _PAGE,
            "expand": ["data.latest_charge"],
        }
        for _ in range(self._max_pages):
            page = read_intent_page(await self._client.v1.payment_intents.list_async(params))
            found = tuple(i for i in page.intents if i.metadata.get(IDEMPOTENCY_METADATA_KEY) == key)
            if found or not page.has_more or not page.intents:
                return found
            params["starting_after"] = page.intents[-1].id
        return ()

    async def _cancel_probe(self, key: str, probe: IntentView) -> None:
        if probe.status == "canceled":
            return
        with contextlib.suppress(Exception):  # tidying up only: the probe can charge nothing
            await self._client.v1.payment_intents.cancel_async(
                probe.id, options={"idempotency_key": stripe_idempotency_key(key, "probe-cancel")}
            )
