"""The demo's simulated merchant traffic: what a few merchants might send, messy as they send it.

:func:`demo_payments` is a fixed batch for a seed: payments of the sample config's two merchants
(``m_acme``: Apple Pay up to 60.00 USD, then card; ``m_globex``: Google Pay up to 250.00 EUR, then
card) in many spellings the parser reads (PRODUCT.md section 5), splits over those limits, other
currencies, Stripe test cards (every third declines), a few requests that cannot be processed
(422) and one idempotent repeat. The seed picks amounts and order numbers; the shapes of body and
the cards come in a fixed order. :func:`demo_complaints` files complaints about some of the
answers. Both are pure: sending them is ``payorch.demo``'s business.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from engine.config import PlatformConfig

DEMO_SEED = 2026
#: Stripe test cards (PRODUCT.md section 5): one that succeeds, and some that decline.
GOOD_CARD = "4242424242424242"
DECLINING_CARDS = ("4000000000000002", "4000000000009995", "4000000000009987", "4000000000000069")


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """One ``POST /v1/payments``: whose key sends it, the body (JSON, or form fields when
    ``form``) and its ``Idempotency-Key`` header, if any."""

    merchant_id: str
    body: Mapping[str, object] = field(hash=False)
    idempotency_key: str | None = None
    form: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    """What a payment request got: its status (``succeeded``, ``partially_succeeded``, ``failed``,
    or ``rejected`` for a 422) and, when it was processed, its payment id and step count."""

    request: PaymentRequest
    status: str
    payment_id: str | None = None
    steps: int = 0


@dataclass(frozen=True, slots=True)
class ComplaintRequest:
    """One ``POST /v1/complaints``, sent with ``merchant_id``'s key."""

    merchant_id: str
    body: Mapping[str, object] = field(hash=False)


def _cards() -> Iterator[str]:
    """The test cards, in turn: every third declines."""
    return itertools.cycle(
        card for declining in DECLINING_CARDS for card in (GOOD_CARD, GOOD_CARD, declining)
    )


def _card(rng: random.Random, cards: Iterator[str]) -> dict[str, object]:
    """Metadata with the next test card and an order number."""
    return {"card_number": next(cards), "order_id": f"ord_{rng.randrange(10_000, 99_999)}"}


def _acme(rng: random.Random, cards: Iterator[str], shape: int, key: str | None) -> PaymentRequest:
    """m_acme (USD by default): Apple Pay and card, amounts over 60.00 split onto the card."""
    cents = rng.randrange(100)
    body: dict[str, object]
    match shape % 6:
        case 0:  # an integer is minor units; the method run together
            body = {"amount": rng.randrange(500, 5_900), "currency": "usd", "method": "ApplePay"}
        case 1:  # a split: 60.00 by Apple Pay, the rest by card
            body = {"Amount": f"{rng.randrange(61, 400)}.{cents:02d}", "Currency": " USD "}
            body |= {"method": "APPLE PAY", "metadata": _card(rng, cards)}
        case 2:  # a symbol in the amount, no currency or method: the merchant's default and routing
            body = {"merchantId": "m_acme", "amount": f"${rng.randrange(1, 3)},{rng.randrange(100, 999)}.50"}
        case 3:  # a float is major units; pounds by symbol; a card by its brand
            body = {"amount": rng.randrange(10, 90) + 0.99, "currency": "£", "method": "visa"}
            body["metadata"] = _card(rng, cards)
        case 4:  # the numeric currency code, a split with a card in metadata
            body = {"merchant_id": "m_acme", "amount": f"{rng.randrange(80, 250)}.00", "currency": "840"}
            body |= {"method": "apple-pay", "metadata": _card(rng, cards)}
        case _:  # form fields, as `curl -d` sends them
            body = {"amount": f"{rng.randrange(5, 55)}.{cents:02d}", "currency": "US Dollar", "method": "cc"}
            return PaymentRequest("m_acme", body, key, form=True)
    return PaymentRequest("m_acme", body, key)


def _globex(rng: random.Random, cards: Iterator[str], shape: int, key: str | None) -> PaymentRequest:
    """m_globex (EUR by default, allow_partial): Google Pay up to 250.00, the rest by card."""
    body: dict[str, object]
    match shape % 5:
        case 0:  # European separators, a split that may succeed only in part
            amount = f"{rng.randrange(1, 3)}.{rng.randrange(100, 999)},{rng.randrange(10, 99)}"
            body = {"MerchantID": "m_globex", "amount": amount, "currency": "euro", "method": "gpay"}
            body["metadata"] = _card(rng, cards)
        case 1:  # yen have no minor unit
            body = {"amount": str(rng.randrange(500, 20_000)), "currency": "JPY", "method": "card"}
            body["metadata"] = _card(rng, cards)
        case 2:  # the symbol, the method left to the merchant's routing
            body = {"merchant-id": "m_globex", "amount": f"{rng.randrange(20, 240)},00", "currency": "€"}
        case 3:  # metadata that is not text
            body = {"amount": rng.randrange(1_000, 20_000), "method": "Google Pay"}
            body["metadata"] = {"items": rng.randrange(1, 9), "gift": rng.random() < 0.5}
        case _:  # pounds by card, a space between thousands
            body = {"amount": f"1 {rng.randrange(100, 999)},{rng.randrange(10, 99)}", "currency": "gbp"}
            body |= {"method": "credit_card", "metadata": _card(rng, cards)}
    return PaymentRequest("m_globex", body, key)


#: Requests that cannot be processed: 422, nothing charged.
_INVALID: tuple[PaymentRequest, ...] = (
    PaymentRequest("m_acme", {"amount": "12.345", "currency": "USD", "method": "card"}),  # a third decimal
    PaymentRequest("m_globex", {"amount": -500, "currency": "EUR"}),
    PaymentRequest("m_acme", {"amount": "10.00", "currency": "XYZ"}),
)


def demo_payments(
    config: PlatformConfig, tag: str, seed: int = DEMO_SEED, count: int = 36
) -> list[PaymentRequest]:
    """``count`` payment requests, the same for a seed but for their idempotency keys, which
    start with ``tag`` (a second demo on the same data is new traffic, not replays). The
    merchants take turns, each going through its shapes of body in order; three in four carry a
    key; the last request repeats the first keyed one, which the service replays."""
    merchants = {merchant.merchant_id for merchant in config.merchants}
    if not {"m_acme", "m_globex"} <= merchants:
        raise ValueError("the demo's traffic is written for the sample config's m_acme and m_globex")
    rng = random.Random(seed)  # noqa: S311 - traffic, not secrets
    cards = _cards()
    requests: list[PaymentRequest] = []
    invalid = iter(_INVALID)
    for n in range(count - 1):
        key = f"{tag}-{n:03d}" if n % 4 else None  # without a key a payment is never deduplicated
        if n % 11 == 5 and (bad := next(invalid, None)) is not None:
            requests.append(bad)
        else:
            requests.append((_globex if n % 2 else _acme)(rng, cards, n // 2, key))
    requests.append(next(request for request in requests if request.idempotency_key is not None))
    return requests


def demo_complaints(answers: Sequence[Answered]) -> list[ComplaintRequest]:
    """Complaints as merchants' support desks would file them: about declined and partly charged
    payments, a double charge a customer thinks they saw on the order sent twice (the first keyed
    request, which :func:`demo_payments` repeats), and timeouts nobody ties to a payment (in
    capitals: the taxonomy maps a category whatever its case)."""
    processed = [answer for answer in answers if answer.payment_id is not None]
    failed = [answer for answer in processed if answer.status == "failed"][:2]
    partial = [answer for answer in processed if answer.status == "partially_succeeded"][:1]
    complaints = [
        _about(answer, "declined_unexpectedly", "The card works everywhere else.") for answer in failed
    ]
    complaints += [
        _about(answer, "partial_charge", "Only part of the order was charged.") for answer in partial
    ]
    twice = next((answer for answer in processed if answer.request.idempotency_key is not None), None)
    if twice is not None:
        complaints.append(_about(twice, "double_charge", "The customer clicked twice; charged twice?"))
    timeout = {"category": "TIMEOUT", "description": "Checkout spun for a minute, then failed."}
    complaints += [ComplaintRequest(merchant, timeout) for merchant in ("m_acme", "m_globex")]
    return complaints


def _about(answer: Answered, category: str, description: str) -> ComplaintRequest:
    body = {"category": category, "description": description, "payment_id": answer.payment_id}
    return ComplaintRequest(answer.request.merchant_id, body)
