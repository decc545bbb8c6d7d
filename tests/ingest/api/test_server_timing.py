"""``Server-Timing`` on a payment's answer covers the wait for its commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.records import MemoryRecords
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call

#: How long each commit takes below: a writer behind, or a slow disk.
COMMIT_S = 0.2


class SlowCommits(MemoryRecords):
    """Records whose commits (what :meth:`sync` waits for) each take :data:`COMMIT_S`."""

    async def sync(self) -> None:
        await asyncio.sleep(COMMIT_S)


def _durations(header: str) -> dict[str, float]:
    """Each metric's ``dur`` in milliseconds, by name."""
    found: dict[str, float] = {}
    for metric in header.split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        found[name] = next(float(p.removeprefix("dur=")) for p in params if p.startswith("dur="))
    return found


async def test_server_timing_includes_the_commit_the_answer_waited_for(tmp_path: Path) -> None:
    """The header ended before the commit of the payment's terminal event: a merchant answered
    after a 200 ms commit saw a few milliseconds in all. ``commit`` now says it, beside the
    ``orchestration`` and ``processor`` it had."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, records=SlowCommits())
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        started = time.perf_counter()
        answer = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
        waited_ms = (time.perf_counter() - started) * 1000

    assert answer.status == 200
    durations = _durations(answer.headers["server-timing"])
    assert {"orchestration", "processor", "commit"} <= set(durations)
    assert durations["commit"] >= COMMIT_S * 1000
    assert sum(durations.values()) <= waited_ms  # each part once: none counted twice
