"""Several worker processes, one view: with PROMETHEUS_MULTIPROC_DIR set, any worker's /metrics
sums what every worker counted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ingest.api.metrics import STALE_S

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


CONTAINER = """
import os
import sys

os.getpid = lambda: 1  # a container's entrypoint: payorch is pid 1 in each of them
from engine.circuit_breaker import CircuitState
from ingest.api.metrics import ApiMetrics, end_multiprocess_values, start_multiprocess_values

start_multiprocess_values(os.environ, namespace=sys.argv[1])  # its host (its pid namespace)
metrics = ApiMetrics()
metrics.watch_circuits(["stripe_sim"])
for line in sys.stdin:
    command, *arguments = line.split()
    if command == "count":
        for _ in range(int(arguments[0])):
            metrics.count_payment("succeeded")
    elif command == "open":
        metrics.circuit_changed("stripe_sim", CircuitState.OPEN)
    elif command == "beat":
        metrics.publish_drops()  # what the app does each second
    elif command == "render":
        sys.stdout.write(metrics.render().decode())
    elif command == "stop":
        end_multiprocess_values(os.environ)
        break
    sys.stdout.write("\\n.\\n")
    sys.stdout.flush()
"""


class Container:
    """A payorch process run as pid 1 on a host of its own, sharing ``directory``'s metrics."""

    def __init__(self, directory: Path, host: str) -> None:
        environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", CONTAINER, host],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, command: str) -> str:
        """What ``command`` printed, once it is done."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        lines = []
        for line in self.process.stdout:
            if line == ".\n":
                break
            lines.append(line)
        return "".join(lines)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def kill(self) -> None:
        """Killed: it cannot mark itself dead."""
        self.process.kill()
        self.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


SUCCEEDED = ("payorch_payments_total", (("status", "succeeded"),))
CIRCUIT = ("payorch_circuit_state", (("processor", "stripe_sim"),))


def test_two_containers_each_pid_1_sharing_a_volume_keep_each_others_counts(tmp_path: Path) -> None:
    """Both named their values files by pid (``counter_1.db``): the second one's start took the first
    one's files for its own earlier run's and removed them, and then each wrote its own count over
    the other's in the one file they shared."""
    first = Container(tmp_path, "hosta")
    second: Container | None = None
    try:
        first.send("count 3")
        second = Container(tmp_path, "hostb")
        second.send("count 4")
        first.send("count 1")  # the first one's count is 4 now: it must not hide the second's
        assert _samples(second.send("render"))[SUCCEEDED] == 8
        assert _samples(first.send("render"))[SUCCEEDED] == 8
        assert len(list(tmp_path.glob("counter_*.db"))) == 2
        second.send("stop")  # its live gauges leave the sums; its counts stay
        second.close()
        second = None
        assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 1
        assert _samples(first.send("render"))[SUCCEEDED] == 8
    finally:
        for container in (first, second):
            if container is not None:
                container.close()


def test_a_killed_container_s_live_gauges_leave_the_sums_once_its_heartbeat_is_stale(tmp_path: Path) -> None:
    """A killed container never marks itself dead, and its pid means nothing on another host: its
    live gauges (an open circuit) go once its values files have not been touched for
    :data:`~ingest.api.metrics.STALE_S`, which a running worker does every second."""
    first = Container(tmp_path, "hosta")
    second: Container | None = None
    try:
        # Up, with its values files made, before the second starts: started together, the second
        # could list the first's counter file before the first had made the live gauge file that
        # says it runs, take it for a dead run's and remove it (a start-up race this test is not
        # about; see the note of stop 24).
        first.send("beat")
        second = Container(tmp_path, "hostb")
        second.send("open")
        assert _samples(first.send("render"))[CIRCUIT] == 2  # the worst of the two
        second.kill()
        assert _samples(first.send("render"))[CIRCUIT] == 2  # maybe only slow: not yet
        stale = time.time() - STALE_S - 1
        for path in tmp_path.glob("gauge_live*.db"):
            os.utime(path, (stale, stale))
        first.send("beat")  # the running one's heartbeat
        assert _samples(first.send("render"))[CIRCUIT] == 0
        assert len(list(tmp_path.glob("gauge_live*.db"))) == 2  # the running one's own two
        assert len(list(tmp_path.glob("counter_*.db"))) == 2  # the killed one's counts stay
    finally:
        first.close()
        if second is not None:
            second.close()
