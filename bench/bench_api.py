"""HTTP cost of a payment: payorch's ``POST /v1/payments`` next to a trivial FastAPI app.

Each app runs in its own uvicorn process (one worker, httptools, asyncio loop, no access log)
pinned to one core; the load generator (:mod:`bench.loadgen`) runs in another process pinned to
the other core. Both apps get the same request: ``POST /v1/payments`` with a bearer key, a JSON
body ``{"amount": 10000, "currency": "USD"}`` and a unique ``Idempotency-Key`` each time.

Two comparisons, baselines measured in the same run:

1. Maximum throughput (closed loop, 32 keep-alive connections): payorch / trivial app, target
   at least 0.4.
2. p99 latency of payorch in an open loop (Poisson arrivals) at half its measured maximum,
   target below 10 ms; the baseline is the trivial app at the same rate.

Each is the best of two rounds, the two apps taking turns, as harness.rate keeps the best of its
repeats: on a shared virtual machine the worst round mostly measures the neighbours.

The generator's own ceiling (against a canned-answer server) is measured first and printed, and
every run notes how much CPU other processes took meanwhile: on a shared two-core machine that
is the first thing that spoils these figures.

Skipped, with one line and no comparisons, while ``ingest.api.app`` cannot be imported.
``python -m bench.bench_api --self-check`` measures the trivial app against a second copy of
itself (ratio about 1), which checks the generator and the machine without payorch.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from bench.harness import Comparison
from bench.loadgen import (
    ROOT,
    LoadgenError,
    Report,
    RequestTemplate,
    closed_loop,
    open_loop,
    stop_process,
)
from bench.payorch_app import API_KEY, DATA_DIR_ENV

PATH = "/v1/payments"
BODY = b'{"amount": 10000, "currency": "USD"}'
HEADERS = (("Authorization", f"Bearer {API_KEY}"), ("Content-Type", "application/json"))
REQUEST = RequestTemplate("POST", PATH, HEADERS, BODY, unique_header="Idempotency-Key")
CONNECTIONS = 32
WARMUP_S, CLOSED_S, OPEN_S, CEILING_S = 1.0, 4.0, 6.0, 3.0
ROUNDS = 2  # of each measurement, interleaved between the two apps; the best counts
THROUGHPUT_TARGET_RATIO = 0.4
P99_TARGET_MS = 10.0
MAX_FAILURE_SHARE = 0.001  # more failed requests than this and the figures measure errors
FOREIGN_CPU_WARNING = 0.15  # cores used by other processes during a run


class BenchError(Exception):
    """The benchmark cannot produce meaningful figures (a server that will not start...)."""


@dataclass(frozen=True, slots=True)
class App:
    name: str
    target: str  # uvicorn's APP argument
    factory: bool = False
    env: tuple[tuple[str, str], ...] = ()  # added to the server's environment


TRIVIAL = App("trivial FastAPI app", "bench.trivial_app:app")
PAYORCH = App("payorch", "bench.payorch_app:create", factory=True)


# -- processes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cores:
    """Where the server and the generator run; None when there are not two cores to split."""

    server: int | None
    generator: int | None

    @classmethod
    def split(cls) -> Cores:
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(available) < 2:
            print("  api: fewer than two cores: server and load generator share one, figures are low")
            return cls(None, None)
        return cls(available[0], available[1])


@dataclass
class Server:
    app: App
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process so far (0 where /proc is missing)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self) -> str:
        self.log.seek(0)
        lines = self.log.read().decode("utf-8", "replace").strip().splitlines()
        return "\n".join(lines[-8:]) if lines else "(no output)"


@contextmanager
def serve(app: App, cpu: int | None, env: dict[str, str]) -> Iterator[Server]:
    """A uvicorn process serving ``app`` on a free port, started and stopped around the block."""
    port = _free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", app.target, "--host", "127.0.0.1", "--port", str(port)),
        *("--no-access-log", "--log-level", "warning", "--http", "httptools", "--loop", "asyncio"),
        *("--workers", "1"),
        *(["--factory"] if app.factory else []),
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 (our interpreter, arguments we built)
            command,
            cwd=ROOT,
            env={**env, **dict(app.env)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if cpu is not None:
                os.sched_setaffinity(process.pid, {cpu})
            server = Server(app, process, port, log)
            _wait_ready(server, timeout=30.0)
            yield server
        finally:
            stop_process(process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"the {server.app.name} server exited while starting "
                f"(code {server.process.returncode}):\n{server.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"the {server.app.name} server did not accept connections within {timeout:.0f} s")


def _preflight(server: Server) -> None:
    """One request as the load will send it: anything but a 2xx makes the load meaningless."""
    headers = {**dict(HEADERS), "Idempotency-Key": f"preflight-{secrets.token_hex(8)}"}
    try:
        answer = httpx.post(server.url, headers=headers, content=BODY, timeout=10.0)
    except httpx.HTTPError as error:
        raise BenchError(
            f"the {server.app.name} server did not answer the benchmark request: {error}"
        ) from None
    if not answer.is_success:
        raise BenchError(
            f"the {server.app.name} server answered {answer.status_code} to the benchmark request: "
            f"{answer.text[:300]}"
        )


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """A load report with the server's CPU share and the CPU other processes took meanwhile."""

    report: Report
    server_cpu: float
    foreign_cpu: float


def _system_busy_seconds() -> float:
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the load generators)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(server: Server, load: Callable[[], Report]) -> Run:
    """Run ``load`` against ``server``; fail if too many of its requests failed."""
    busy, own, serving, started = (
        _system_busy_seconds(),
        _own_cpu_seconds(),
        server.cpu_seconds(),
        time.monotonic(),
    )
    report = load()
    wall = time.monotonic() - started
    serving = server.cpu_seconds() - serving
    foreign = (_system_busy_seconds() - busy) - serving - (_own_cpu_seconds() - own)
    failures = report.failures
    if failures > MAX_FAILURE_SHARE * max(1, report.completed):
        raise BenchError(
            f"{failures} of {report.completed + report.unfinished} requests to the {server.app.name} "
            f"failed (statuses {report.statuses}, errors {report.errors}, unanswered {report.unfinished})"
        )
    return Run(report, serving / max(1e-9, report.duration_s + WARMUP_S), max(0.0, foreign / wall))


def _closed(server: Server, cores: Cores) -> Run:
    run = measure(
        server,
        lambda: closed_loop(
            server.url,
            REQUEST,
            connections=CONNECTIONS,
            duration=CLOSED_S,
            warmup=WARMUP_S,
            cpu=cores.generator,
        ),
    )
    latency = run.report.latency_ms
    _note(
        f"{server.app.name}, closed loop x{CONNECTIONS}: {run.report.rate:,.0f} req/s  "
        f"p50 {latency['p50']:.2f} ms  p99 {latency['p99']:.2f} ms  server cpu {run.server_cpu:.0%}  "
        f"generator cpu {run.report.generator_cpu:.0%}",
        run,
    )
    return run


def _open(server: Server, cores: Cores, rate: float) -> Run:
    run = measure(
        server,
        lambda: open_loop(
            server.url, REQUEST, rate=rate, duration=OPEN_S, warmup=WARMUP_S, cpu=cores.generator
        ),
    )
    report, latency = run.report, run.report.latency_ms
    _note(
        f"{server.app.name}, open loop at {rate:,.0f} req/s (Poisson): {report.rate:,.0f} req/s answered  "
        f"p50 {latency['p50']:.2f} ms  p99 {latency['p99']:.2f} ms  max {latency['max']:.2f} ms  "
        f"send lag p99 {report.send_lag_ms['p99']:.2f} ms  connections opened in the run "
        f"{report.connections_opened}, requests that waited for one {report.waited_for_connection}",
        run,
    )
    return run


def _note(line: str, run: Run) -> None:
    print(f"  api: {line}  other processes {run.foreign_cpu:.2f} core", flush=True)
    if run.foreign_cpu > FOREIGN_CPU_WARNING:
        print(
            f"  api: warning: other processes used {run.foreign_cpu:.2f} of a core during that run; "
            "its figures are disturbed",
            flush=True,
        )


def _generator_ceiling(cores: Cores) -> float:
    """Closed-loop rate of the generator against the canned-answer server of bench.loadgen."""
    port = _free_port()
    command = [sys.executable, "-m", "bench.loadgen", "null-server", "--port", str(port)]
    if cores.server is not None:
        command += ["--cpu", str(cores.server)]
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchError("the canned-answer server did not start") from None
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}{PATH}"
        report = closed_loop(
            url, REQUEST, connections=CONNECTIONS, duration=CEILING_S, warmup=WARMUP_S, cpu=cores.generator
        )
    finally:
        stop_process(process)
    print(
        f"  api: load generator ceiling (canned-answer server, x{CONNECTIONS}): {report.rate:,.0f} req/s, "
        f"generator cpu {report.generator_cpu:.0%}",
        flush=True,
    )
    return report.rate


def compare(
    candidate: App,
    baseline: App,
    *,
    throughput_ratio: float = THROUGHPUT_TARGET_RATIO,
    p99_ms: float = P99_TARGET_MS,
) -> list[Comparison]:
    """The two comparisons of this module for ``candidate`` against ``baseline``."""
    cores = Cores.split()
    ceiling = _generator_ceiling(cores)
    with ExitStack() as stack:
        data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="payorch-bench-"))
        env = {**os.environ, DATA_DIR_ENV: data_dir}
        base = stack.enter_context(serve(baseline, cores.server, env))
        tested = stack.enter_context(serve(candidate, cores.server, env))
        _preflight(base)
        _preflight(tested)
        base_max, tested_max = 0.0, 0.0
        for _ in range(ROUNDS):
            base_max = max(base_max, _closed(base, cores).report.rate)
            tested_max = max(tested_max, _closed(tested, cores).report.rate)
        if ceiling < 1.5 * max(base_max, tested_max):
            print(
                f"  api: warning: the generator's ceiling ({ceiling:,.0f} req/s) is within 1.5x of the "
                "servers' maximum: the throughput figures may be the generator's",
                flush=True,
            )
        rate = tested_max / 2
        tested_p99, base_p99 = float("inf"), float("inf")
        for _ in range(ROUNDS):
            tested_p99 = min(tested_p99, _open(tested, cores, rate).report.latency_ms["p99"])
            base_p99 = min(base_p99, _open(base, cores, rate).report.latency_ms["p99"])
    return [
        Comparison(
            name=f"{candidate.name} POST {PATH} max throughput (1 worker, closed loop x{CONNECTIONS})",
            unit="req/s",
            measured=tested_max,
            baseline=base_max,
            baseline_name=baseline.name,
            target_ratio=throughput_ratio,
        ),
        Comparison(
            name=f"{candidate.name} POST {PATH} p99 at half its max rate ({rate:,.0f} req/s, open loop)",
            unit="ms",
            measured=tested_p99,
            baseline=base_p99,
            baseline_name=f"{baseline.name} at the same rate",
            absolute_target=p99_ms,
            lower_is_better=True,
            decimals=2,
        ),
    ]


def run() -> list[Comparison]:
    try:
        return compare(PAYORCH, TRIVIAL)
    except (BenchError, LoadgenError) as error:
        raise SystemExit(f"bench_api: {error}") from None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_api", description=__doc__)
    parser.add_argument(
        "--self-check", action="store_true", help="the trivial app against a second copy of itself"
    )
    options = parser.parse_args()
    if not options.self_check:
        comparisons = run()
    else:
        try:
            comparisons = compare(App("trivial FastAPI app (copy)", TRIVIAL.target), TRIVIAL)
        except (BenchError, LoadgenError) as error:
            raise SystemExit(f"bench_api: {error}") from None
    for comparison in comparisons:
        print(comparison.line(), flush=True)


if __name__ == "__main__":
    main()
