"""The single writer's sustained rate against a bare DuckDB Arrow-batch insert of the same rows.

The events are those of real two-step payments (seven each), made once by the engine with
instant simulated processors. Both sides write them into a fresh ``payorch.duckdb`` with the
store's schema, in batches of ``BATCH`` rows, one transaction per batch:

* bare: the rows already cut into Arrow columns (queryable columns, JSON, protobuf bytes); what is
  timed is building the Arrow batches from them, inserting and committing;
* writer: ``Writer.submit`` of each event as the API submits it, until the commit of the last;
  the writer cuts each event into its row itself (JSON and ``payments.events.v1`` bytes).

Target (the store issue): the writer at least half the bare rate.

A second comparison puts the writer next to the same conversion and insert done inline, in one
thread with no queue: what the writer's own machinery (queue, thread, batching, waiters) costs.

Every side's database checkpoints by the writer's rule (``_CHECKPOINTS``), so that each pays the
same checkpoints for the same rows.

All three run in the interpreter as ``payorch serve`` runs its writer (:func:`_as_served`). Under
the interpreter's defaults the writer's run paid a full collection of everything the process
held, this benchmark's 70,000 prepared events with it, which a serving process has frozen (what
existed at its start) or never holds (events live until written): 1-2 µs an event of CPU, and
about 3,400 of the writer's 61,400 instructions an event (callgrind).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from bench.harness import Comparison
from bench.payorch_app import bench_config
from engine.context import CoreRequestContext
from engine.events import DomainEvent
from engine.ledger import Ledger
from engine.money import Currency
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from engine.types import MerchantId, PaymentId, RequestId
from ingest.api.lifespan import WRITER_SWITCH_INTERVAL_S
from ingest.api.settings import Settings
from ingest.engine_assembly import build_engine
from ingest.store.records import EVENTS
from ingest.store.schema import migrate
from ingest.store.writer import DEFAULT_CHECKPOINT_MB, Write, Writer, arrow_batch

PAYMENTS = 10_000
BATCH = 5000
TARGET_RATIO = 0.5


class _Capture:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    async def emit(self, event: DomainEvent) -> None:
        self.events.append(event)

    async def record_violation(self, violation: object) -> None:
        return None


async def _events() -> list[DomainEvent]:
    sink = _Capture()
    engine = build_engine(
        bench_config(),
        sink=sink,
        clock=SystemClock(),
        sleeper=AsyncioSleeper(),
        random=SeededRandom(7),
        environ={},
        ledger=Ledger(),
    )
    for n in range(PAYMENTS):
        ctx = CoreRequestContext(
            MerchantId("m_bench"), RequestId(f"req_{n}"), PaymentId(f"pay_{n}"), 10_000, Currency("USD")
        )
        await engine.service.pay(ctx)
    return sink.events


#: The writer's checkpoint rule, for the bare and inline sides too. The 70,000 events leave about
#: 16.4 million bytes of write-ahead log: past the writer's 16 MB threshold, short of DuckDB's
#: default 16 MiB. With the default here, the writer alone paid a checkpoint (120-160 ms of a
#: 0.8 s run) and the ratio compared checkpoint rules, not the writer's machinery.
_CHECKPOINTS: dict[str, str | bool | int | float | list[str]] = {
    "checkpoint_threshold": f"{DEFAULT_CHECKPOINT_MB}MB",
    "max_vacuum_tasks": 0,
}


def _bare(events: list[DomainEvent], folder: Path, *, convert_inline: bool = False) -> float:
    assert EVENTS.convert is not None  # noqa: S101 - the events table converts
    convert = EVENTS.convert
    rows = [] if convert_inline else [convert((seq, event)) for seq, event in enumerate(events, 1)]
    name = "inline.duckdb" if convert_inline else "bare.duckdb"
    with duckdb.connect(str(folder / name), config=_CHECKPOINTS) as connection:
        migrate(connection)
        started = time.perf_counter()
        if convert_inline:
            rows = [convert((seq, event)) for seq, event in enumerate(events, 1)]
        for at in range(0, len(rows), BATCH):
            # The writer's own way from rows to Arrow, the cheapest known here: the bare side is
            # not held to a slower one.
            batch = arrow_batch(EVENTS, rows[at : at + BATCH])  # noqa: F841 - read by the SQL
            connection.begin()
            connection.execute(EVENTS.sql)
            connection.commit()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


async def _writer(events: list[DomainEvent], folder: Path) -> float:
    writer = Writer(folder / "writer.duckdb", max_rows=BATCH)
    seq = itertools.count(1)
    started = time.perf_counter()
    for event in events:
        writer.submit(Write(EVENTS, (next(seq), event)))
    await writer.submit_and_wait(Write(None))
    elapsed = time.perf_counter() - started
    writer.close()
    return len(events) / elapsed


@contextlib.contextmanager
def _as_served(folder: Path) -> Iterator[None]:
    """The interpreter as a serving app's start leaves it while its writer runs
    (``ingest.api.lifespan``): what exists now out of the collector's sight (``gc.freeze``), the
    app's collection thresholds, and the short switch interval that lets the writer thread in.
    Put back after: ``python -m bench`` goes on with other benchmarks."""
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*Settings(config=bench_config(), data_dir=folder).gc_thresholds)
    sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def run() -> list[Comparison]:
    events = asyncio.run(_events())
    bare, inline, written = 0.0, 0.0, 0.0
    for _ in range(2):  # best of two, each into fresh files
        with (
            tempfile.TemporaryDirectory(prefix="payorch-bench-store-") as folder,
            _as_served(Path(folder)),
        ):
            bare = max(bare, _bare(events, Path(folder)))
            inline = max(inline, _bare(events, Path(folder), convert_inline=True))
            written = max(written, asyncio.run(_writer(events, Path(folder))))
    return [
        Comparison(
            name=f"store writer, {len(events):,} payment events (batches of {BATCH:,})",
            unit="events/s",
            measured=written,
            baseline=bare,
            baseline_name="bare DuckDB Arrow-batch insert of the same rows",
            target_ratio=TARGET_RATIO,
        ),
        Comparison(
            name=f"store writer, {len(events):,} payment events, against its own work done inline",
            unit="events/s",
            measured=written,
            baseline=inline,
            baseline_name="the same conversion and insert in one thread, no queue",
        ),
    ]


if __name__ == "__main__":
    for comparison in run():
        print(comparison.line(), flush=True)
