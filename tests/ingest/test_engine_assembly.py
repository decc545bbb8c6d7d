import subprocess
import sys

import pytest

from engine.ports import SeededRandom
from engine.processors.simulated import SimulatedProcessor
from engine.results import PaymentStatus
from engine.types import ProcessorId
from ingest.config_file import load_sample_config, parse_config
from ingest.engine_assembly import Engine, build_engine, routed_processors
from ingest.processors.errors import MissingApiKeyError
from ingest.processors.stripe_adapter import StripeProcessor
from tests.engine.fakes import InMemorySink, ManualClock, RecordingSleeper
from tests.engine.harness import request

STRIPE_ROUTED = """
merchants:
  - merchant_id: m_acme
    api_keys: [sk_test_acme_123]
    default_currency: USD
    routing: [{method: card, processors: [stripe_live]}]
processors:
  - {id: stripe_live, kind: stripe, api_key_env: PAYORCH_TEST_STRIPE_KEY, api_base: "http://127.0.0.1:9"}
"""


def build(config_text: str | None = None, environ: dict[str, str] | None = None) -> Engine:
    config = parse_config(config_text) if config_text else load_sample_config()
    clock = ManualClock()
    return build_engine(
        config,
        sink=InMemorySink(),
        clock=clock,
        sleeper=RecordingSleeper(clock),
        random=SeededRandom(1),
        environ=environ or {},
    )


def test_only_routed_processors_are_built() -> None:
    config = load_sample_config()
    assert routed_processors(config) == ("applepay_sim", "stripe_sim", "adyen_sim")
    engine = build()
    assert set(engine.processors) == {"applepay_sim", "stripe_sim", "adyen_sim"}
    assert all(isinstance(p, SimulatedProcessor) for p in engine.processors.values())


async def test_the_assembled_engine_takes_the_seed_payment() -> None:
    config = load_sample_config()
    clock = ManualClock()
    engine = build_engine(
        config,
        sink=InMemorySink(),
        clock=clock,
        sleeper=RecordingSleeper(clock),
        random=SeededRandom(1),
        environ={},
    )
    result = await engine.service.pay(request(10_000, "pay_seed"))
    assert result.status is PaymentStatus.SUCCEEDED
    assert [s.amount_processed for s in result.step_results] == [6000, 4000]
    assert engine.ledger.held_cents(result.payment_id) == 10_000


def test_a_routed_stripe_processor_needs_its_key() -> None:
    with pytest.raises(MissingApiKeyError, match="PAYORCH_TEST_STRIPE_KEY"):
        build(STRIPE_ROUTED)


async def test_a_routed_stripe_processor_is_built_with_its_key() -> None:
    engine = build(STRIPE_ROUTED, {"PAYORCH_TEST_STRIPE_KEY": "sk_test_123"})
    stripe = engine.processors[ProcessorId("stripe_live")]
    assert isinstance(stripe, StripeProcessor)
    assert engine.connected == (stripe,)  # what aclose closes
    await engine.aclose()


SIMULATED_ONLY_START = """
import sys
import payorch.cli, payorch.server
from engine.ports import SeededRandom
from ingest.config_file import load_sample_config
from ingest.engine_assembly import build_engine
from tests.engine.fakes import InMemorySink, ManualClock, RecordingSleeper
clock = ManualClock()
sleeper = RecordingSleeper(clock)
random = SeededRandom(1)
config = load_sample_config()
build_engine(config, sink=InMemorySink(), clock=clock, sleeper=sleeper, random=random, environ={})
print(sorted(name for name in sys.modules if name.partition(".")[0] == "stripe"))
"""


def test_a_service_of_simulated_processors_never_imports_the_stripe_sdk() -> None:
    # The SDK took about 0.5 s of each start (1.9 s in all), for merchants who never route to it.
    done = subprocess.run(
        [sys.executable, "-c", SIMULATED_ONLY_START], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
