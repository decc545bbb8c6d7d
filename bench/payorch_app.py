"""The payorch app as bench_api serves it: ``uvicorn --factory bench.payorch_app:create``.

One merchant, ``m_bench`` (API key ``sk_bench_123``, USD): Apple Pay up to $60 through
``applepay_sim``, then card through ``stripe_sim``. Both processors are simulated, answer at once
and never fail, so what is measured is payorch and its HTTP stack, not a processor. The data
directory is ``$PAYORCH_BENCH_DATA_DIR`` (bench_api passes a fresh temporary one), else a new
temporary directory. With ``PAYORCH_BENCH_DURABLE=1`` the app writes through the DuckDB store;
without it, records stay in memory (the API issue's benchmark).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import FastAPI

from engine.config import (
    FaultRates,
    LatencyProfile,
    MerchantConfig,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    RoutingRule,
)
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import MerchantId, ProcessorId
from ingest.api.app import create_app
from ingest.api.settings import Settings

MERCHANT_ID = "m_bench"
API_KEY = "sk_bench_123"
APPLE_PAY, CARD = ProcessorId("applepay_sim"), ProcessorId("stripe_sim")
DATA_DIR_ENV = "PAYORCH_BENCH_DATA_DIR"
#: ``1``: events, results and keys go to ``payorch.duckdb`` (the store issue's rerun); else memory.
DURABLE_ENV = "PAYORCH_BENCH_DURABLE"


def durable() -> bool:
    return os.environ.get(DURABLE_ENV, "") == "1"


def bench_config() -> PlatformConfig:
    """The benchmark's platform: one merchant, two instant, faultless simulated processors."""
    instant, faultless = LatencyProfile(p50_ms=0, p99_ms=0), FaultRates()
    merchant = MerchantConfig(
        merchant_id=MerchantId(MERCHANT_ID),
        api_keys=(API_KEY,),
        default_currency=Currency("USD"),
        routing=(
            RoutingRule(PaymentMethod.APPLE_PAY, (APPLE_PAY,), max_amount_cents=6000),
            RoutingRule(PaymentMethod.CARD, (CARD,)),
        ),
    )
    processors = tuple(
        ProcessorConfig(processor, ProcessorKind.SIMULATED, seed=seed, latency=instant, fault_rates=faultless)
        for processor, seed in ((APPLE_PAY, 7), (CARD, 42))
    )
    return PlatformConfig(merchants=(merchant,), processors=processors)


def create() -> FastAPI:
    """The ASGI app: ``create_app(Settings(config=bench_config(), data_dir=...))``."""
    configured = os.environ.get(DATA_DIR_ENV)
    data_dir = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="payorch-bench-"))
    # No ledger journal: it is the simulated processors' own bookkeeping for tests (a real
    # processor keeps its books elsewhere), not work payorch does for a payment.
    return create_app(
        Settings(config=bench_config(), data_dir=data_dir, ledger_journal=False, durable=durable())
    )
