"""How many admin reads of a time window run at once: the analytics tables
(``GET /v1/analytics/events|violations|complaints``) and the retrospective report.

They run in the process that takes the payments. A read of a large window keeps about one core
busy while it lasts (DuckDB sorts the window, then each batch is encoded, in a worker thread),
and the event loop answers the payments with what is left. Measured on two shared cores, 100
payments a second, readers polling a 14-day window of 500,000 events as JSON (1.3-3 s and
300 MB a read): payments' median was 80-92 ms with no reader, 107-137 with one, 122-216 with
two and 200-353 with four (Arrow: 97-119 with one, 200-249 with four), the service then using
every core it could get. So at most ``limit`` such reads run at a time, by default half the
cores the process may use, at least one; one more is refused at once, 503
``service_unavailable`` with ``Retry-After``, before it reads anything. With the default (one,
there), four readers polling left the median at 97-112 ms, as one reader does.

A read holds its place until it has let go of everything it read with (a streamed answer: its
last batch sent, or its client gone, and the worker thread reading a batch for it done).

A streamed answer is also cut short, its place given back, when its client stops taking it
(:class:`Pace`): it takes none of it for ``idle_s`` (``store.admin_read_idle_s``, 30 s), or the
answer is not all taken ``max_s`` after the read took its place (``store.admin_read_max_s``,
300 s). A client that opened a large read and then read a few bytes a second, or none, held its
place for as long as it stayed connected, and every other admin read was 503 meanwhile. Cut, the
answer ends without its last chunk (the client sees a body cut short, never one that looks
whole), the connection is reset (``payorch serve``), and a WARNING says which rule cut it.

A ``HEAD`` of an admin read (:func:`is_head`) reads nothing and takes no place: it is answered
with the headers alone (:func:`headers_only`). It sorted the window, took a place and encoded
every row, all of it thrown away.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Message, Scope, Send

from engine.config import StoreConfig
from ingest.api.problems import ApiProblem
from ingest.errors import IngestError

logger = logging.getLogger("payorch.api")

#: Set in ``scope["state"]`` when a streamed answer is cut short: ``payorch serve``'s connection
#: (``payorch.http_guard``) is then reset, not closed after sending what it still holds.
CUT_SHORT_KEY = "payorch.cut_short"
#: Set in ``scope["state"]`` by the front for a ``HEAD``, which the routes see as a ``GET``.
HEAD_KEY = "payorch.head"
#: Seconds a refused reader is told to wait: a read of a 14-day window takes a few.
RETRY_AFTER_S = 2
#: Seconds a reader is told to wait when this process cannot serve the read at all (an app made
#: without the event store or without a report renderer, as a program embedding ``create_app``
#: may): only starting it otherwise changes that, so a client polling every second only adds load.
#: Its 503 said no Retry-After, where every other 503 of the API says one.
UNSERVED_RETRY_AFTER_S = 3600
#: A streamed answer is handed to the server in pieces of at most this many bytes, each awaited
#: under the idle deadline. A whole batch (6 MB of JSON for 16,384 events) would have to be taken
#: within ``idle_s``; a piece is what a client taking 10 KB a second takes in that time.
PIECE_BYTES = 256 * 1024


def is_head(scope: Scope) -> bool:
    """Whether the request is a ``HEAD``: its route sees a ``GET``, whose body the front drops."""
    return bool(scope.get("state", {}).get(HEAD_KEY, False))


def headers_only(media_type: str) -> Response:
    """The answer to a ``HEAD`` of an admin read: its type, and no length (the ``GET`` streams its
    body, or has to make it to know it; RFC 9110 section 9.3.2 lets a ``HEAD`` leave out what
    only making the body tells)."""
    response = Response(media_type=media_type)
    del response.headers["content-length"]
    return response


def unserved(detail: str) -> ApiProblem:
    """The 503 of a read this process cannot serve however long the client waits (see
    :data:`UNSERVED_RETRY_AFTER_S`)."""
    return ApiProblem("service_unavailable", detail, headers={"Retry-After": str(UNSERVED_RETRY_AFTER_S)})


class AdminReadCutError(IngestError):
    """A streamed admin read cut short by its :class:`Pace`: why, in words for the log."""


def default_limit() -> int:
    """Half the cores this process may run on, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


@dataclass(frozen=True, slots=True)
class Pace:
    """How slowly a streamed admin read's client may take it before the read is cut short."""

    #: The longest the client may take none of the answer (a piece of :data:`PIECE_BYTES` not
    #: taken within it).
    idle_s: float = float(StoreConfig().admin_read_idle_s)
    #: The longest a read may hold its place, from taking it to its answer's last byte.
    max_s: float = float(StoreConfig().admin_read_max_s)

    def __post_init__(self) -> None:
        if not (self.idle_s > 0 and self.max_s > 0):
            raise ValueError("an admin read's idle and total limits must be more than 0 seconds")

    def paced(self, send: Send) -> Send:
        """``send``, the body sent in pieces, each given :attr:`idle_s` to be taken; past it,
        :class:`AdminReadCutError`."""

        async def send_paced(message: Message) -> None:
            if message["type"] != "http.response.body":
                await self._in_time(send, message)
                return
            body = memoryview(message.get("body", b""))
            more_body = message.get("more_body", False)
            for start in range(0, max(len(body), 1), PIECE_BYTES):
                last = start + PIECE_BYTES >= len(body)
                piece = {"type": "http.response.body", "body": body[start : start + PIECE_BYTES]}
                await self._in_time(send, piece | {"more_body": more_body or not last})

        return send_paced

    async def _in_time(self, send: Send, message: Message) -> None:
        try:
            async with asyncio.timeout(self.idle_s):
                await send(message)
        except TimeoutError:
            raise AdminReadCutError(
                f"its client took none of the answer for {self.idle_s:g} s (store.admin_read_idle_s)"
            ) from None


class AdminReadGate:
    """The places for admin reads, and how long a streamed one may hold its place (``pace``);
    used from the event loop's thread only."""

    __slots__ = ("limit", "pace", "running")

    def __init__(self, limit: int, pace: Pace | None = None) -> None:
        if limit < 1:
            raise ValueError("at least one admin read must be allowed at a time")
        self.limit = limit
        self.pace = Pace() if pace is None else pace
        #: Reads holding a place now.
        self.running = 0

    def enter(self) -> Callable[[], None]:
        """A place for one read, and the call that gives it back (only the first call does:
        whichever end of the read comes first may call it). A 503 ``ApiProblem`` with
        ``Retry-After`` when every place is taken."""
        if self.running >= self.limit:
            raise ApiProblem(
                "service_unavailable",
                f"{self.running} admin reads of a time window are running, the most this service runs "
                "at once beside the payments: nothing was read. Retry after Retry-After seconds, or "
                "read one window at a time.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.running += 1
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                self.running -= 1

        return leave
