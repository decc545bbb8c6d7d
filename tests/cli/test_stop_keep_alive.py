"""A stop (SIGTERM) of ``payorch serve`` while a keep-alive connection sits between two requests:
the idle connection is closed at once, not held for the keep-alive timeout, and a request that
has begun to arrive on it (part of its head read, or its bytes waiting in the socket) is read,
answered with ``Connection: close``, and then the connection closes. Such a request was cut: the
connection closed under it, unanswered. On a connection answering a request at the stop, the
requests pipelined behind it are answered too (begun before the stop: run; after it: 503, not
run); uvicorn closed the connection after the first answer, the others unanswered and reset."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

import payorch.server
from payorch.http_guard import GuardedHttpToolsProtocol
from tests.cli.test_http_guard import PATIENCE_S, Backend

KEEP_ALIVE_S = 30
ANSWERED = b"HTTP/1.1 200 OK\r\n"
FIRST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
SECOND = b"POST /slowly HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"


class _Server(uvicorn.Server):
    """uvicorn's server, stopped as its signal handler does (``should_exit``), its signals left
    to the test process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(backend: Backend) -> AsyncIterator[tuple[_Server, asyncio.Task[None], int]]:
    """A server with ``payorch serve``'s connection, idle connections kept 30 s."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        backend,
        http=GuardedHttpToolsProtocol,
        lifespan="off",
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield server, task, listening.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, PATIENCE_S)
        listening.close()


async def first_answered(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose first request was answered, kept alive."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(FIRST)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"ok"), PATIENCE_S)
    assert head.startswith(ANSWERED)
    assert b"connection: close" not in head.lower()
    return reader, writer


async def stopped_within(task: asyncio.Task[None], seconds: float) -> float:
    began = time.monotonic()
    await asyncio.wait_for(task, PATIENCE_S)
    took = time.monotonic() - began
    assert took < seconds
    return took


async def read_to_the_close_then_stopped(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[None]
) -> bytes:
    """All the server sent on the connection until it closed it, once the stop has ended."""
    answered = await asyncio.wait_for(reader.read(), PATIENCE_S)
    writer.close()
    await stopped_within(task, 2.0)
    return answered


async def test_an_idle_keep_alive_connection_does_not_hold_the_stop() -> None:
    backend = Backend()
    async with serving(backend) as (server, task, port):
        reader, writer = await first_answered(port)
        server.should_exit = True  # SIGTERM
        await stopped_within(task, 2.0)  # not the 30 s of keep-alive
        assert await asyncio.wait_for(reader.read(), PATIENCE_S) == b""  # closed, nothing more
        writer.close()


async def test_a_request_whose_head_began_before_the_stop_is_answered_then_closed() -> None:
    backend = Backend()
    async with serving(backend) as (server, task, port):
        reader, writer = await first_answered(port)
        half = len(SECOND) // 3
        writer.write(SECOND[:half])  # part of the head: the request has begun
        await writer.drain()
        await asyncio.sleep(0.05)  # read by the server
        server.should_exit = True  # SIGTERM
        await asyncio.sleep(0.3)  # the stop is under way (uvicorn looks every 0.1 s)
        assert not task.done()
        writer.write(SECOND[half:])
        await writer.drain()
        answer = await read_to_the_close_then_stopped(reader, writer, task)
    assert answer.startswith(ANSWERED)
    assert b"connection: close" in answer.lower()
    assert backend.bodies == [b"", b"body"]


async def test_a_request_waiting_unread_in_the_socket_at_the_stop_is_answered() -> None:
    """Its bytes reached the server's socket, but the event loop had not yet read them when the
    stop closed the idle connections."""
    backend = Backend()
    async with serving(backend) as (server, task, port):
        reader, writer = await first_answered(port)
        writer.write(SECOND)  # sent at once (the loop has not run since): unread by the server
        for connection in list(server.server_state.connections):
            connection.shutdown()  # what the stop does first, at this very moment
        server.should_exit = True
        answer = await read_to_the_close_then_stopped(reader, writer, task)
    assert answer.startswith(ANSWERED)
    assert b"connection: close" in answer.lower()
    assert backend.bodies == [b"", b"body"]


PAYMENT = b"POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA"


class HeldBackend(Backend):
    """The test backend, whose answer to ``/held`` waits for :attr:`release` (a payment's time,
    as long as the test needs)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != "/held":
            await super().__call__(scope, receive, send)
            return
        message = await receive()
        self.bodies.append(message["body"])
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE_S):
        while not condition():
            await asyncio.sleep(0.01)


def queued(server: _Server) -> bool:
    """A request is read whole behind the one being answered (pipelined)."""
    connections = server.server_state.connections
    return any(isinstance(each, GuardedHttpToolsProtocol) and each.pipeline for each in connections)


def stop_now(server: _Server) -> None:
    """What the stop does first (``Server.shutdown``), at this very moment; then the rest of it."""
    for connection in list(server.server_state.connections):
        connection.shutdown()
    server.should_exit = True


def split_answers(answered: bytes) -> list[bytes]:
    """Each answer's head, lower case, in the order sent."""
    answers = answered.lower().split(b"http/1.1 ")[1:]
    return [b"http/1.1 " + answer.partition(b"\r\n\r\n")[0] for answer in answers]


async def sent_around_the_stop(before: bytes, after: bytes) -> tuple[bytes, HeldBackend]:
    """Send ``before`` (the first payment, ``A``, and maybe the beginning of another), stop the
    server while the first is held under way, send ``after``, then let the first be answered:
    what the connection answered until it closed, and the backend that ran the requests."""
    backend = HeldBackend()
    async with serving(backend) as (server, task, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(before)
        await writer.drain()
        await until(lambda: backend.bodies == [b"A"])  # the first payment under way
        stop_now(server)
        writer.write(after)
        await writer.drain()
        await until(lambda: queued(server))
        backend.release.set()
        answered = await read_to_the_close_then_stopped(reader, writer, task)
    return answered, backend


async def test_a_request_begun_behind_one_being_answered_at_the_stop_is_answered() -> None:
    """A payment pipelined behind another, part of its head read when the stop came: it was
    dropped, the connection closed after the first answer, and the client got a reset."""
    answered, backend = await sent_around_the_stop(PAYMENT + SECOND[:10], SECOND[10:])
    first, second = split_answers(answered)
    assert first.startswith(ANSWERED.lower())
    assert b"connection: close" not in first
    assert second.startswith(ANSWERED.lower())
    assert b"connection: close" in second
    assert backend.bodies == [b"A", b"body"]


async def test_a_request_sent_after_the_stop_behind_one_being_answered_is_503_not_run() -> None:
    """The client sent a second payment while its first was being answered, after the stop: the
    first was answered with Connection: close and the second was never answered (a reset), so its
    client could not tell whether it was charged. Now it is told: 503, nothing run, Retry-After."""
    answered, backend = await sent_around_the_stop(PAYMENT, SECOND)
    first, second = split_answers(answered)
    assert first.startswith(ANSWERED.lower())
    assert b"connection: close" not in first
    assert second.startswith(b"http/1.1 503 ")
    assert b"connection: close" in second
    assert b"retry-after: 1" in second
    document = orjson.loads(answered.rpartition(b"\r\n\r\n")[2])
    assert (document["status"], document["code"]) == (503, "service_unavailable")
    assert "was not run" in document["detail"]
    assert backend.bodies == [b"A"]


async def test_a_request_whose_body_is_still_arriving_at_the_stop_is_answered_then_closed() -> None:
    """The rest of its body waits in the socket when the stop comes: it is that request's body,
    not a next request, and the connection closes after its answer (not held for keep-alive)."""
    backend = Backend()
    async with serving(backend) as (server, _task, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(SECOND[:-2])
        await writer.drain()
        await asyncio.sleep(0.05)  # the head and part of the body read: the app waits for the rest
        writer.write(SECOND[-2:])  # the rest, unread by the server when the stop comes
        for connection in list(server.server_state.connections):
            connection.shutdown()  # what the stop does first, at this very moment (and only once)
        answered = await asyncio.wait_for(reader.read(), 5.0)  # not the 30 s of keep-alive
        writer.close()
    assert answered.startswith(ANSWERED)
    assert b"connection: close" in answered.lower()
    assert backend.bodies == [b"body"]


class _PayorchServer(payorch.server._Server):
    """``payorch serve``'s server, its signals left to the test process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def test_a_request_on_a_connection_not_yet_accepted_at_the_stop_is_answered() -> None:
    """The kernel completed the connection and holds the request, but the event loop (busy) had
    not accepted it when the stop closed the listening socket: the client got a reset after
    sending its payment (up to 67 clients in 256 around a SIGTERM of ``payorch serve``)."""
    backend = Backend()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(backend, http=GuardedHttpToolsProtocol, lifespan="off", log_config=None)
    server = _PayorchServer(config, lambda: 0)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        await until(lambda: server.started)
        # The loop takes no more connections, as one too busy to accept them would not.
        asyncio.get_running_loop().remove_reader(listening.fileno())
        client = socket.create_connection(listening.getsockname())
        client.sendall(SECOND)  # queued in the kernel, with its connection
        reader, writer = await asyncio.open_connection(sock=client)
        server.should_exit = True  # SIGTERM
        answered = await read_to_the_close_then_stopped(reader, writer, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, PATIENCE_S)
        listening.close()
    assert answered.startswith(ANSWERED)
    assert b"connection: close" in answered.lower()
    assert backend.bodies == [b"body"]
