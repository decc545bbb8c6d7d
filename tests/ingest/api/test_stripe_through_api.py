"""The API with a Stripe processor (the official SDK against the fake Stripe API): what a merchant
is answered and what an operator sees when Stripe cannot take a payment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.ingest.api.test_app import body_of, call
from tests.ingest.api.test_circuits import pay
from tests.ingest.fake_stripe import FakeStripe

STRIPE_CONFIG = """
admin_api_keys: [adm_stripe]
merchants:
  - merchant_id: m_acme
    api_keys: [sk_stripe_acme]
    default_currency: USD
    retry: {{max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2}}
    routing:
      - method: card
        processors: [{chain}]
processors:
  - id: stripe_live
    kind: stripe
    api_key_env: PAYORCH_TEST_STRIPE_KEY
    api_base: {api_base}
  - id: adyen_sim
    kind: simulated
    latency_ms: {{p50: 0, p99: 0}}
"""
ACME = (b"authorization", b"Bearer sk_stripe_acme")


@pytest.fixture
def chain() -> str:
    return "stripe_live"


@pytest.fixture
def stripe_key() -> str:
    return "sk_test_ops_1"


@pytest.fixture
async def stripe_app(
    tmp_path: Path, fake_stripe: FakeStripe, chain: str, stripe_key: str
) -> AsyncIterator[object]:
    config = parse_config(STRIPE_CONFIG.format(chain=chain, api_base=fake_stripe.url))
    settings = Settings(
        config=config, data_dir=tmp_path, durable=False, environ={"PAYORCH_TEST_STRIPE_KEY": stripe_key}
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.mark.parametrize("amount", ["1.234", "0.005", "1,234.561"])
async def test_an_amount_stripe_cannot_take_is_refused_422_before_anything_is_charged(
    stripe_app: object, fake_stripe: FakeStripe, amount: str
) -> None:
    answer = await pay(stripe_app, ACME, {"amount": amount, "currency": "BHD", "method": "card"})

    assert answer.status == 422
    issues: list[dict[str, object]] = answer.json()["errors"]  # type: ignore[assignment]
    errors = [e for e in issues if e["field"] != "merchant_id"]  # (a warning: no merchant id given)
    assert [(e["field"], e["code"]) for e in errors] == [("amount", "amount_not_supported")]
    assert "stripe_live" in str(errors[0]["message"])
    assert fake_stripe.requests == []


@pytest.mark.parametrize("chain", ["stripe_live, adyen_sim"])
async def test_an_amount_stripe_cannot_take_goes_to_a_processor_that_can(
    stripe_app: object, fake_stripe: FakeStripe
) -> None:
    answer = await pay(stripe_app, ACME, {"amount": "1.234", "currency": "BHD", "method": "card"})

    assert answer.status == 200
    assert answer.json()["status"] == "succeeded"
    results: list[dict[str, object]] = answer.json()["step_results"]  # type: ignore[assignment]
    assert [(s["processor_id"], s["attempts"]) for s in results] == [("adyen_sim", 1)]
    assert fake_stripe.requests == []


async def test_an_amount_stripe_takes_is_charged(stripe_app: object, fake_stripe: FakeStripe) -> None:
    answer = await pay(stripe_app, ACME, {"amount": "1.230", "currency": "BHD", "method": "card"})

    assert answer.json()["status"] == "succeeded"
    (intent,) = fake_stripe.payment_intents.values()
    assert (intent["amount"], intent["currency"]) == (1230, "bhd")


async def stripe_attempts(app: object) -> dict[str, float]:
    """``payorch_processor_attempts_total`` of ``stripe_live``, by outcome."""
    scraped = await call(app, "GET", "/metrics", [], body_of(b""))
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        if family.name == "payorch_processor_attempts"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["processor"] == "stripe_live"
    }


@pytest.mark.parametrize("stripe_key", ["rk_revoked_ops_77"])
async def test_a_refused_key_is_told_apart_from_an_outage_on_metrics(
    stripe_app: object, fake_stripe: FakeStripe
) -> None:
    answer = await pay(stripe_app, ACME, {"amount": 1250, "currency": "USD", "method": "card"})

    assert answer.json()["final_error"] == "processor_unavailable"
    assert await stripe_attempts(stripe_app) == {"processor_unavailable": 1.0}


async def test_a_stripe_outage_is_processor_error_on_metrics(
    stripe_app: object, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next(1, status=500)

    await pay(stripe_app, ACME, {"amount": 1250, "currency": "USD", "method": "card"})

    assert await stripe_attempts(stripe_app) == {"processor_error": 1.0, "succeeded": 1.0}
