"""The service's Prometheus metrics (PRODUCT.md section 8), in a registry of the app's own.

Labels never carry merchant, request or payment ids, nor free text: a validation issue's field
is reduced to its canonical top-level name (``metadata.note`` counts as ``metadata``).
``payorch_validation_issues_total{intake}`` (beyond section 8's ``{field,code}``) is ``payment`` for
a payment body's issues and ``complaint`` for the corrections made to a filed complaint.

Beyond section 8: ``payorch_payment_latency_seconds{status}`` (a payment from request to answer),
``payorch_observer_dropped_total{signal}`` (telemetry dropped: a full buffer, a failed export),
``payorch_http_responses_total{method,route,code}`` (every answer, by route template), and
what crash recovery did at start (``payorch_recovery_payments_total{outcome}``,
``payorch_recovery_attempts_settled_total``), and each processor's circuit breaker
(``payorch_circuit_state{processor}``: 0 closed, 1 half-open, 2 open), set when the circuit
changes (the metrics are the engine's :class:`~engine.circuit_breaker.CircuitWatcher`).
The payment latency histogram has a bucket on merchants' latency objectives, the step latency one
on their attempt timeouts, so "answered within the objective" is a bucket count, not an
interpolation: :data:`MAX_ADDED` each at most, the values the most merchants set, so that a config
of many merchants cannot multiply the series (:func:`buckets_with`).

Several worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts),
prometheus_client keeps every process's values in that directory and ``GET /metrics`` of any
worker sums them (``MultiProcessCollector``). A callback's value is seen by its own process only:
the events written and the queue depth are then set by each commit of the writer instead
(:meth:`ApiMetrics.committed`), and the telemetry each process dropped is added to a shared counter
by :meth:`ApiMetrics.publish_drops` (once a second, at the stop and before each scrape). ``payorch
serve`` runs one process (DuckDB takes one writer): each worker has a data folder of its own. A
start with no other worker alive empties the directory first (:func:`start_multiprocess_values`), as a process
manager does before it starts its workers: the files of an earlier run would otherwise be summed
into the new run's counts. A worker started while another runs keeps every file but the live
gauges of stopped workers: removing the others' files lost their counts for good (a live process
keeps writing to a file once unlinked), and a restarted worker's earlier counts stay in the sums,
which never go down. Values files are named by pid and pid namespace (:func:`start_multiprocess_values`):
workers in containers sharing the directory are each pid 1. Whether another namespace's worker
runs is told by its heartbeat (:func:`heartbeat`), not its pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from threading import get_ident
from typing import NamedTuple, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from engine.circuit_breaker import CircuitState
from engine.contracts import ContractViolation
from engine.validation import ValidationIssue
from ingest.api.complaint_fields import FIELDS as COMPLAINT_FIELDS

_K = TypeVar("_K", bound=tuple[object, ...])  # a cache's key of label values

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The methods a label or a span name shows as they are; any other token is one bucket.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FIELDS = frozenset({"body", "merchant_id", "amount", "currency", "method", "metadata", "idempotency_key"})
#: What ``payorch_validation_issues_total{intake}`` tells apart, with the fields each labels as
#: they are (any other is ``other``): a payment's body (PRODUCT.md section 5) and a complaint's
#: (section 9), whose corrections ``ingest.api.complaint_fields`` makes.
INTAKE_FIELDS: Mapping[str, frozenset[str]] = {
    "payment": _FIELDS,
    "complaint": frozenset(COMPLAINT_FIELDS),
}
#: Seconds; the merchants' latency objectives are added to these for the payment latency, their
#: timeouts for the step latency, :data:`MAX_ADDED` at most each.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The buckets a histogram adds for the configuration's thresholds, at most. Each bucket is one more
#: series for each label value (and one more value in every worker's file): a config of 1,000
#: merchants, each with its own objective and timeout, made 1,870 buckets, 13,090 series for four
#: statuses and three processors, a scrape of 988 KB rendered in 142 ms.
MAX_ADDED = 10
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds: a worker of another host or container whose live gauges' files were touched longer
#: ago is taken for dead (a running one touches them every second; hosts' clocks may differ).
STALE_S = 30.0
#: Hex digits of the pid namespace's digest in a values file's name (:func:`own_identity`).
TAG_LENGTH = 12
#: This process's ``tag``, once start_multiprocess_values named its files (the value class is
#: prometheus_client's, one for the process).
_named: dict[str, str] = {}
#: ``payorch_circuit_state``'s values: the worse the circuit, the higher.
CIRCUIT_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
EVENTS_WRITTEN = "Domain events stored (committed to the database, when durable)."
DROPPED = "Telemetry dropped because a buffer was full or its exporter failed, by signal."


def pid_namespace(proc: Path = Path("/proc")) -> str:
    """This process's pid namespace, the same for every process whose pids this one can check and
    different on every other host or container: its kernel's boot id (random at each boot) and the
    namespace's inode. Without ``/proc`` (macOS), the host's name."""
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}/{os.readlink(proc / 'self/ns/pid')}"
    except (OSError, UnicodeDecodeError):
        return socket.gethostname()


def start_multiprocess_values(environ: Mapping[str, str], *, namespace: str | None = None) -> None:
    """Before the service builds its metrics, in ``PROMETHEUS_MULTIPROC_DIR`` if it is set: this
    process's values files are named by its pid and its pid ``namespace`` (default:
    :func:`pid_namespace`), not its pid alone; then, when no other process that wrote values files
    (``*.db``) there is alive, a new run begins and those files are removed; else only the live
    gauges of the processes no longer alive (this one's name included: an earlier process's) are.
    Nothing else in it is touched."""
    directory = environ.get(MULTIPROCESS_ENV)
    if not directory:
        return
    _name_values_files(pid_namespace() if namespace is None else namespace)
    files = list(Path(directory).glob("*.db"))
    own = own_identity()
    writers = {writer for writer in map(_writer, files) if writer is not None and writer != own}
    alive = {writer for writer in writers if _alive(writer, Path(directory))}
    if not alive:
        for values in files:
            values.unlink(missing_ok=True)
        return
    for writer in (writers - alive) | {own}:
        mark_process_dead(writer, directory)  # type: ignore[no-untyped-call]


def _name_values_files(namespace: str) -> None:
    """From now on, the metrics built name their values files ``<pid>-<tag>``, the tag a digest of
    ``namespace``: two containers sharing the directory on a volume both ran payorch as pid 1, and
    each wrote its counts over the other's in ``counter_1.db``. prometheus_client takes the name
    from its value class, one for the process: this one reads the pid at each write (a forked
    child names its own), and keeps to the directory and mode in force when a value is made (a
    process that serves again, as tests do, may have another, or none)."""
    tag = hashlib.sha256(namespace.encode()).hexdigest()[:TAG_LENGTH]
    if tag == _named.get("tag"):
        return
    _named["tag"] = tag
    by_directory: dict[str, Callable[..., object]] = {}

    def value(*args: object, **kwargs: object) -> object:
        directory = os.environ.get(MULTIPROCESS_ENV)
        if not directory:
            return values.MutexValue(*args, **kwargs)  # type: ignore[no-untyped-call]
        made = by_directory.get(directory)
        if made is None:
            made = by_directory[directory] = values.MultiProcessValue(  # type: ignore[no-untyped-call]
                lambda: f"{os.getpid()}-{tag}"
            )
        return made(*args, **kwargs)

    values.ValueClass = value


def own_identity() -> str:
    """The name this process's values files carry (its pid alone before
    :func:`start_multiprocess_values`, as prometheus_client names them)."""
    tag = _named.get("tag")
    return str(os.getpid()) if tag is None else f"{os.getpid()}-{tag}"


def _alive(writer: str, directory: Path) -> bool:
    """Whether the process that wrote values files as ``writer`` still runs. In this process's pid
    namespace (or named by a pid alone, as an earlier payorch did) its pid says; on another host or
    container its pid means nothing here, and it is alive while it touches its live gauges'
    files (:func:`heartbeat`), :data:`STALE_S` at most ago."""
    pid, _, tag = writer.partition("-")
    if not tag or tag == _named.get("tag"):
        return _running(int(pid))
    try:
        touched = (directory / f"gauge_livesum_{writer}.db").stat().st_mtime
    except OSError:
        return False  # it marked itself dead when it stopped
    return time.time() - touched < STALE_S


def heartbeat(directory: str) -> None:
    """This process's live gauges' files are touched: other hosts' workers see it runs."""
    for values_file in Path(directory).glob(f"gauge_live*_{own_identity()}.db"):
        with contextlib.suppress(OSError):
            os.utime(values_file)


def _forget_stopped_gauges(directory: str) -> None:
    """The live gauges of a worker no longer alive leave the sums: one that was killed never marked
    itself dead, and its circuits read open in every other worker's answer until the next run."""
    for values_file in Path(directory).glob("gauge_live*.db"):
        writer = _writer(values_file)
        if writer is not None and writer != own_identity() and not _alive(writer, Path(directory)):
            values_file.unlink(missing_ok=True)


def _writer(values_file: Path) -> str | None:
    """The writer's name in a values file's name (``counter_1234-0a1b2c3d4e5f.db``,
    ``gauge_livesum_1234.db``): a pid, and the tag of its pid namespace."""
    writer = values_file.stem.rpartition("_")[2]
    pid, _, tag = writer.partition("-")
    return writer if pid.isdigit() and (not tag or tag.isalnum()) else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def end_multiprocess_values(environ: Mapping[str, str]) -> None:
    """When the service stops: its live gauges (the queue depth) stop counting in other
    processes' sums."""
    directory = environ.get(MULTIPROCESS_ENV)
    if directory:
        mark_process_dead(own_identity(), directory)  # type: ignore[no-untyped-call]


class Buckets(NamedTuple):
    """A histogram's buckets, and how many of the thresholds asked for got none (:data:`MAX_ADDED`)."""

    bounds: tuple[float, ...]
    left_out: int


def buckets_with(thresholds_s: Iterable[float], limit: int = MAX_ADDED) -> Buckets:
    """The default buckets plus one at each threshold (seconds), ``limit`` of them at most: those
    the most merchants set (each threshold is one merchant's), the smaller first among equals."""
    merchants = Tally(round(t, 6) for t in thresholds_s if t > 0)
    for default in DEFAULT_BUCKETS:
        merchants.pop(default, None)  # already a bucket
    ranked = sorted(merchants, key=lambda threshold: (-merchants[threshold], threshold))
    return Buckets(tuple(sorted({*DEFAULT_BUCKETS, *ranked[:limit]})), max(len(ranked) - limit, 0))


def _left_out_warning(timeouts: int, objectives: int) -> str | None:
    """The start's WARNING line when thresholds of the config got no bucket, else ``None``."""
    parts = [
        f"{metric} has none at {count} {field} value{'s' if count != 1 else ''}"
        for count, field, metric in (
            (timeouts, "timeout_ms", "payorch_step_latency_seconds"),
            (objectives, "latency_slo_ms", "payorch_payment_latency_seconds"),
        )
        if count
    ]
    if not parts:
        return None
    return (
        f"metrics: a latency histogram adds {MAX_ADDED} buckets at most for the merchants' values, those "
        f"the most merchants set, so {' and '.join(parts)}; they are counted in the buckets around "
        "them (payment/latency-slo violations are still recorded)"
    )


class _Callbacks(Collector):
    """Counters whose values live elsewhere (the writer, the telemetry drains), read at scrape."""

    def __init__(self, *, shared: bool) -> None:
        self.events_written: Callable[[], int] = lambda: 0
        self.dropped: Callable[[], dict[str, int]] = dict
        self._shared = shared  # several workers: both are counters of the files

    def collect(self) -> Iterator[Metric]:
        if self._shared:
            return
        written = CounterMetricFamily("payorch_events_written", EVENTS_WRITTEN)
        written.add_metric([], self.events_written())
        yield written
        dropped = CounterMetricFamily("payorch_observer_dropped", DROPPED, labels=["signal"])
        for signal, count in sorted(self.dropped().items()):
            dropped.add_metric([signal], count)
        yield dropped


class _WithoutCreated(Collector):
    """A registry's metrics without the ``<name>_created`` series of its counters and histograms
    (each child's first count's time). They were one more series for each labelled child (47 of
    the 213 a scrape of the sample config carried after 300 mixed payments; 21.7 KB, now
    15.3 KB), read by no dashboard
    or alert of PRODUCT.md section 8, and never in several workers' scrapes, whose files hold
    none. prometheus_client's switch for them (``disable_created_metrics``) is the process's:
    this one is the service's registry's only."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            if family.type in ("counter", "histogram", "summary"):
                family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
            yield family


class _Count:
    """A labelled counter's child, and what its owning thread counted in a plain int: ``count``
    is written by that thread alone, ``folded`` (how much of it the child holds) under the lock of
    :meth:`ApiMetrics.fold` only."""

    __slots__ = ("child", "count", "folded")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.count = 0
        self.folded = 0


class _Spread:
    """A histogram child's observations kept as prometheus_client counts them: one count in the
    first bucket whose bound holds the value (found by bisection, not a loop over every bound), and
    the sum made by the same additions in the same order, so that it is the same float. They are
    folded into the child's own values (``_buckets``, ``_sum``: prometheus_client, pinned, has no
    call that adds n to one bucket); tests/ingest/api/test_metrics_owned.py compares the scrape.
    """

    __slots__ = ("bounds", "child", "counts", "folded", "foreign", "sum")

    def __init__(self, child: Histogram, bounds: tuple[float, ...]) -> None:
        self.child = child
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.folded = [0] * len(bounds)
        self.sum = 0.0  # the child's sum when made, and the owning thread's additions
        self.foreign = 0.0  # the other threads' (under the fold's lock), in the child already

    def observe(self, amount: float) -> None:
        bounds = self.bounds
        at = bisect_left(bounds, amount)
        if amount <= bounds[at]:  # the last bound is +Inf; NaN lands in no bucket, as in the library
            self.counts[at] += 1
        self.sum += amount


class _Folding(CollectorRegistry):
    """The service's registry: what is counted in plain ints is folded into the metrics before
    anything reads them (a scrape, ``get_sample_value``)."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.before_collect: Callable[[], None] = lambda: None

    def collect(self) -> Iterable[Metric]:
        self.before_collect()
        return super().collect()


class ApiMetrics:
    """Every metric of the service. ``count_*`` and ``observe_*`` are called on the payment path:
    labelled children are cached (``labels()`` takes a lock and builds a key every call).

    In one process, the thread of the event loop that serves (:meth:`own`, from the app's start
    to its stop) counts in plain ints, folded into prometheus_client's children whenever the
    registry is read (:meth:`fold`): an increment of the library takes a lock, and twelve a
    payment were 6 % of its instructions. A scrape still shows every count made before it. Any
    other thread, and every process of several workers (whose counts other workers read from the
    files at any time), counts in the children directly."""

    def __init__(self, *, timeouts_s: Iterable[float] = (), objectives_s: Iterable[float] = ()) -> None:
        """``timeouts_s`` are the merchants' attempt timeouts and ``objectives_s`` their latency
        objectives (seconds, one each per merchant): each gets a bucket of the histogram it bounds,
        the step latency and the payment latency, as :func:`buckets_with` chooses."""
        self.registry = _Folding()
        step_buckets, payment_buckets = buckets_with(timeouts_s), buckets_with(objectives_s)
        #: What start says when thresholds got no bucket of their own (``None``: every one did).
        self.log_warning = _left_out_warning(step_buckets.left_out, payment_buckets.left_out)
        registry = self.registry
        self.payments = Counter(
            "payorch_payments_total",
            "Payment requests by outcome (succeeded, partially_succeeded, failed, rejected, error: a 500).",
            ["status"],
            registry=registry,
        )
        self.validation_issues = Counter(
            "payorch_validation_issues_total",
            "Corrections and refusals of the permissive parser, by field and code, of a payment's "
            "body or a complaint's (intake).",
            ["field", "code", "intake"],
            registry=registry,
        )
        self.replays = Counter(
            "payorch_idempotent_replays_total",
            "Requests answered with a stored response for a repeated idempotency key.",
            registry=registry,
        )
        self.attempts = Counter(
            "payorch_processor_attempts_total",
            "Charge attempts sent to a processor, by outcome (succeeded or the attempt's error code).",
            ["processor", "method", "outcome"],
            registry=registry,
        )
        self.step_latency = Histogram(
            "payorch_step_latency_seconds",
            "Time a processor took to answer a charge attempt.",
            ["processor"],
            buckets=step_buckets.bounds,
            registry=registry,
        )
        self.payment_latency = Histogram(
            "payorch_payment_latency_seconds",
            "Time from a payment's request to its answer, by outcome.",
            ["status"],
            buckets=payment_buckets.bounds,
            registry=registry,
        )
        self.violations = Counter(
            "payorch_contract_violations_total",
            "Contract violations recorded, by contract and severity.",
            ["contract_id", "severity"],
            registry=registry,
        )
        self.compensations = Counter(
            "payorch_compensations_total",
            "Voids and refunds of charged steps, by outcome (succeeded or the error code).",
            ["processor", "outcome"],
            registry=registry,
        )
        self.recovered = Counter(
            "payorch_recovery_payments_total",
            "Payments a crash cut short, found at start: finished, or left for the next start.",
            ["outcome"],
            registry=registry,
        )
        self.recovery_settled = Counter(
            "payorch_recovery_attempts_settled_total",
            "Attempts of interrupted payments settled with their processors at start.",
            registry=registry,
        )
        self.responses = Counter(
            "payorch_http_responses_total",
            "HTTP responses by method, route template (unmatched: no route) and status code.",
            ["method", "route", "code"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "payorch_event_queue_depth",
            "Writes waiting for the store's writer thread.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.circuit_state = Gauge(
            "payorch_circuit_state",
            "Each processor's circuit breaker: 0 closed, 1 half-open (a probe may go), 2 open (skipped).",
            ["processor"],
            registry=registry,
            multiprocess_mode="livemax",  # several workers: the worst of their circuits
        )
        #: Several workers (``PROMETHEUS_MULTIPROC_DIR``): the writer's commits set what callbacks
        #: would read (:meth:`committed`).
        self.shared = bool(os.environ.get(MULTIPROCESS_ENV))
        self._events_written = (
            Counter("payorch_events_written", EVENTS_WRITTEN, registry=registry) if self.shared else None
        )
        self._dropped = (
            Counter("payorch_observer_dropped", DROPPED, ["signal"], registry=registry)
            if self.shared
            else None
        )
        self._dropped_published: dict[str, int] = {}  # this process's drops in the shared counter
        self._publishing = threading.Lock()  # a scrape's thread and the drop watcher's task
        self.callbacks = _Callbacks(shared=self.shared)
        registry.register(self.callbacks)
        # The process itself (memory, CPU, open files, start time, the runtime), as a Prometheus
        # client's default registry shows it: the app's own registry showed none, and the usual
        # memory, file-descriptor and restart alerts found nothing. The collectors read at scrape
        # only. Several workers answer the sums of their files, which hold none of this.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        self._children: dict[tuple[object, ...], _Count] = {}
        self._histograms: dict[tuple[object, ...], _Spread] = {}
        self._issues: dict[tuple[str, str, str], _Count] = {}  # several per payment: a dict of its own
        self._responses: dict[tuple[str, str | None, int | None], _Count] = {}
        # The payment path's own, by label values alone (two threads asking at once store the
        # same cells: those above are made once).
        self._payment_counts: dict[str, _Count] = {}
        self._payment_spreads: dict[str, _Spread] = {}
        self._attempted: dict[tuple[str, str, str], tuple[_Count, _Spread]] = {}
        self._counts: list[_Count] = []  # every one of the above, for the fold
        self._spreads: list[_Spread] = []
        self._owner: int | None = None  # the thread that counts in ints (:meth:`own`)
        self._folding = threading.Lock()
        registry.before_collect = self.fold

    # -- wiring ------------------------------------------------------------------------------------

    def watch(
        self,
        *,
        queue_depth: Callable[[], float] | None = None,
        events_written: Callable[[], int] | None = None,
        dropped: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """Where the callback metrics read their values (the queue depth: in one process only)."""
        if queue_depth is not None and not self.shared:
            self.queue_depth.set_function(queue_depth)
        if events_written is not None:
            self.callbacks.events_written = events_written
        if dropped is not None:
            self.callbacks.dropped = dropped
            self.publish_drops()  # several workers: each signal shows, 0 until something drops

    def watch_circuits(self, processors: Iterable[str]) -> None:
        """Show ``processors``' circuits closed (as they start) until they change."""
        for processor in processors:
            self.circuit_state.labels(processor).set(CIRCUIT_VALUES[CircuitState.CLOSED])

    def committed(self, events: int, depth: int) -> None:
        """Several workers: a commit of the writer's stored ``events`` events and left ``depth``
        writes waiting (from the writer thread; when it is idle, the last commit left none)."""
        if self._events_written is not None:
            self._events_written.inc(events)
        self.queue_depth.set(depth)

    def publish_drops(self) -> None:
        """Several workers: what this process dropped since the last call is added to the shared
        ``payorch_observer_dropped_total``, which any worker's scrape then sums (its callback
        answered the scraped worker's own drops only)."""
        if self._dropped is None:
            return
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory:
            heartbeat(directory)  # once a second: other hosts' workers see this one runs
        with self._publishing:
            for signal, count in self.callbacks.dropped().items():
                fresh = count - self._dropped_published.get(signal, 0)
                self._dropped_published[signal] = count
                self._dropped.labels(signal).inc(max(fresh, 0))

    # -- the payment path --------------------------------------------------------------------------

    def circuit_changed(self, processor_id: str, state: CircuitState) -> None:
        """A processor's circuit changed (:class:`~engine.circuit_breaker.CircuitWatcher`): only on
        a change, so a healthy processor's attempts never come here."""
        self.circuit_state.labels(processor_id).set(CIRCUIT_VALUES[state])

    # -- counting in ints ----------------------------------------------------------------------

    def own(self) -> None:
        """From now on this thread (the event loop's, as the app starts) counts in ints. Several
        workers keep counting in the files: another worker's scrape reads them at any time."""
        if self.shared:
            return
        with self._folding:
            self._fold()
            for spread in self._spreads:
                spread.sum, spread.foreign = spread.child._sum.get(), 0.0
            self._owner = get_ident()

    def disown(self) -> None:
        """The app stopped: what its thread counted goes into the metrics, and counting is direct."""
        with self._folding:
            self._fold()
            self._owner = None

    def fold(self) -> None:
        """Put what the owning thread counted into prometheus_client's children (before a read)."""
        with self._folding:
            self._fold()

    def _fold(self) -> None:
        if self.shared:
            return  # never owned: every count went into the files
        for count in tuple(self._counts):
            counted = count.count
            if counted != count.folded:
                count.child.inc(counted - count.folded)
                count.folded = counted
        for spread in tuple(self._spreads):
            child = spread.child
            folded = spread.folded
            for at, counted in enumerate(spread.counts):
                if counted != folded[at]:
                    child._buckets[at].inc(counted - folded[at])
                    folded[at] = counted
            child._sum.set(spread.sum + spread.foreign)

    def _count(self, count: _Count) -> None:
        if get_ident() == self._owner:
            count.count += 1
        else:
            count.child.inc()

    def _new_count(self, cache: dict[_K, _Count], key: _K, child: Counter) -> _Count:
        made = _Count(child)
        count = cache.setdefault(key, made)  # one for every thread that asks at once
        if count is made:
            self._counts.append(made)
        return count

    def _child(self, metric: Counter, *labels: str) -> _Count:
        key = (metric, *labels)
        count = self._children.get(key)
        if count is None:
            count = self._new_count(self._children, key, metric.labels(*labels))
        return count

    def _histogram(self, metric: Histogram, label: str) -> _Spread:
        key = (metric, label)
        spread = self._histograms.get(key)
        if spread is None:
            child = metric.labels(label)
            made = _Spread(child, tuple(child._upper_bounds))
            made.sum = child._sum.get()
            spread = self._histograms.setdefault(key, made)
            if spread is made:
                self._spreads.append(made)
        return spread

    def _observe_elsewhere(self, spread: _Spread, amount: float) -> None:
        """An observation of a thread that does not own the metrics (or of a worker)."""
        if self.shared:
            spread.child.observe(amount)
        else:  # the owner's sum is the spread's: another thread's observations are added to it
            with self._folding:
                spread.foreign += amount
                spread.child.observe(amount)

    def count_response(self, method: str, route: str | None, status: int | None) -> None:
        """One HTTP response; ``route`` is the matched route's template (``None``: no route
        matched), ``status`` ``None`` when none was sent. Labels stay bounded: an unknown method
        is ``other``, a path that matched no route ``unmatched``."""
        if method not in HTTP_METHODS:
            method = "other"  # before the cache too: any token is a method to HTTP
        key = (method, route, status)
        count = self._responses.get(key)
        if count is None:
            labels = (method, route or "unmatched", "none" if status is None else str(status))
            count = self._new_count(self._responses, key, self.responses.labels(*labels))
        if get_ident() == self._owner:
            count.count += 1
        else:
            count.child.inc()

    def count_payment(self, status: str) -> None:
        count = self._payment_counts.get(status)
        if count is None:
            count = self._payment_counts[status] = self._child(self.payments, status)
        if get_ident() == self._owner:
            count.count += 1
        else:
            count.child.inc()

    def count_issues(self, issues: Iterable[ValidationIssue], intake: str = "payment") -> None:
        """Count ``issues`` of a payment's body or (``intake="complaint"``) a complaint's."""
        counts = self._issues
        fields = INTAKE_FIELDS[intake]
        owned = get_ident() == self._owner
        for issue in issues:
            top = issue.field.partition(".")[0]
            labels = (top if top in fields else "other", issue.code, intake)  # bounded: no free text
            count = counts.get(labels)
            if count is None:
                count = self._new_count(counts, labels, self.validation_issues.labels(*labels))
            if owned:
                count.count += 1
            else:
                count.child.inc()

    def count_attempt(self, processor: str, method: str, outcome: str, latency_s: float) -> None:
        """One charge sent, counted and its latency observed: one look-up finds both."""
        key = (processor, method, outcome)
        fed = self._attempted.get(key)
        if fed is None:
            fed = self._attempted[key] = (
                self._child(self.attempts, processor, method, outcome),
                self._histogram(self.step_latency, processor),
            )
        count, spread = fed
        if get_ident() == self._owner:
            count.count += 1
            spread.observe(latency_s)
        else:
            count.child.inc()
            self._observe_elsewhere(spread, latency_s)

    def count_violation(self, violation: ContractViolation) -> None:
        self._count(self._child(self.violations, violation.contract_id, violation.severity.value))

    def count_compensation(self, processor: str, outcome: str) -> None:
        self._count(self._child(self.compensations, processor, outcome))

    def observe_payment(self, status: str, seconds: float) -> None:
        spread = self._payment_spreads.get(status)
        if spread is None:
            spread = self._payment_spreads[status] = self._histogram(self.payment_latency, status)
        if get_ident() == self._owner:
            spread.observe(seconds)
        else:
            self._observe_elsewhere(spread, seconds)

    def count_recovery(self, finished: int, left: int, settled_attempts: int) -> None:
        self.recovered.labels("finished").inc(finished)
        self.recovered.labels("left").inc(left)
        self.recovery_settled.inc(settled_attempts)

    def render(self) -> bytes:
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory:
            _forget_stopped_gauges(directory)
            self.publish_drops()  # the answering worker's own are up to date
            summed = CollectorRegistry()
            MultiProcessCollector(summed)  # type: ignore[no-untyped-call]
            return generate_latest(summed)
        return generate_latest(_WithoutCreated(self.registry))
