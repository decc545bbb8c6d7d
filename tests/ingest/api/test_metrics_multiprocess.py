"""Several worker processes, one view: with PROMETHEUS_MULTIPROC_DIR set, any worker's /metrics
sums what every worker counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
WORKER = """
import sys
from ingest.api.metrics import ApiMetrics
metrics = ApiMetrics(timeouts_s=[0.3])
for _ in range(int(sys.argv[1])):
    metrics.count_payment("succeeded")
metrics.count_attempt("stripe_sim", "card", "succeeded", 0.2)
if sys.argv[2] == "render":
    sys.stdout.write(metrics.render().decode())
"""


def run_script(script: str, directory: Path, *arguments: str) -> str:
    """What ``script`` prints, run in a process of its own sharing ``directory``'s metrics."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def run_worker(directory: Path, payments: int, render: bool = False) -> str:
    return run_script(WORKER, directory, str(payments), "render" if render else "-")


def test_any_worker_shows_the_sum_of_all_workers(tmp_path: Path) -> None:
    run_worker(tmp_path, 3)
    run_worker(tmp_path, 4)
    text = run_worker(tmp_path, 5, render=True)

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("payorch_payments_total", (("status", "succeeded"),))] == 12
    attempts = (("method", "card"), ("outcome", "succeeded"), ("processor", "stripe_sim"))
    assert samples[("payorch_processor_attempts_total", attempts)] == 3
    # 0.2 s is within the 0.3 s threshold's own bucket, and not within 0.1 s.
    assert samples[("payorch_step_latency_seconds_bucket", (("le", "0.3"), ("processor", "stripe_sim")))] == 3
    assert samples[("payorch_step_latency_seconds_bucket", (("le", "0.1"), ("processor", "stripe_sim")))] == 0


COMMITTING = """
import sys
from ingest.api.metrics import ApiMetrics
metrics = ApiMetrics()
metrics.watch(queue_depth=lambda: 99, events_written=lambda: 99)  # this process's own view
metrics.committed(int(sys.argv[1]), 4)
sys.stdout.write(metrics.render().decode())
"""


def test_the_writers_commits_set_the_shared_queue_depth_and_events_written(tmp_path: Path) -> None:
    printed = run_script(COMMITTING, tmp_path, "7")
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(printed)
        for sample in family.samples
    }
    assert samples["payorch_events_written_total"] == 7
    assert samples["payorch_event_queue_depth"] == 4


DROPPING = """
import asyncio
import sys
from engine.monitor import ContractMonitor
from engine.ports import SystemClock
from engine.types import RequestId
from ingest.api.metrics import ApiMetrics
from ingest.observe.telemetry import GlobalTags, Telemetry
from ingest.records import MemoryRecords

class GoneStream:  # a log pipe nobody reads any more: every line written is lost
    def write(self, data):
        raise BrokenPipeError("gone")

    def flush(self):
        pass

metrics = ApiMetrics()
telemetry = Telemetry(GlobalTags("test"), metrics, exporter=None, log_stream=GoneStream())
for n in range(int(sys.argv[1])):
    telemetry.logs.put("info", "line", {"n": n})
assert telemetry.logs.drain.flush()
monitor = ContractMonitor(MemoryRecords(), SystemClock())
asyncio.run(telemetry.report_drops(monitor, RequestId("req_drops")))  # what the app does each second
if sys.argv[2] == "render":
    sys.stdout.write(metrics.render().decode())
"""


def test_any_worker_shows_the_telemetry_every_worker_dropped(tmp_path: Path) -> None:
    """It was the answering worker's own count: a worker whose log pipe broke showed 0 on a scrape
    its neighbour answered."""
    scraped = ""
    for lines, render in ((3, "-"), (4, "render")):
        scraped = run_script(DROPPING, tmp_path, str(lines), render)
    samples = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "payorch_observer_dropped_total"
    }
    assert samples == {
        ("payorch_observer_dropped_total", ("logs",)): 7,
        ("payorch_observer_dropped_total", ("spans",)): 0,
    }
