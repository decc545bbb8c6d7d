"""Circuit breakers through the API: one shopper's card never takes a processor out of service
for every merchant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from engine.circuit_breaker import CircuitState
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import load_sample_config
from tests.ingest.api.test_app import JSON, Answer, body_of, call

SAMPLE_ACME = (b"authorization", b"Bearer sk_test_acme_123")
SAMPLE_GLOBEX = (b"authorization", b"Bearer sk_test_globex_456")


async def pay(app: object, key: tuple[bytes, bytes], body: dict[str, object]) -> Answer:
    return await call(app, "POST", "/v1/payments", [key, JSON], body_of(orjson.dumps(body)))


def steps(answer: Answer) -> list[tuple[object, ...]]:
    """Each step result's processor, attempts and error code."""
    results: list[dict[str, object]] = answer.json()["step_results"]  # type: ignore[assignment]
    return [(s["processor_id"], s["attempts"], s["error_code"]) for s in results]


def parts_of(app: object) -> Parts:
    parts: Parts = app.state.parts  # type: ignore[attr-defined]
    return parts


@pytest.fixture
async def sample_app(tmp_path: Path) -> AsyncIterator[object]:
    """The app on the sample configuration ``payorch demo`` runs with."""
    application = create_app(Settings(config=load_sample_config(), data_dir=tmp_path))
    async with application.router.lifespan_context(application):
        yield application


async def test_a_card_that_keeps_failing_leaves_the_circuits_closed_for_everyone(sample_app: object) -> None:
    # Stripe's test card for a processing error that may be retried (PRODUCT.md section 5).
    retryable_error = {"amount": 4000, "method": "card", "metadata": {"card_number": "4000000000000119"}}
    for _ in range(2):
        failed = await pay(sample_app, SAMPLE_ACME, retryable_error)
        assert failed.status == 200
        assert failed.json()["final_error"] == "processing_error"
        assert steps(failed) == [("adyen_sim", 6, "processing_error")]

    states = parts_of(sample_app).engine.router.breakers.states()
    assert set(states.values()) == {CircuitState.CLOSED}
    good = {"amount": 2500, "method": "card", "metadata": {"card_number": "4242424242424242"}}
    other = await pay(sample_app, SAMPLE_GLOBEX, good)
    assert other.json()["status"] == "succeeded"
    assert steps(other) == [("adyen_sim", 1, None)]
