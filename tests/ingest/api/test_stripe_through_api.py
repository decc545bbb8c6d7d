"""The API with a Stripe processor (the official SDK against the fake Stripe API): what a merchant
is answered and what an operator sees when Stripe cannot take a payment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


def only_step(document: dict[str, object]) -> dict[str, Any]:
    """The one step result of a payment's JSON."""
    steps: list[dict[str, Any]] = document["step_results"]  # type: ignore[assignment]
    (step,) = steps
    return step


async def test_an_amount_under_stripes_minimum_shows_stripes_reason_in_the_result_and_events(
    stripe_app: object, fake_stripe: FakeStripe
) -> None:
    answer = await pay(stripe_app, ACME, {"amount": 30, "currency": "USD", "method": "card"})

    result = answer.json()
    assert (answer.status, result["status"], result["final_error"]) == (200, "failed", "unknown")
    step = only_step(result)
    reason = {
        "type": "invalid_request_error",
        "code": "amount_too_small",
        "decline_code": None,
        "param": "amount",
        "message": "Amount must be at least $0.50 usd",
    }
    assert step["failure_details"] == reason
    assert step["attempts"] == 1  # a refusal is not retried
    read = await call(stripe_app, "GET", f"/v1/payments/{result['payment_id']}", [ACME], body_of(b""))
    assert only_step(read.json())["failure_details"] == reason
    events: list[dict[str, object]] = read.json()["events"]  # type: ignore[assignment]
    (failed,) = [event for event in events if event["type"] == "StepFailed"]
    assert failed["failure_details"] == reason


async def test_a_stripe_refusal_shows_the_merchant_no_card_number_and_no_api_key(
    stripe_app: object, fake_stripe: FakeStripe
) -> None:
    # Stripe quotes what it refused; a merchant who put a card number where it does not belong
    # must not see it again in the result, and no key is ever shown.
    fake_stripe.refuse_next(
        "Invalid value 4242 4242 4242 4242 for sk_live_abcdef123456 in metadata",
        code="parameter_invalid_string",
        param="metadata[note 4111111111111111]",
    )

    answer = await pay(stripe_app, ACME, {"amount": 1250, "currency": "USD", "method": "card"})

    text = answer.body.decode()
    step = only_step(answer.json())
    details = step["failure_details"]
    assert details["code"] == "parameter_invalid_string"
    assert "4242 4242 4242 4242" not in text and "4242424242424242" not in text
    assert "4111111111111111" not in text and "abcdef123456" not in text
    assert details["message"] == "Invalid value 424242******4242 for sk_live_**** in metadata"
    assert details["param"] == "metadata[note 411111******1111]"


async def test_a_card_decline_shows_stripes_message_beside_the_decline_code(
    stripe_app: object, fake_stripe: FakeStripe
) -> None:
    body = {
        "amount": 1250,
        "currency": "USD",
        "method": "card",
        "metadata": {"card_number": "4000000000009995"},
    }

    answer = await pay(stripe_app, ACME, body)

    step = only_step(answer.json())
    assert (step["error_code"], step["decline_code"]) == ("declined", "insufficient_funds")
    assert step["failure_details"]["type"] == "card_error"
    assert step["failure_details"]["decline_code"] == "insufficient_funds"
    assert step["failure_details"]["message"]
