"""What one API process is made of, built once from its settings: the records, the engine with its
processors, the idempotency store, the metrics and the payment desk."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExporter

from engine.circuit_breaker import BreakerPolicy
from engine.config import MerchantConfig, PlatformConfig
from engine.ledger import Ledger
from engine.monitor import ContractMonitor
from engine.observer import NULL_OBSERVER
from engine.policy import PaymentPolicyEnforcer
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from ingest.api.admin_reads import AdminReadGate, Pace, default_limit
from ingest.api.auth import ApiKeys
from ingest.api.idempotency import (
    IdempotencyStore,
    KeyKeeper,
    MemoryIdempotencyStore,
    load_or_create_secret,
    process_secret,
)
from ingest.api.metrics import ApiMetrics
from ingest.api.payments import PaymentDesk
from ingest.api.settings import Settings
from ingest.engine_assembly import Engine, breaker_policies, build_engine, check_processor_keys
from ingest.errors import IngestError
from ingest.ledger_journal import FILE_NAME, FileLedgerJournal, restore_ledger
from ingest.observe.circuits import CircuitReporter
from ingest.observe.spans import sampling
from ingest.observe.telemetry import GlobalTags, ObservedRecords, Telemetry
from ingest.private_files import make_private_folder
from ingest.records import MemoryRecords, Records, RecordsHistory
from ingest.store.idempotency import DurableIdempotencyStore
from ingest.store.memory import memory_limit
from ingest.store.records import DuckDBRecords
from ingest.store.schema import FILE_NAME as DATABASE_FILE
from ingest.store.writer import Writer

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_DISABLED_ENV = "OTEL_SDK_DISABLED"
TRACES_EXPORTER_ENV = "OTEL_TRACES_EXPORTER"  # "otlp" (the default) or "none"
PROTOCOL_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
SPOKEN_PROTOCOL = "http/protobuf"


@dataclass(frozen=True, slots=True)
class Shutdown:
    """How the app's stop went: payments drained (in flight when it began and ended in time),
    payments left in flight after the grace period, and whether every queued write was committed."""

    drained: int
    left: int
    committed: bool
    #: Why the disk stopped the store (``ingest.store.writer.Writer.failure``), if it did.
    store_failure: str | None = None

    @property
    def complete(self) -> bool:
        return self.left == 0 and self.committed


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
    idempotency: IdempotencyStore
    writer: Writer | None = None
    telemetry: Telemetry | None = None
    #: Records violations found outside the engine, and reports on a window of them.
    monitor: ContractMonitor | None = None
    #: What crash recovery found and did at start (``ingest.store.recovery.RecoveryReport``).
    recovery: object | None = None
    draining: bool = False
    #: Why the app could not start (one line: crash recovery could not read or write the
    #: database); ``None`` once started, or before.
    start_failure: str | None = None
    #: Set once the app has stopped (``ingest.api.lifespan.stop``); ``None`` while it runs, or
    #: when the server was forced down without stopping it.
    shutdown: Shutdown | None = None
    #: The places for admin reads of a time window (``ingest.api.admin_reads``).
    admin_reads: AdminReadGate = field(default_factory=lambda: AdminReadGate(default_limit()))


def build_parts(settings: Settings) -> Parts:
    """Wire the process; raises a DomainError or IngestError for a config it cannot run."""
    config = settings.config
    # What the config and the environment can refuse, before the data folder is touched.
    check_processor_keys(config, settings.environ)
    clock = SystemClock()
    writer: Writer | None = None
    telemetry: Telemetry | None = None
    idempotency: IdempotencyStore
    records: Records
    if settings.records is not None:
        records = settings.records
        idempotency = MemoryIdempotencyStore(settings.idempotency_ttl_s, clock.monotonic)
        keeper = KeyKeeper(process_secret())
    elif settings.durable:
        make_private_folder(settings.data_dir)
        # Keys kept in the database must be kept the same way after a restart: the data folder's
        # secret then. Read before the database is opened: a start refused for it migrates nothing.
        keeper = KeyKeeper(load_or_create_secret(settings.data_dir))
        writer = Writer(
            settings.data_dir / DATABASE_FILE,
            max_rows=config.store.max_rows,
            max_wait_ms=config.store.max_wait_ms,
            admit_limit=config.store.admit_limit,
            fair_share_percent=config.store.fair_share_percent,
            memory_limit=memory_limit(config.store),
            threads=settings.store_threads,
        )
        hot_s = settings.idempotency_hot_s
        try:
            records = DuckDBRecords(writer)
            idempotency = DurableIdempotencyStore(
                writer,
                settings.idempotency_ttl_s,
                clock.monotonic,
                hot_s=config.store.idempotency_hot_s if hot_s is None else hot_s,
                keep=lambda key: keeper.kept(key)[0],
            )
        except duckdb.Error as error:  # a damaged block of a table read at start
            writer.close()
            raise IngestError(f"cannot use the database {writer.path}: {error}") from None
    else:
        records = MemoryRecords()
        idempotency = MemoryIdempotencyStore(settings.idempotency_ttl_s, clock.monotonic)
        keeper = KeyKeeper(process_secret())  # keys kept in memory: a secret of the process's own
    journal = FileLedgerJournal(settings.data_dir / FILE_NAME) if settings.ledger_journal else None
    ledger = Ledger(journal)
    if journal is not None:
        # Its disk is the data folder's: a write it refuses stops the store, as a refused commit.
        journal.on_failure = writer.refuse if writer is not None else _journal_failed
        # The simulated processors' books outlive the process, as a real processor's would.
        restore_ledger(journal.path, ledger)
    metrics = _metrics(config)
    if writer is not None:
        store = writer
        metrics.watch(
            queue_depth=lambda: store.depth, events_written=lambda: store.rows_by_table.get("events", 0)
        )
        if metrics.shared:
            writer.on_commit = lambda written: metrics.committed(written.get("events", 0), store.depth)
    elif isinstance(records, MemoryRecords):
        memory = records
        metrics.watch(events_written=lambda: memory.events_written)
    if settings.telemetry:
        telemetry = _telemetry(settings, metrics)
        records = ObservedRecords(records, telemetry)
    # The figures of each processor's breaker, as the breakers have them (build_engine).
    circuits = CircuitReporter(metrics, BreakerPolicy(), breaker_policies(config))
    engine = build_engine(
        config,
        sink=records,
        clock=clock,
        sleeper=AsyncioSleeper(),
        random=SeededRandom(secrets.randbits(64)),
        environ=settings.environ,
        ledger=ledger,
        observer=telemetry or NULL_OBSERVER,
        circuits=circuits,
        merchant_circuits=circuits,
    )
    metrics.watch_circuits(engine.processors)
    policy = PaymentPolicyEnforcer(config, engine.amount_checks)
    desk = PaymentDesk(
        engine.service, records, idempotency, metrics, clock, keeper, policy, root_path=settings.root_path
    )
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
        idempotency=idempotency,
        writer=writer,
        telemetry=telemetry,
        monitor=ContractMonitor(records, clock, history=RecordsHistory(records)),
        admin_reads=AdminReadGate(_admin_reads(settings), _pace(settings)),
    )


def _admin_reads(settings: Settings) -> int:
    """The admin reads run at once: the settings' (an embedded app), else the config's, else half
    the cores."""
    for limit in (settings.admin_reads, settings.config.store.admin_reads):
        if limit is not None:
            return limit
    return default_limit()


def _pace(settings: Settings) -> Pace:
    """How slowly a streamed admin read may be taken: the settings', else the config's."""
    store = settings.config.store
    idle_s, max_s = settings.admin_read_idle_s, settings.admin_read_max_s
    return Pace(
        store.admin_read_idle_s if idle_s is None else idle_s,
        store.admin_read_max_s if max_s is None else max_s,
    )


def _telemetry(settings: Settings, metrics: ApiMetrics) -> Telemetry:
    """Spans, event metrics and log lines, with the sampler the environment names. What the
    standard variables ask that cannot be done is said once the app starts."""
    chosen, sampling_problem = sampling(settings.environ)
    exporter = span_exporter(settings)
    telemetry = Telemetry(
        GlobalTags.of(settings.environ, settings.environment),
        metrics,
        exporter=exporter,
        log_stream=settings.log_stream,
        capacity=settings.telemetry_capacity,
        span_capacity=settings.span_capacity,
        sampling=chosen,
    )
    spoken = protocol_problem(settings.environ) if isinstance(exporter, OTLPSpanExporter) else None
    telemetry.log_warnings = tuple(problem for problem in (sampling_problem, spoken) if problem)
    return telemetry


def _journal_failed(failure: str) -> None:
    """Without a store to stop (records in memory), the refused books are only said."""
    logging.getLogger("payorch.store").error("store: %s; the simulated processors keep no books now", failure)


def _metrics(config: PlatformConfig) -> ApiMetrics:
    """The metrics, their histograms with a bucket on the merchants' timeouts and objectives."""
    return ApiMetrics(
        timeouts_s=[merchant.timeout_ms / 1000 for merchant in config.merchants],
        objectives_s=[m.latency_slo_ms / 1000 for m in config.merchants if m.latency_slo_ms is not None],
    )


def protocol_problem(environ: Mapping[str, str]) -> str | None:
    """Why spans cannot go as the standard variables ask, if they cannot: the OTLP exporter speaks
    ``http/protobuf`` only, and a collector of another protocol (gRPC's, on port 4317) refuses every
    export, which was seen only as spans the exporter failed to deliver."""
    for name in PROTOCOL_ENVS:  # the traces-only one first: it wins, as the specification says
        asked = environ.get(name, "").strip().lower()
        if asked == SPOKEN_PROTOCOL:
            return None
        if asked:
            return (
                f"{name}={asked} is not a protocol payorch's span exporter speaks: spans go over OTLP "
                f"{SPOKEN_PROTOCOL}, which a collector of another protocol refuses (dropped, as "
                "observer/dropped says); point the endpoint at the collector's OTLP/HTTP port (4318)"
            )
    return None


def span_exporter(settings: Settings) -> SpanExporter | None:
    """The settings' exporter; else OTLP over HTTP when a standard variable names a collector:
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` or the traces-only ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``."""
    if settings.span_exporter is not None:
        return settings.span_exporter
    environ = settings.environ
    if environ.get(OTEL_DISABLED_ENV, "").strip().lower() == "true":
        return None  # the specification's switch for the whole SDK
    if environ.get(TRACES_EXPORTER_ENV, "").strip().lower() == "none":
        # Traces switched off on their own, as the specification says: an endpoint may be named
        # for the other signals (a sidecar's), and the spans went to it all the same.
        return None
    # The base URL gets the signal's path, as the specification says; the traces-only variable
    # is taken whole, and enough on its own. Headers, timeout and compression come from the
    # standard OTEL_EXPORTER_OTLP_* variables of the process.
    endpoint = environ.get(OTLP_TRACES_ENDPOINT_ENV)
    if not endpoint:
        base = environ.get(OTLP_ENDPOINT_ENV)
        if not base:
            return None
        endpoint = base.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)
