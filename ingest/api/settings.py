"""What one API process is started with: the platform config, the data folder and its limits."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from opentelemetry.sdk.trace.export import SpanExporter

from engine.config import PlatformConfig
from ingest.api.complaint_reads import ComplaintMapper
from ingest.api.reports import ReportRenderer
from ingest.records import Records

#: PRODUCT.md section 4: a payment request body over 64 KiB is refused with 413.
MAX_BODY_BYTES = 64 * 1024
#: A client that has not finished sending its body in this time gets 408.
BODY_TIMEOUT_S = 10.0
#: Idempotency keys are kept at least this long (Stripe keeps them 24 hours).
IDEMPOTENCY_TTL_S = 24 * 3600.0
#: How long shutdown waits for payments in flight to end before giving up on them.
SHUTDOWN_GRACE_S = 30.0
#: How long a stop waits for the log stream to take the lines still buffered (its reader may
#: have stopped reading): past it they are dropped and counted.
LOG_CLOSE_S = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``create_app`` needs; nothing is read from the environment at import."""

    config: PlatformConfig
    data_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    environment: str = "development"
    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout_s: float = BODY_TIMEOUT_S
    idempotency_ttl_s: float = IDEMPOTENCY_TTL_S
    #: The durable store holds a key whole in memory this long, then as a mark in a Bloom filter
    #: (a repeat is then looked up in the database): see ingest.store.idempotency. ``None``: the
    #: config's ``store.idempotency_hot_s``.
    idempotency_hot_s: float | None = None
    shutdown_grace_s: float = SHUTDOWN_GRACE_S
    log_close_s: float = LOG_CLOSE_S
    #: The path prefix a reverse proxy serves the API under and strips (``/payorch``; ``""``: the
    #: host's root), which the links the API gives name: problem ``type`` URIs and their pages.
    root_path: str = ""
    #: Keep the simulated processors' books in ``data_dir/simulated-ledger.jsonl`` (tests and
    #: crash checks read it from outside the process).
    ledger_journal: bool = True
    #: ``gc.set_threshold`` for the serving process (measured in bench_api).
    gc_thresholds: tuple[int, int, int] = (5_000, 20, 20)
    #: Where events, results and complaints go; ``None``: ``data_dir/payorch.duckdb`` when
    #: ``durable``, else this process's memory (``MemoryRecords``).
    records: Records | None = field(default=None, repr=False)
    #: Keep events, results, idempotency keys and complaints in ``data_dir/payorch.duckdb``.
    durable: bool = True
    #: DuckDB's worker threads for the service's database (see ingest.store.writer).
    store_threads: int = 1
    #: Spans, the metrics fed by events and violations, and JSON log lines (ingest.observe). Off:
    #: only the API's own counters remain (what bench_observe compares against).
    telemetry: bool = True
    #: JSON log lines are written here; ``None``: none are (``payorch serve`` passes stderr).
    log_stream: IO[bytes] | None = field(default=None, repr=False)
    #: Where spans go; ``None``: OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    #: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is in ``environ``, else nowhere (spans still give
    #: log lines their trace ids).
    span_exporter: SpanExporter | None = field(default=None, repr=False)
    #: Spans and log lines each wait in a buffer this long at most; past it the oldest are dropped.
    telemetry_capacity: int = 8192
    #: The span buffer's own size, when it should differ (``None``: ``telemetry_capacity``).
    span_capacity: int | None = None
    #: How often drops are recorded as an ``observer/dropped`` violation (when there were any).
    drop_report_interval_s: float = 1.0
    #: Renders ``GET /v1/reports/retrospective`` (``ingest.api.reports``); ``payorch serve`` passes
    #: the analytics one. ``None``: that route answers 503.
    report_renderer: ReportRenderer | None = field(default=None, repr=False)
    #: Maps a complaint read back (``GET /v1/complaints/{id}``) to its contract
    #: (``ingest.api.complaint_reads``); ``payorch serve`` passes the analytics one. ``None``: the
    #: mapping is shown as ``null``.
    complaint_mapper: ComplaintMapper | None = field(default=None, repr=False)
    #: At most this many admin reads of a time window at once (the analytics tables and the
    #: retrospective: ``ingest.api.admin_reads``); ``None``: the config's ``store.admin_reads``,
    #: else half the cores, at least one.
    admin_reads: int | None = None
    #: A streamed admin read is cut short when its client takes none of it this long, or has not
    #: taken it all this long after it began (``ingest.api.admin_reads.Pace``); ``None``: the
    #: config's ``store.admin_read_idle_s`` and ``store.admin_read_max_s``.
    admin_read_idle_s: float | None = None
    admin_read_max_s: float | None = None
    #: The name this service goes by in its data folder's ``owners`` (``ingest.store.ownership``),
    #: for a host whose name changes at every start; ``None``: the host name.
    instance_name: str | None = None
    #: The instance whose folder this start takes over, interrupted payments and all: the operator's
    #: word that that service is gone (``payorch serve --take-over``); ``None``: none.
    take_over: str | None = None
    #: The host's name as the folder's ``owners`` record it; ``None``: the system's.
    host_name: str | None = None
