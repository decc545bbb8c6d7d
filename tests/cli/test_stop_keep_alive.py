"""A stop (SIGTERM) of ``payorch serve`` while a keep-alive connection sits between two requests:
the idle connection is closed at once, not held for the keep-alive timeout, and a request that
has begun to arrive on it (part of its head read, or its bytes waiting in the socket) is read,
answered with ``Connection: close``, and then the connection closes. Such a request was cut: the
connection closed under it, unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn

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
        answer = await asyncio.wait_for(reader.read(), PATIENCE_S)
        writer.close()
        await stopped_within(task, 2.0)
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
        answer = await asyncio.wait_for(reader.read(), PATIENCE_S)
        writer.close()
        await stopped_within(task, 2.0)
    assert answer.startswith(ANSWERED)
    assert b"connection: close" in answer.lower()
    assert backend.bodies == [b"", b"body"]
