"""What the app does when it starts serving and when it stops: crash recovery first, the
interpreter's tuning, telemetry's helpers; then, at the end, payments in flight drained, the last
drops reported and everything queued committed before the database closes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from dataclasses import dataclass

from engine.monitor import ContractMonitor
from engine.types import RequestId
from ingest.api.parts import Parts, Shutdown
from ingest.api.payments import new_id
from ingest.observe.logs import PipeHandler, attach_log_handler, detach_log_handler
from ingest.store.recovery import recover_interrupted

logger = logging.getLogger("payorch.api")

WRITER_SWITCH_INTERVAL_S = 0.0005


@dataclass(slots=True)
class Running:
    """What ``start`` changed, for ``stop`` to put back or end."""

    thresholds: tuple[int, int, int]
    switch_interval: float
    monitor: ContractMonitor
    watcher: asyncio.Task[None] | None = None
    handler: PipeHandler | None = None


async def start(parts: Parts) -> Running:
    settings = parts.settings
    writer = parts.writer
    if writer is not None and writer.log_warning is not None:
        logger.warning("%s", writer.log_warning)
    for warning in parts.telemetry.log_warnings if parts.telemetry is not None else ():
        logger.warning("%s", warning)
    if parts.metrics.log_warning is not None:
        logger.warning("%s", parts.metrics.log_warning)
    if writer is not None and writer.applied_migrations:
        # An operator upgrading wants to see that the database moved on (and that the release
        # before cannot open it any more). Migration 1 makes the tables: applied now, the
        # database is new, and was created, not upgraded.
        applied = writer.applied_migrations
        if applied[0] == 1:
            logger.info("database %s: created at schema version %d", writer.path, applied[-1])
        else:
            # One release's upgrade applies one migration: "migration 9", not "migrations 9".
            logger.info(
                "database %s: migrated to schema version %d (%s %s applied now)",
                writer.path,
                applied[-1],
                "migrations" if len(applied) > 1 else "migration",
                ", ".join(str(version) for version in applied),
            )
    # The event loop's thread counts in plain ints from now on, folded into the metrics when they
    # are read (ApiMetrics.own).
    parts.metrics.own()
    # Payments a crash cut short are settled and finished before new ones are taken.
    recovery = await recover_interrupted(parts)
    if writer is not None:
        # Said when nothing was interrupted too: an operator checking that recovery ran can tell.
        logger.log(logging.WARNING if recovery.interrupted else logging.INFO, "%s", recovery.summary())
        for why in recovery.left:
            logger.error("recovery: left interrupted: %s", why)
    parts.recovery = recovery
    parts.metrics.count_recovery(recovery.finished, len(recovery.left), recovery.settled_attempts)
    # What exists now (framework, config, currency tables, and the stores' dicts, which
    # engine.shards keeps tracked for this) lives as long as the process: moved out of the
    # collector's sight, collections look only at what payments create.
    gc.freeze()
    # A payment leaves about 16 new tuples in the stores (40 with the server's own), each
    # looked at once by a young collection. A young collection every 5,000 of them takes
    # under a millisecond; one every 20,000 took 3-4 ms and showed in the p99 (bench_api);
    # the default (700) runs one every few payments.
    thresholds = gc.get_threshold()
    gc.set_threshold(*settings.gc_thresholds)
    # The writer thread needs the interpreter lock for a moment around each statement; by
    # default a busy event loop keeps it up to 5 ms first, and a payment waits for three
    # commits. Half a millisecond halved the median payment at 400 payments/s (52 -> 28 ms,
    # open loop, bench_api_durable's setup). Put back at shutdown.
    switch_interval = sys.getswitchinterval()
    if parts.writer is not None:
        sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)
    running = Running(
        thresholds, switch_interval, parts.monitor or ContractMonitor(parts.records, parts.clock)
    )
    telemetry = parts.telemetry
    if telemetry is not None:
        running.watcher = asyncio.create_task(
            telemetry.watch_drops(
                running.monitor, lambda: RequestId(new_id("req")), settings.drop_report_interval_s
            )
        )
        if telemetry.logs is not None:
            running.handler = PipeHandler(telemetry.logs)
            attach_log_handler(running.handler)
    return running


async def stop(parts: Parts, running: Running) -> None:
    settings = parts.settings
    parts.draining = True
    in_flight = parts.desk.in_flight
    left = await parts.desk.drain(settings.shutdown_grace_s)
    if left:
        payments = "payment" if left == 1 else "payments"
        logger.error("shutdown: %d %s still in flight after %g s", left, payments, settings.shutdown_grace_s)
    await parts.engine.aclose()
    telemetry = parts.telemetry
    if running.watcher is not None and telemetry is not None:
        # The spans still buffered go first (those the exporter cannot take in time are dropped
        # and counted), so that the last report, made while the store still takes it, counts
        # them: a stop with the collector down lost every buffered span without a word.
        await asyncio.to_thread(telemetry.spans.close)
        running.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.watcher
        # So do the log lines, within ``log_close_s``: those the stream cannot take by then (its
        # reader stopped reading) are dropped and counted in the same report. Closed after the
        # store, a stream that took nothing held the stop for ever, and its lines went uncounted.
        # Records from now on are the process's to write (payorch.server's DirectHandler).
        if running.handler is not None:
            detach_log_handler(running.handler)
            running.handler = None
        if telemetry.logs is not None:
            await asyncio.to_thread(telemetry.logs.close, settings.log_close_s)
        with contextlib.suppress(Exception):
            await telemetry.report_drops(running.monitor, RequestId(new_id("req")))
    committed, failure = True, None
    if parts.writer is not None:
        # Everything queued is committed before the process ends.
        committed = await asyncio.to_thread(parts.writer.close)
        failure = parts.writer.failure
    parts.shutdown = Shutdown(drained=in_flight - left, left=left, committed=committed, store_failure=failure)
    sys.setswitchinterval(running.switch_interval)
    # What the app kept is garbage once it stops (tests and benches start many in a process).
    gc.set_threshold(*running.thresholds)
    gc.unfreeze()
    if parts.journal is not None:
        parts.journal.close()
    if running.handler is not None:
        detach_log_handler(running.handler)
    if telemetry is not None:
        await asyncio.to_thread(telemetry.close)
    parts.metrics.disown()  # what it counted is in the metrics; a later start may run elsewhere
