"""``GET /metrics`` of one process shows the process itself, as every Prometheus client library's
default registry does: a reliability team's memory, file-descriptor and restart alerts (and the
dashboards built on ``process_start_time_seconds``) found nothing to read."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import body_of, call

#: prometheus_client reads a process's figures from /proc (Linux); elsewhere it shows none.
PROC = Path("/proc/self/stat").exists()


@pytest.mark.skipif(not PROC, reason="process figures are read from /proc")
async def test_one_process_shows_its_memory_cpu_files_start_and_runtime(tmp_path: Path) -> None:
    application = create_app(Settings(config=parse_config(CONFIG), data_dir=tmp_path))
    async with application.router.lifespan_context(application):
        scraped = await call(application, "GET", "/metrics", [], body_of(b""))

    assert scraped.status == 200
    samples = {
        sample.name: sample
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
    }
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert samples[name].value > 0, name
    assert samples["python_info"].labels["implementation"] == "CPython"
    assert "python_gc_collections_total" in samples
