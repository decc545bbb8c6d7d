"""A lean HTTP/1.1 load generator on raw asyncio streams, run in a process of its own.

Two modes:

``closed``  C keep-alive connections, each sending its next request as soon as the answer to the
            previous one is read, for D seconds after a warm-up: the most the server sustains.
``open``    Requests arrive at a fixed rate R (Poisson or evenly spaced), whatever the server
            does. Each goes out on a free keep-alive connection; when none is free a new one is
            opened (up to a cap; past it the request waits, and the wait is counted). Latency
            runs from the *scheduled* send time, so a slow answer cannot hide the requests that
            queued behind it (no coordinated omission).

Requests are encoded once; only a unique header value (an ``Idempotency-Key``, say) is spliced
in per request. Answers are parsed just enough to be delimited: the status line, the headers up
to the blank line, then a ``Content-Length`` body, a chunked body or, with neither, everything
until the server closes.

``python -m bench.loadgen closed|open --url URL ...`` prints one JSON object (a :class:`Report`)
on stdout; :func:`closed_loop` and :func:`open_loop` run that command in a child process (pinned
to a core if asked) and return the report. ``python -m bench.loadgen null-server --port N``
answers every request with a canned response, doing as little as asyncio allows: against it the
generator shows its own ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import math
import os
import random
import secrets
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
_BODYLESS_STATUSES = frozenset({204, 304})
_SPIN_S = 0.0015  # the last stretch before a scheduled send is spun, not slept (epoll has 1 ms ticks)


class LoadgenError(Exception):
    """The load could not be generated: bad arguments, a server that refuses connections..."""


class ProtocolError(ValueError):
    """An answer that is not HTTP/1.x."""


# -- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """The request every send repeats. ``unique_header`` names a header that gets a value of its
    own per request (``lg-<random run token>-<counter>``), the rest is the same bytes each time."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    unique_header: str | None = None

    def __post_init__(self) -> None:
        texts = [self.method, self.path, *(part for header in self.headers for part in header)]
        if self.unique_header is not None:
            texts.append(self.unique_header)
        if any(not text or "\r" in text or "\n" in text for text in texts):
            raise LoadgenError("the method, path and headers must be non-empty single-line texts")
        if any(name.lower() in {"host", "content-length"} for name, _ in self.headers):
            raise LoadgenError("Host and Content-Length are written by the generator")

    @property
    def head_only(self) -> bool:
        return self.method.upper() == "HEAD"

    def encoder(self, host: str) -> Callable[[], bytes]:
        """A function returning the bytes of the next request."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method.upper() in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(self.body)}")
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        if self.unique_header is None:
            whole = head + b"\r\n" + self.body
            return lambda: whole
        prefix = head + f"{self.unique_header}: lg-{secrets.token_hex(6)}-".encode("latin-1")
        suffix = b"\r\n\r\n" + self.body
        counter = itertools.count()
        return lambda: b"%s%d%s" % (prefix, next(counter), suffix)

    def arguments(self) -> list[str]:
        """The command-line options that rebuild this template."""
        options = ["--method", self.method, "--path", self.path]
        for name, value in self.headers:
            options += ["--header", f"{name}: {value}"]
        if self.body:
            options += ["--data", self.body.decode("utf-8")]
        if self.unique_header is not None:
            options += ["--unique-header", self.unique_header]
        return options


# -- answers --------------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader, head_only: bool = False) -> tuple[int, bool]:
    """Read one answer; its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = _status(head)
    while 100 <= status < 200 and status != 101:  # interim answers (100 Continue) precede the real one
        head = await reader.readuntil(b"\r\n\r\n")
        status = _status(head)
    lower = head.lower()
    keep_alive = (
        b"\r\nconnection: close" not in lower
        if head.startswith(b"HTTP/1.1")
        else b"\r\nconnection: keep-alive" in lower
    )
    if head_only or status < 200 or status in _BODYLESS_STATUSES:
        return status, keep_alive
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(lower[at + 17 : lower.index(b"\r\n", at + 17)])
        if length:
            await reader.readexactly(length)
        return status, keep_alive
    at = lower.find(b"\r\ntransfer-encoding:")
    if at >= 0 and b"chunked" in lower[at : lower.index(b"\r\n", at + 20)]:
        await _read_chunked(reader)
        return status, keep_alive
    await reader.read()  # no length: the body runs to the end of the connection
    return status, False


def _status(head: bytes) -> int:
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise ProtocolError(f"not an HTTP/1.x answer: {head[:40]!r}")
    return int(head[9:12])


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size = int(((await reader.readuntil(b"\r\n")).split(b";", 1)[0]), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the blank line
                pass
            return
        await reader.readexactly(size + 2)


_STREAM_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


# -- connections and figures ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise LoadgenError(f"{url!r} is not an http:// URL (https is not supported)")
        try:
            port = parts.port or 80
        except ValueError:
            raise LoadgenError(f"{url!r} has an invalid port") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, path)

    @property
    def authority(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"

    async def connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return Connection(reader, writer)


@dataclass(slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def closed(self) -> bool:
        """Whether the server has closed this connection (seen while it was idle)."""
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class _Figures:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, status: int, seconds: float) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1

    def failed(self, error: BaseException) -> None:
        self.errors[type(error).__name__] += 1

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 (nearest rank), max and mean, in milliseconds; zeros when empty."""
    if not seconds:
        return dict.fromkeys(("p50", "p90", "p99", "p99.9", "max", "mean"), 0.0)
    ordered = sorted(seconds)
    count = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(count - 1, max(0, math.ceil(q * count) - 1))] * 1000

    summary = {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "p99.9": rank(0.999)}
    return {**summary, "max": ordered[-1] * 1000, "mean": sum(ordered) / count * 1000}


@dataclass(frozen=True, slots=True)
class Report:
    """What one run measured; ``rate`` counts answered requests (any status) per second."""

    mode: str
    duration_s: float
    completed: int
    rate: float
    non_2xx: int
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    generator_cpu: float
    connections: int
    target_rate: float | None = None
    sent_rate: float | None = None
    unfinished: int = 0
    send_lag_ms: dict[str, float] = field(default_factory=dict)
    connections_opened: int = 0
    waited_for_connection: int = 0

    @property
    def failures(self) -> int:
        """Non-2xx answers, connection errors and requests never answered."""
        return self.non_2xx + sum(self.errors.values()) + self.unfinished

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Report:
        try:
            fields = json.loads(text)
            return cls(**fields)
        except (ValueError, TypeError) as error:
            raise LoadgenError(f"the load generator printed no report: {error}") from None


class _CpuMeter:
    """This process's CPU time over the measured window, as a fraction of one core."""

    def __init__(self, start: float, stop: float) -> None:
        self.fraction = 0.0
        self._task = asyncio.get_running_loop().create_task(self._measure(start, stop))

    async def _measure(self, start: float, stop: float) -> None:
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))
        self.fraction = (time.process_time() - cpu) / max(1e-9, time.perf_counter() - wall)

    async def result(self) -> float:
        await self._task
        return self.fraction


def _report(mode: str, duration: float, figures: _Figures, cpu: float, connections: int) -> Report:
    return Report(
        mode=mode,
        duration_s=duration,
        completed=len(figures.latencies),
        rate=len(figures.latencies) / duration,
        non_2xx=figures.non_2xx,
        statuses={str(status): count for status, count in sorted(figures.statuses.items())},
        errors=dict(figures.errors),
        latency_ms=percentiles(figures.latencies),
        generator_cpu=cpu,
        connections=connections,
    )


# -- closed loop ----------------------------------------------------------------------------------


async def run_closed(
    target: Target,
    template: RequestTemplate,
    *,
    connections: int,
    duration: float,
    warmup: float,
    grace: float = 5.0,
) -> Report:
    """``connections`` connections sending back to back; answers completed inside the measured
    window (after ``warmup``, ``duration`` long) are counted, with their latency."""
    encode, head_only = template.encoder(target.authority), template.head_only
    pool = await _open_pool(target, connections)
    figures = _Figures()
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + duration
    meter = _CpuMeter(measure_from, stop_at)

    async def client(connection: Connection | None) -> None:
        while (sent := time.perf_counter()) < stop_at:
            try:
                if connection is None:
                    connection = await target.connect()
                    sent = time.perf_counter()
                connection.writer.write(encode())  # one request in flight: no need to drain
                status, keep_alive = await read_response(connection.reader, head_only)
            except _STREAM_ERRORS as error:
                if time.perf_counter() >= measure_from:
                    figures.failed(error)
                if connection is not None:
                    connection.close()
                connection = None
                await asyncio.sleep(0.01)  # a refusing server must not be hammered in a tight loop
                continue
            done = time.perf_counter()
            if measure_from <= done <= stop_at:
                figures.record(status, done - sent)
            if not keep_alive:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    tasks = [asyncio.create_task(client(connection)) for connection in pool]
    _, pending = await asyncio.wait(tasks, timeout=warmup + duration + grace)
    for task in pending:
        task.cancel()
    report = _report("closed", duration, figures, await meter.result(), connections)
    return dataclasses.replace(report, unfinished=len(pending))


async def _open_pool(target: Target, count: int) -> list[Connection]:
    try:
        return list(await asyncio.gather(*(target.connect() for _ in range(count))))
    except OSError as error:
        raise LoadgenError(f"cannot connect to {target.host}:{target.port}: {error}") from None


# -- open loop ------------------------------------------------------------------------------------


def pool_size(rate: float) -> int:
    """Connections an open loop opens up front: enough for every request of a 50 ms stretch to be
    in flight at once, so a burst of arrivals finds them ready instead of opening new ones."""
    return max(32, math.ceil(rate * 0.05))


class _OpenLoop:
    def __init__(
        self,
        target: Target,
        template: RequestTemplate,
        *,
        max_connections: int,
        measure_from: float,
    ) -> None:
        self.target = target
        self.encode, self.head_only = template.encoder(target.authority), template.head_only
        self.max_connections = max_connections
        self.measure_from = measure_from
        self.idle: deque[Connection] = deque()
        self.backlog: deque[float] = deque()
        self.open_connections = 0
        self.opened_during_run = 0
        self.waited = 0
        self.sent = 0
        self.figures = _Figures()
        self.lags: list[float] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def adopt(self, pool: list[Connection]) -> None:
        self.idle.extend(pool)
        self.open_connections += len(pool)

    def dispatch(self, scheduled: float) -> None:
        if scheduled >= self.measure_from:
            self.sent += 1
        connection = self._idle_connection()
        if connection is None:
            if self.open_connections >= self.max_connections:
                self.backlog.append(scheduled)  # served by the next connection to come free
                self.waited += int(scheduled >= self.measure_from)
                return
            self.open_connections += 1  # _send opens it: its set-up is part of this latency
            self.opened_during_run += 1
        task = asyncio.create_task(self._serve(connection, scheduled))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _idle_connection(self) -> Connection | None:
        while self.idle:
            connection = self.idle.popleft()  # FIFO: every connection stays warm
            if not connection.closed:
                return connection
            connection.close()  # the server timed it out while idle: forget it
            self.open_connections -= 1
        return None

    async def _serve(self, connection: Connection | None, scheduled: float) -> None:
        while True:
            connection = await self._send(connection, scheduled)
            if not self.backlog:
                break
            scheduled = self.backlog.popleft()
        if connection is None:
            self.open_connections -= 1
        else:
            self.idle.append(connection)

    async def _send(self, connection: Connection | None, scheduled: float) -> Connection | None:
        measured = scheduled >= self.measure_from
        started = time.perf_counter()
        try:
            if connection is None:
                connection = await self.target.connect()
            connection.writer.write(self.encode())
            status, keep_alive = await read_response(connection.reader, self.head_only)
        except _STREAM_ERRORS as error:
            if measured:
                self.figures.failed(error)
            if connection is not None:
                connection.close()
            return None
        if measured:
            self.figures.record(status, time.perf_counter() - scheduled)
            self.lags.append(started - scheduled)
        if keep_alive:
            return connection
        connection.close()
        return None

    async def drain(self, grace: float) -> None:
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
        while self.idle:
            self.idle.popleft().close()


async def run_open(
    target: Target,
    template: RequestTemplate,
    *,
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
    max_connections: int,
    poisson: bool = True,
    seed: int = 1,
    grace: float = 5.0,
) -> Report:
    """Requests scheduled at ``rate`` per second for ``warmup`` + ``duration`` seconds; those
    scheduled after the warm-up are measured, from their scheduled time to their answer."""
    if rate <= 0:
        raise LoadgenError("the rate must be positive")
    pool = await _open_pool(target, connections)
    start = time.perf_counter() + 0.01
    measure_from = start + warmup
    stop_at = measure_from + duration
    cap = max(connections, max_connections)
    loop = _OpenLoop(target, template, max_connections=cap, measure_from=measure_from)
    loop.adopt(pool)
    meter = _CpuMeter(measure_from, stop_at)
    rng = random.Random(seed)

    def gap() -> float:
        return rng.expovariate(rate) if poisson else 1.0 / rate

    scheduled, burst = start, 0
    while scheduled < stop_at:
        now = time.perf_counter()
        if now < scheduled:
            burst = 0
            ahead = scheduled - now
            await asyncio.sleep(ahead - _SPIN_S if ahead > 2 * _SPIN_S else 0)
            continue
        loop.dispatch(scheduled)
        scheduled += gap()
        burst += 1
        if burst >= 64:  # behind schedule: let the answers in now and then
            burst = 0
            await asyncio.sleep(0)
    cpu = await meter.result()
    await loop.drain(grace)
    figures = loop.figures
    report = _report("open", duration, figures, cpu, connections)
    return dataclasses.replace(
        report,
        target_rate=rate,
        sent_rate=loop.sent / duration,
        unfinished=loop.sent - len(figures.latencies) - sum(figures.errors.values()),
        send_lag_ms=percentiles(loop.lags),
        connections_opened=loop.opened_during_run,
        waited_for_connection=loop.waited,
    )


# -- null server ----------------------------------------------------------------------------------

_NULL_ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{"status":"ok"}\n'
)


class _NullProtocol(asyncio.Protocol):
    """Answers each request (headers plus a Content-Length body) with the same canned bytes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0 if at < 0 else int(head[at + 17 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            if self.transport is not None:
                self.transport.write(_NULL_ANSWER)


async def serve_null(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_NullProtocol, host, port)
    async with server:
        await server.serve_forever()


# -- running it in a child process ----------------------------------------------------------------


def closed_loop(
    url: str,
    template: RequestTemplate,
    *,
    connections: int,
    duration: float,
    warmup: float,
    cpu: int | None = None,
) -> Report:
    """:func:`run_closed` in a child process (on core ``cpu`` if given)."""
    options = ["--connections", str(connections), "--duration", str(duration), "--warmup", str(warmup)]
    return _run_child(["closed", "--url", url, *template.arguments(), *options], cpu, warmup + duration)


def open_loop(
    url: str,
    template: RequestTemplate,
    *,
    rate: float,
    duration: float,
    warmup: float,
    connections: int | None = None,
    max_connections: int = 1000,
    poisson: bool = True,
    cpu: int | None = None,
) -> Report:
    """:func:`run_open` in a child process (on core ``cpu`` if given); ``connections`` defaults
    to :func:`pool_size` of the rate."""
    options = [
        *("--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup)),
        *("--max-connections", str(max_connections), "--arrivals", "poisson" if poisson else "even"),
    ]
    if connections is not None:
        options += ["--connections", str(connections)]
    return _run_child(["open", "--url", url, *template.arguments(), *options], cpu, warmup + duration)


def _run_child(arguments: list[str], cpu: int | None, seconds: float) -> Report:
    command = [sys.executable, "-m", "bench.loadgen", *arguments]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    child = subprocess.Popen(  # noqa: S603 (our own interpreter and module, arguments we built)
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = child.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise LoadgenError(f"the load generator did not finish within {seconds + 30:.0f} s") from None
    finally:
        stop_process(child)
    if child.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()
        raise LoadgenError(message[-1] if message else f"the load generator exited with {child.returncode}")
    return Report.from_json(out)


def stop_process(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Terminate ``process`` if it still runs, then kill it if it does not stop in ``grace`` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description="A lean HTTP/1.1 load generator (closed or open loop)."
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    closed = modes.add_parser("closed", help="back-to-back requests on C connections: max throughput")
    opened = modes.add_parser("open", help="a fixed arrival rate: latency without coordinated omission")
    for mode in (closed, opened):
        mode.add_argument("--url", required=True, help="http://host:port/path")
        mode.add_argument("-X", "--method", default="GET")
        mode.add_argument("--path", help="overrides the URL's path and query")
        mode.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
        mode.add_argument("-d", "--data", default="", help="the request body (UTF-8 text)")
        mode.add_argument("--unique-header", help="a header given a fresh value per request")
        mode.add_argument("--duration", type=float, default=5.0, help="measured seconds")
        mode.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before")
        mode.add_argument("--grace", type=float, default=5.0, help="seconds to wait for late answers")
        mode.add_argument("--cpu", type=int, help="pin this process to one core")
    closed.add_argument("-c", "--connections", type=int, default=32)
    opened.add_argument(
        "-c", "--connections", type=int, help="connections opened up front (default: from the rate)"
    )
    opened.add_argument("--rate", type=float, required=True, help="requests per second")
    opened.add_argument("--arrivals", choices=("poisson", "even"), default="poisson")
    opened.add_argument("--max-connections", type=int, default=1000)
    opened.add_argument("--seed", type=int, default=1)
    null = modes.add_parser("null-server", help="a canned-answer server, to measure the generator")
    null.add_argument("--host", default="127.0.0.1")
    null.add_argument("--port", type=int, required=True)
    null.add_argument("--cpu", type=int, help="pin this process to one core")
    return parser


def _template(options: argparse.Namespace, target: Target) -> RequestTemplate:
    headers: list[tuple[str, str]] = []
    for header in options.header:
        name, colon, value = header.partition(":")
        if not colon:
            raise LoadgenError(f"header {header!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    return RequestTemplate(
        method=options.method,
        path=options.path or target.path,
        headers=tuple(headers),
        body=options.data.encode("utf-8"),
        unique_header=options.unique_header,
    )


async def _run(options: argparse.Namespace) -> Report:
    target = Target.parse(options.url)
    template = _template(options, target)
    if options.connections is None:
        options.connections = pool_size(options.rate)
    if options.connections < 1 or options.duration <= 0 or options.warmup < 0:
        raise LoadgenError("connections must be at least 1, duration positive, warm-up not negative")
    if options.mode == "closed":
        return await run_closed(
            target,
            template,
            connections=options.connections,
            duration=options.duration,
            warmup=options.warmup,
            grace=options.grace,
        )
    return await run_open(
        target,
        template,
        rate=options.rate,
        duration=options.duration,
        warmup=options.warmup,
        connections=options.connections,
        max_connections=options.max_connections,
        poisson=options.arrivals == "poisson",
        seed=options.seed,
        grace=options.grace,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        if options.cpu is not None:
            os.sched_setaffinity(0, {options.cpu})
        if options.mode == "null-server":
            asyncio.run(serve_null(options.host, options.port))
            return 0
        report = asyncio.run(_run(options))
    except (LoadgenError, OSError) as error:
        print(f"loadgen: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(report.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
