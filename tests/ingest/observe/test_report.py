"""The ContractMonitor's report over the service's own store: violations recorded through the API
are read back per window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.monitor import ReportWindow
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call


async def test_the_report_counts_what_the_api_recorded_in_the_window(tmp_path: Path) -> None:
    application = create_app(Settings(config=parse_config(CONFIG), data_dir=tmp_path))
    parts: Parts = application.state.parts
    async with application.router.lifespan_context(application):
        before = datetime.now(UTC)
        for body in (b'{"amount": "1,000", "currency": "usd"}', b'{"amount": "nope"}'):
            await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(body))
        reused = [ACME, JSON, (b"idempotency-key", b"order-9")]
        await call(application, "POST", "/v1/payments", reused, body_of(b'{"amount": 700}'))
        await call(application, "POST", "/v1/payments", reused, body_of(b'{"amount": 800}'))
        assert parts.monitor is not None
        report = await parts.monitor.generate_report(ReportWindow(before, datetime.now(UTC)))
        earlier = await parts.monitor.generate_report(ReportWindow(before - timedelta(days=14), before))

    counts = {standing.contract.id: standing.violations for standing in report.broken}
    assert counts == {"idempotency/key-reused": 1, "api/validation": 2}
    assert [standing.contract.id for standing in report.broken] == [
        "idempotency/key-reused",
        "api/validation",
    ]
    assert earlier.total == 0 and len(earlier.standings) == len(report.standings)
