"""What one API process is made of, built once from its settings: the records, the engine with its
processors (each wrapped for timing), the idempotency store, the metrics and the payment desk."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from engine.config import MerchantConfig, PlatformConfig
from engine.ledger import Ledger
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from ingest.api.auth import ApiKeys
from ingest.api.idempotency import MemoryIdempotencyStore
from ingest.api.metrics import ApiMetrics
from ingest.api.payments import PaymentDesk
from ingest.api.settings import Settings
from ingest.api.timing import TimedProcessor
from ingest.engine_assembly import Engine, build_engine
from ingest.ledger_journal import FILE_NAME, FileLedgerJournal
from ingest.records import MemoryRecords, Records


@dataclass(slots=True)
class Parts:
    """What the routes of one app share."""

    settings: Settings
    config: PlatformConfig
    keys: ApiKeys
    records: Records
    engine: Engine
    desk: PaymentDesk
    metrics: ApiMetrics
    clock: SystemClock
    journal: FileLedgerJournal | None
    merchants: dict[str, MerchantConfig]
    draining: bool = False


def build_parts(settings: Settings) -> Parts:
    """Wire the process; raises a DomainError or IngestError for a config it cannot run."""
    config = settings.config
    clock = SystemClock()
    records = settings.records if settings.records is not None else MemoryRecords()
    journal = FileLedgerJournal(settings.data_dir / FILE_NAME) if settings.ledger_journal else None
    engine = build_engine(
        config,
        sink=records,
        clock=clock,
        sleeper=AsyncioSleeper(),
        random=SeededRandom(secrets.randbits(64)),
        environ=settings.environ,
        ledger=Ledger(journal),
        wrap=TimedProcessor,
    )
    metrics = ApiMetrics()
    idempotency = MemoryIdempotencyStore(settings.idempotency_ttl_s, clock.monotonic)
    desk = PaymentDesk(engine.service, records, idempotency, metrics, clock)
    return Parts(
        settings=settings,
        config=config,
        keys=ApiKeys(config),
        records=records,
        engine=engine,
        desk=desk,
        metrics=metrics,
        clock=clock,
        journal=journal,
        merchants={merchant.merchant_id: merchant for merchant in config.merchants},
    )
