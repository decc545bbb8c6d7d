"""The HTTP connection of ``payorch serve``: uvicorn's httptools protocol, with the bounds on a
request's head (its request line and header fields) that uvicorn leaves out.

- A head over :data:`MAX_HEAD_BYTES` is answered 431 ``headers_too_large`` and the connection
  closed, or 414 ``uri_too_long`` when the request target alone is over it (RFC 9112 section 3;
  it was 431, which told the client to send fewer headers). httptools gathers a header field
  whole before handing it on, so without a bound one unfinished header of 300 MB held about
  520 MB of the server's memory, on one connection.
- A head must be complete within :data:`HEAD_TIMEOUT_S` of the connection opening or of the
  previous answer on it: 408 ``request_timeout`` and the connection closed when one has begun, a
  bare close when nothing came. Without it, a client sending a header line every few seconds (or
  a bare line break, which begins no request) held its connection, and its file descriptor, for
  ever.
- A new connection that sends nothing is closed after uvicorn's keep-alive timeout, as a
  connection that sends nothing after an answer already is (it was held for ever). That timeout
  is ``payorch serve --keep-alive-timeout`` (5 s by default); when it is longer than
  :data:`HEAD_TIMEOUT_S`, an idle connection is left open that long, and the head's deadline
  starts again with its first byte (the deadline closed idle connections after 10 s).
- Bytes the parser cannot read are answered 400 ``invalid_request`` as problem+json, like every
  other error (uvicorn answers them in plain text). So is a ``Transfer-Encoding`` whose last coding
  is not chunked (RFC 9112 section 6.3: the body's length cannot be told): the parser refuses it
  only once the head is complete, when uvicorn has begun to answer the request, and the
  connection was closed without any answer. So is an HTTP/1.0 request with a
  ``Transfer-Encoding`` (RFC 9112 section 6.1: its framing is faulty); its chunked body was read
  and the payment charged. A body the parser cannot read (a chunk size that
  is no number) is answered 400 too, when that request's answer has not begun: it was closed
  unanswered as well. An HTTP/1.1 request without a Host header, and any request with two or
  with one that names no host and port (``Host: a b/c@d``), is 400 too (RFC 9112 section 3.2: a
  server MUST answer it 400); it was answered as any other. A method the parser does not know
  (``BREW``) is 501 ``method_not_implemented``, whether its head begins a read or follows
  pipelined requests read whole in the same one (it was 400 there).
- A ``POST`` to a route that takes a body (``/v1/payments``, ``/v1/complaints``) with neither a
  ``Content-Length`` nor a ``Transfer-Encoding`` is answered 411 ``length_required`` (RFC 9110
  section 15.5.12; RFC 9112 section 6.3 makes its body empty): a client sending its body "until
  close" (HTTP/1.0 style, or a stream of unknown length) had its payment refused 422 for an empty
  body, which it had sent, and on a kept-alive connection its body was then read as the next
  request and answered 400. The body that comes is thrown away with the lingering close.
- A request line of another HTTP version than 1.0 and 1.1 (``HTTP/2.0``, ``HTTP/0.9``,
  ``HTTP/3.0``) is answered 505 ``http_version_not_supported`` (RFC 9110 section 15.6.6): the
  parser took HTTP/2.0 and HTTP/0.9 heads, and they were answered 200 as HTTP/1.1 requests.
- A request with an ``Upgrade`` header is read as if it had none (RFC 9110 section 7.8 lets a
  server ignore it; payorch speaks HTTP/1.1 only). httptools skips the body of such a request and
  uvicorn threw the rest away, so ``curl --http2`` or Java's ``HttpClient`` (``Upgrade: h2c``)
  had their payments refused for an empty body.
- A request answered while its body is still to come (a 413 on its ``Content-Length`` or past
  64 KiB of a chunked body, a 408 for a body too slow, a 401 before an ``Expect: 100-continue``
  body was asked for) has its answer say ``Connection: close``, and the connection closes. The
  server threw the rest of the body away as it came, for as long as it came: a client streaming
  an endless chunked body after its 413 (24 GB in 15 s here) or trickling one after its 408 held
  its connection for ever. And a client that sent ``Expect: 100-continue``, told no 100, may skip
  its body (RFC 9110 section 10.1.1): its next request on the connection was read as that body.
  The close lingers, as below: a body that comes anyway is thrown away for a while.
- A refusal of a request pipelined behind others (sent before their answers, in the same bytes
  or after them) is sent once their answers are, in order (RFC 9112 section 9.3.2), and nothing
  after it is read. The connection was closed at once: a payment read whole before the bad request
  was charged and never answered, and the bad request had no answer either.
- A client that ends its side of the connection (a half-close) after its request still gets
  the answer; the connection closes after it. uvicorn closed at once, as if the client had gone:
  the payment was charged, and its answer never sent.
- Each of these answers is followed by a lingering close (RFC 9112 section 9.6): the server stops
  reading requests, sends the answer, ends its side of the connection, and throws away what
  still comes until it pauses for :data:`LINGER_S` (for :data:`LINGER_MAX_S` and
  :data:`LINGER_MAX_BYTES` at most) before it closes. Closed at once with the client's
  bytes unread, the connection was reset, and a client still sending its head (a 1 MiB header
  in one go) was told "connection reset by peer" instead of reading the 431.
- An answer the app cut short (an admin read whose client stopped taking it:
  ``ingest.api.admin_reads``) has its connection reset (``SO_LINGER`` 0, as nginx's
  ``reset_timedout_connection``), the app having said why in its own log line. uvicorn closed it
  after sending what it still held, which a client that reads nothing never takes: the
  connection, its file descriptor and megabytes of unsent answer stayed until the client went,
  and uvicorn logged "ASGI callable returned without completing response." as an error.
- A stop (SIGTERM) closes an idle connection at once, as uvicorn does, except one on which the
  next request has begun to arrive: that request is read and answered with ``Connection: close``
  first (:meth:`GuardedHttpToolsProtocol.shutdown`). uvicorn closed it under the request. On a
  connection whose request is being answered, every request begun before the stop (pipelined
  behind it, whole or in part) is answered too, the last with ``Connection: close``; one begun
  after it is answered 503 ``service_unavailable`` with ``Retry-After``, not run. uvicorn closed
  the connection after the first answer: the requests behind it had none, and the client a reset.
- Each of these answers counts in ``payorch_http_responses_total`` (route ``unmatched``; method
  ``other`` when none was read) through :func:`counted_protocol`: the app never sees them, and
  without the count a flood of them was invisible on ``/metrics``.

The body has its own limit and deadline in the app (:func:`ingest.api.front.read_body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
import socket
import struct
import termios
from typing import Any, ClassVar, Protocol
from urllib.parse import unquote_to_bytes

import httptools
import orjson
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from ingest.api.admin_reads import CUT_SHORT_KEY
from ingest.api.front import PAYMENTS_PATH
from ingest.api.json_bodies import JSON_ROUTES
from ingest.api.payments import new_id
from ingest.api.problems import PROBLEMS, problem_document, unknown_method_detail
from ingest.observe.logs import current_request

#: A request line and header fields past this are refused (Node and h11 stop at 16 KiB; room is
#: left for long trace and baggage headers).
MAX_HEAD_BYTES = 32 * 1024
#: A head past the limit by no more than this, all request target so far but its method, may be a
#: target that ends within the limit (a 431) or goes past it (a 414): more of it tells.
TARGET_SLACK_BYTES = 64
#: As long as a body may take (``ingest.api.settings.BODY_TIMEOUT_S``).
HEAD_TIMEOUT_S = 10.0
#: After a refusal, the connection closes once nothing more came for this long ...
LINGER_S = 2.0
#: ... or this long after the refusal, or once this many bytes were thrown away, whichever is
#: first (nginx's lingering close waits for a pause of 5 s, 30 s at most): a client still sending
#: a large body reads its answer rather than a reset, and an endless one is cut off.
LINGER_MAX_S = 30.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
#: The beginning of a request line: its method, a token (RFC 9110 section 5.6.2), and a target.
_REQUEST_LINE_START = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}) [!-~]")
#: A Host header's value (RFC 9110 section 7.2): an IP literal or a registered name, and a port.
_HOST = re.compile(rb"(\[[0-9A-Za-z:.]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]*)(:[0-9]*)?")

logger = logging.getLogger("payorch.api")


#: The targets whose requests take a body: a request to one without ``Content-Length`` or
#: ``Transfer-Encoding`` is 411 (:func:`_length_required_detail`).
_BODY_PATHS = frozenset({PAYMENTS_PATH.encode(), *(path.encode() for _, path in JSON_ROUTES)})


def _length_required_detail(target: bytes) -> str:
    """The 411's detail: why a body needs its length, naming the path (it is one of _BODY_PATHS)."""
    path = unquote_to_bytes(httptools.parse_url(target).path or b"").decode("ascii", "replace")
    return (
        f"A POST to {path} must give its body's length: send Content-Length (or Transfer-Encoding: "
        "chunked). Without either, HTTP/1.1 reads the body as empty and what follows the headers as "
        "the next request (RFC 9112 section 6.3); nothing was done."
    )


def refusal_level(status: int) -> int:
    """The level of a refusal's log line: a client's bad request (4xx: bytes that are no request, a
    head too large or too slow) is no problem of the service, INFO, so that an alert on warnings
    is not set off by what any client on the network can send; a 5xx (a method or an HTTP version
    the service does not implement) stays a WARNING, as every 5xx it answers is one."""
    return logging.INFO if status < 500 else logging.WARNING


class ResponseCounter(Protocol):
    """Where answers are counted (:class:`ingest.api.metrics.ApiMetrics`)."""

    def count_response(self, method: str, route: str | None, status: int | None) -> None: ...


def counted_protocol(responses: ResponseCounter) -> type[GuardedHttpToolsProtocol]:
    """The guarded protocol, counting its own answers in ``responses`` (route ``None``)."""
    return type("CountedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"responses": responses})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools connection, with a bounded request head (the module docstring)."""

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S
    linger_s = LINGER_S
    linger_max_s = LINGER_MAX_S
    linger_max_bytes = LINGER_MAX_BYTES
    responses: ClassVar[ResponseCounter | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True  # no request's head is complete since the last one ended
        self._head_begun = False
        #: Bytes received while a head was unfinished: bounds what httptools gathers meanwhile.
        self._head_bytes = 0
        #: The current head's size as parsed: its target, and each field's name and value.
        self._head_size = 0
        self._target_size = 0  # the current head's request target, as parsed so far
        self._method = ""  # the current head's, once its request line is read
        self._head_at_start = False  # the data being parsed begins a head
        self._messages_at_read = 0  # requests read whole before the data being parsed
        self._oversized = False  # the head parsed was over the limit: it is refused, not run
        self._heads_completed = 0
        self._messages_completed = 0  # requests whose body the parser has read to its end
        #: The loop's time by which the head must be complete; ``None``: no head is awaited.
        self._head_due: float | None = None
        #: The timer that checks it, and the time it was set for (see _start_head_deadline).
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_timer_at = 0.0
        self._lingering: asyncio.TimerHandle | None = None  # refused: what comes is thrown away
        self._linger_ends = 0.0  # the loop's time when a lingering close ends, however much comes
        self._lingered_bytes = 0  # thrown away since the refusal
        #: The head of a request that asked for an upgrade, without its ``Upgrade`` header.
        self._without_upgrade: bytes | None = None
        self._stopping = False  # the server stops (``shutdown``)
        #: Once it stops: how many heads are run (those begun before the stop); later ones are 503.
        self._admitted = 0
        #: Once it stops: the request whose answer closes the connection (the last one read).
        self._closer: _BodyAwareCycle | None = None
        #: A refusal of a request pipelined behind answers still owed: sent once they are (``_refuse``).
        self._owed_refusal: tuple[str, str] | None = None
        self._client_ended = False  # the client ended its side, a refusal owed: nothing to linger for
        self._running: RequestResponseCycle | None = None  # the request whose answer is under way

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        self._start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol's signature
        """The client ended its side of the connection: it sends nothing more, but may still read
        the answers to what it sent (a half-close, as ``printf ... | nc -N`` or a script calling
        ``shutdown(SHUT_WR)`` does). uvicorn closed at once, as if the client had gone, and the
        answer to a payment it had charged was never sent. The connection now closes after the last
        answer; at once when there is none to send or a body can no longer be whole."""
        cycle = self.cycle
        if self._owed_refusal is not None:
            self._client_ended = True
            return True  # the refusal, sent after the answers before it, closes the connection
        if self._lingering is not None or cycle is None or cycle.response_complete or cycle.more_body:
            return None  # closed, as uvicorn does
        last = self.pipeline[0][0] if self.pipeline else cycle  # the pipeline is taken from its end
        last.keep_alive = False
        return True  # the transport stays open for the answers

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            # After a refusal: read only so that the close does not reset the connection.
            self._linger_on(len(data))
            return
        if self._owed_refusal is not None:
            return  # refused, the answers before the refusal not yet sent: what comes is no request
        closer = self._closer
        if closer is not None and closer.response_started and not closer.more_body:
            return  # stopping, the last answer under way: what comes after it is not read
        if self._head_due is None and self._awaiting_head and self._idle():
            self._start_head_deadline()  # the first bytes after an idle spell past the deadline
        completed = self._heads_completed, self._messages_completed
        # Whether this data begins a head: nothing of one came before it.
        self._head_at_start = self._awaiting_head and not self._head_begun and self._head_bytes == 0
        self._messages_at_read = self._messages_completed
        self._feed(data)
        if (self._heads_completed, self._messages_completed) != completed:
            # A head or a request ended in this data; what follows it is body or the next head's
            # beginning. (Only a head's end was looked for: the body that came with a request's end,
            # in a read after its head, counted as the next head, and one of 32 KiB was a 431 that
            # closed the connection unanswered, once the app had the body: a payment charged and
            # never answered.)
            self._head_bytes = 0
        elif self._awaiting_head:
            self._head_bytes += len(data)
        if (self._oversized or self._unfinished_head_too_large()) and not self._refused():
            limit = self.max_head_bytes
            if self._target_size > limit:
                detail = f"The request target (path and query) is over the limit of {limit} bytes."
                self._refuse("uri_too_long", detail)
            else:
                detail = f"The request line and headers are over the limit of {limit} bytes."
                self._refuse("headers_too_large", detail)

    def _unfinished_head_too_large(self) -> bool:
        limit = self.max_head_bytes
        if self._head_bytes <= limit:
            return False
        # All that came is the method and a target within the limit: its end, or more of it, tells.
        in_target = self._head_size == self._target_size <= limit
        in_target = in_target and self._head_bytes - self._target_size <= len(self._method) + 1
        return not (in_target and self._head_bytes <= limit + TARGET_SLACK_BYTES)

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received``, except for an upgrade: the head is parsed again without
        its ``Upgrade`` header by a new parser, followed by what came after it (the body)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._refused():
                return  # refused already, which the parser did not know
            if str(exc) == "Invalid HTTP version":  # well formed (HTTP/3.0, HTTP/1.2), not spoken
                self._refuse_version()
                return
            method = self._unknown_method(data, exc)
            if method is not None:
                self._refuse("method_not_implemented", unknown_method_detail(method))
                return
            # uvicorn's warning is left out: the refusal's own line says it (one line a refusal).
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade as upgrade:
            head, self._without_upgrade = self._without_upgrade, None
            if head is None:  # CONNECT: answered by the app (405), as uvicorn does
                self._unsupported_upgrade_warning()
                return
            self.parser = httptools.HttpRequestParser(self)
            self._feed(head + data[upgrade.args[0] :])

    def _unknown_method(self, data: bytes, exc: httptools.HttpParserError) -> str | None:
        """The method of a request line the parser refused for its method alone: a well-formed
        token it does not know (``BREW / HTTP/1.1``), which is 501 (RFC 9110 section 9.1), not the
        400 of bytes that are no request. The refused head begins ``data``, or follows the
        requests read whole in it (pipelined: it was 400, where the same head beginning a read was
        501). ``None`` when where it begins cannot be told (``data`` began within a request) or it
        is no request line."""
        if not isinstance(exc, httptools.HttpParserInvalidMethodError) or not self._head_at_start:
            return None
        head = _after_requests(data, self._messages_completed - self._messages_at_read)
        line = _REQUEST_LINE_START.match(head.lstrip(b"\r\n"))
        return None if line is None else line.group(1).decode("ascii")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        self._head_size = self._target_size = 0
        self._method = ""

    def on_url(self, url: bytes) -> None:
        self._method = self.parser.get_method().decode("latin-1")  # read before the target
        self._head_size += len(url)
        self._target_size += len(url)
        if self._head_size <= self.max_head_bytes:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and the line break
        if self._head_size <= self.max_head_bytes:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._heads_completed += 1
        self._awaiting_head = self._head_begun = False
        self._cancel_head_deadline()
        if self._refused():
            return  # refused: what the parser still finds in the same bytes is not run
        if self._head_size > self.max_head_bytes:
            self._oversized = True  # answered by data_received once the parser returns
            return
        if self.parser.get_http_version() not in ("1.0", "1.1"):
            self._refuse_version()  # the parser takes HTTP/0.9 and HTTP/2.0 heads
            return
        codings = [value for name, value in self.headers if name == b"transfer-encoding"]
        if codings and self.parser.get_http_version() == "1.0":
            # RFC 9112 section 6.1: its framing is faulty. HTTP/1.0 has no chunked coding, and a
            # proxy of that version may have passed the body on as it came, with more behind it.
            self._refuse("invalid_request", "An HTTP/1.0 request cannot have a Transfer-Encoding.")
            return
        if codings and codings[-1].rpartition(b",")[2].strip().lower() != b"chunked":
            detail = "Transfer-Encoding must end with chunked: the body's length cannot be told otherwise."
            self._refuse("invalid_request", detail)
            return
        hosts = [value for name, value in self.headers if name == b"host"]
        if len(hosts) != 1 and self.parser.get_http_version() == "1.1":
            shown = "no Host header" if not hosts else "more than one Host header"
            self._refuse(
                "invalid_request", f"An HTTP/1.1 request needs one Host header; this one has {shown}."
            )
            return
        if len(hosts) > 1 or not all(_HOST.fullmatch(host) for host in hosts):
            self._refuse("invalid_request", "The Host header must be one host name or address, and a port.")
            return
        method = self.parser.get_method()
        if method == b"POST" and not codings and self._takes_body() and not self._has_length():
            self._refuse("length_required", _length_required_detail(self.url))
            return
        if self.parser.should_upgrade() and method != b"CONNECT":
            # The parser skips the body of an upgrade, and stops: the head is parsed again (_feed).
            version = self.parser.get_http_version().encode()
            lines = [b"%s %s HTTP/%s\r\n" % (method, self.url, version)]
            lines += [b"%s: %s\r\n" % field for field in self.headers if field[0] != b"upgrade"]
            self._without_upgrade = b"".join(lines) + b"\r\n"
            return
        app, late = self.app, self._stopping and self._heads_completed > self._admitted
        if late:
            self.app = self._stopped_answer  # begun after the stop: not run (503)
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        if self.cycle is not None:
            self.cycle.__class__ = _BodyAwareCycle  # uvicorn builds its cycles itself
            if self._stopping:
                self._close_after(self.cycle)

    def _takes_body(self) -> bool:
        """Whether the request's target is a route that takes a body (a payment, a complaint)."""
        with contextlib.suppress(httptools.HttpParserInvalidURLError):
            return unquote_to_bytes(httptools.parse_url(self.url).path or b"") in _BODY_PATHS
        return False

    def _has_length(self) -> bool:
        return any(name == b"content-length" for name, _ in self.headers)

    def _close_after(self, cycle: RequestResponseCycle) -> None:
        """Once the server stops, ``cycle``'s answer is the connection's last (``Connection:
        close``), unless a request read after it is answered after it (then that one's is)."""
        assert isinstance(cycle, _BodyAwareCycle)  # noqa: S101 - the guard builds every cycle so
        previous, self._closer = self._closer, cycle
        cycle.closes = True
        if previous is not None and previous is not cycle and not previous.response_started:
            previous.closes = previous.more_body  # an early answer still closes

    async def _stopped_answer(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """The answer to a request that began to arrive after the server began to stop, behind
        one still being answered (pipelined): 503 ``service_unavailable``, not run, with
        ``Retry-After``; its connection closes after it."""
        request_id = new_id("req")
        detail = (
            "The service is stopping: this request arrived after the stop began and was not run "
            "(nothing was charged). Retry it on a new connection."
        )
        token = current_request.set(request_id)
        try:
            logger.log(refusal_level(503), "refused a request (service_unavailable): %s", detail)
        finally:
            current_request.reset(token)
        if self.responses is not None:
            method = scope["method"] if scope["type"] == "http" else "other"
            self.responses.count_response(method, None, 503)
        document = problem_document("service_unavailable", detail, request_id, root_path=self.root_path)
        body = orjson.dumps(document)
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", b"%d" % len(body)),
            (b"request-id", request_id.encode()),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, _resetting_when_cut(cycle, app))

    def on_body(self, body: bytes) -> None:
        if not self._oversized and not self._refused():
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._messages_completed += 1
        if self._oversized or self._refused() or self._without_upgrade is not None:
            return
        super().on_message_complete()
        self._awaiting_head = True

    def on_response_complete(self) -> None:
        done = self._running
        closes = isinstance(done, _BodyAwareCycle) and done.closes
        if closes:
            self.pipeline.clear()  # none is read after a closing answer: kept from running, were one
        super().on_response_complete()
        if closes:
            self._close_lingering()  # what may still come is read and thrown away
            return
        if self._owed_refusal is not None and self._idle() and not self.transport.is_closing():
            code, detail = self._owed_refusal
            self._owed_refusal = None
            self._unset_keepalive_if_required()
            self._refuse(code, detail)  # every answer before it sent: the refusal's turn
            return
        # Not while a pipelined request (started just now) is answered: its head is complete.
        if not self.transport.is_closing() and self._idle():
            self._start_head_deadline()

    def shutdown(self) -> None:
        """The server stops (SIGTERM): an idle connection is closed at once, as uvicorn does, not
        after the keep-alive timeout. Every request begun before the stop is run and answered: the
        one being answered, those queued behind it (pipelined), and one that has begun to arrive
        (part of its head read, or its bytes waiting in the socket); the last answer says
        ``Connection: close``, and the connection closes lingering after it. uvicorn closed it
        under the arriving request, and after the answer being sent when it was busy, unanswered
        the requests behind (the client of a payment cannot tell whether it was charged). A
        request that begins after the stop, behind answers still owed, is answered 503 and not run
        (:meth:`_stopped_answer`); one sent after the last answer has begun is not read (that
        answer said the connection closes). A head still has to come within
        :data:`HEAD_TIMEOUT_S`, and the stop's grace bounds the whole."""
        self._stopping = True
        reading_body = not self._idle() and self.cycle.more_body  # what waits is its body
        arriving = self._head_begun or self._head_bytes > 0 or (not reading_body and self._bytes_waiting())
        self._admitted = self._heads_completed + arriving
        if self.transport.is_closing() or self._refused():
            return  # closing already, or once the refusal owed is sent
        if self._idle() and not arriving:
            super().shutdown()
            return
        self._unset_keepalive_if_required()
        if not arriving:
            self._close_after(self.cycle)  # the last request read; pipelined ones before it run

    def _bytes_waiting(self) -> bool:
        """Whether bytes the event loop has not read yet wait in the connection's socket."""
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        waiting = bytearray(struct.calcsize("i"))
        try:
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, waiting)
        except OSError:
            return False
        return int(struct.unpack("i", waiting)[0]) > 0

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to bytes its parser cannot read (a malformed request line or header,
        # a method it does not know) is text/plain: payorch answers every error as problem+json.
        # (``msg`` is uvicorn's fixed text, not the client's bytes.)
        self._refuse("invalid_request", f"The request is not valid HTTP/1.1 ({msg.rstrip('.').lower()}).")

    def _refused(self) -> bool:
        """A refusal was sent, or is owed: what the parser still reads is not run."""
        return self._lingering is not None or self._owed_refusal is not None

    def _idle(self) -> bool:
        """No request is being answered on this connection."""
        return self.cycle is None or self.cycle.response_complete

    def _refuse_version(self) -> None:
        self._refuse("http_version_not_supported", "The request is not HTTP/1.1 or HTTP/1.0.")

    def _start_head_deadline(self) -> None:
        """The head must be complete within :data:`HEAD_TIMEOUT_S` from now.

        The deadline starts again after every answer of a keep-alive connection and ends with the
        next head, so a timer made and cancelled each time cost 2.8 µs a request. The connection
        keeps one timer instead: a deadline moved later is found when it fires, and it is set again
        for the new time; it still fires at the deadline's own time, as before."""
        due = self.loop.time() + self.head_timeout_s
        self._head_due = due
        if self._head_timer is None:
            self._head_timer_at = due
            self._head_timer = self.loop.call_at(due, self._head_timer_fired)

    def _cancel_head_deadline(self) -> None:
        self._head_due = None  # a timer still set finds no deadline when it fires

    def _head_timer_fired(self) -> None:
        self._head_timer = None
        due = self._head_due
        if due is None:
            return
        if due != self._head_timer_at:  # moved on since the timer was set: wait for the new one
            self._head_timer_at = due
            self._head_timer = self.loop.call_at(due, self._head_timer_fired)
            return
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        self._head_due = None
        if self.transport.is_closing() or self._lingering is not None:
            return
        if not self._head_begun and self._head_bytes == 0:
            # Nothing was asked: an idle connection, closed after the keep-alive timeout (which may
            # be longer: --keep-alive-timeout); the deadline starts again with a head's first byte.
            return
        detail = f"The request line and headers did not arrive within {self.head_timeout_s:g} s."
        self._refuse("request_timeout", detail)

    def _refuse(self, code: str, detail: str) -> None:
        """Answer ``code`` and close lingering, when no request is being answered on this connection
        (the head deadline runs only between answers) or the body of the one being answered cannot
        be read (the app then sees the client leave). When the refused bytes follow requests whose
        answers are still owed (pipelined), the refusal is sent after those answers, in the order the
        requests came (RFC 9112 section 9.3.2); the connection was closed at once, and a payment
        read whole in the same bytes was charged and never answered. Only a body whose answer has
        begun, which the answer cannot be told apart from, closes the connection at once."""
        self._cancel_head_deadline()
        if self._refused() or self.transport.is_closing():
            return
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self.pipeline and cycle.more_body:
                # The bytes are the body of a request waiting its turn: it is refused in its place.
                self.pipeline.popleft()
                cycle = self.pipeline[0][0] if self.pipeline else self._running
                if cycle is not None:
                    self.cycle = cycle
            if cycle is not None and (self.pipeline or not cycle.more_body):
                self._owed_refusal = code, detail  # a later request's: answered after the owed ones
                return
        counted_by_app = cycle is not None and not cycle.response_complete
        if cycle is not None and counted_by_app:
            if cycle.response_started:
                # Its answer has begun: the refusal cannot be told apart from it.
                self.transport.close()
                return
            cycle.disconnected = True  # before, the connection was closed unanswered
            cycle.message_event.set()
        request_id = new_id("req")
        # The line names the request id the answer gives (its body and Request-Id header).
        token = current_request.set(request_id)
        try:
            logger.log(refusal_level(PROBLEMS[code].status), "refused a request (%s): %s", code, detail)
        finally:
            current_request.reset(token)
        if self.responses is not None and not counted_by_app:
            self.responses.count_response(self._method, None, PROBLEMS[code].status)
        body = orjson.dumps(problem_document(code, detail, request_id, root_path=self.root_path))
        head = [STATUS_LINE[PROBLEMS[code].status]]
        for name, value in self.server_state.default_headers:
            head.append(b"%s: %s\r\n" % (name, value))
        head.append(b"content-type: application/problem+json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"request-id: %s\r\n" % request_id.encode())
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Stop reading requests, end this side of the connection after the answer written, and
        throw away what still comes until it pauses for :data:`LINGER_S` (at most
        :data:`LINGER_MAX_S` or :data:`LINGER_MAX_BYTES`) before closing."""
        self._cancel_head_deadline()
        if self._client_ended:
            self.transport.close()  # after the answer written: nothing more can come
            return
        self._linger_ends = self.loop.time() + self.linger_max_s
        self._lingering = self.loop.call_later(self.linger_s, self.transport.close)
        try:
            self.transport.write_eof()  # after the answer: the client reads it, then the end
        except OSError:  # the client has reset the connection already (it read the answer and left)
            self.transport.close()
            return
        self.flow.resume_reading()  # should flow control have paused it: what comes is still read

    def _linger_on(self, received: int) -> None:
        """``received`` more bytes thrown away: the close waits for the next pause, unless the
        lingering is over (too long, or too much)."""
        assert self._lingering is not None  # noqa: S101 - called while lingering only
        self._lingering.cancel()
        self._lingered_bytes += received
        left = self._linger_ends - self.loop.time()
        if left <= 0 or self._lingered_bytes > self.linger_max_bytes:
            self.transport.close()
            return
        self._lingering = self.loop.call_later(min(self.linger_s, left), self.transport.close)


class _MessageCount:
    """Parser callbacks that count the requests read whole (:func:`_after_requests`)."""

    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


def _requests_in(data: bytes) -> int:
    """How many requests a parser of its own reads whole in ``data``, until it cannot read on."""
    counted = _MessageCount()
    parser = httptools.HttpRequestParser(counted)
    parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn's parser reads
    with contextlib.suppress(httptools.HttpParserError, httptools.HttpParserUpgrade):
        parser.feed_data(data)  # the requests before an error are counted
    return counted.complete


def _after_requests(data: bytes, requests: int) -> bytes:
    """``data``, which begins a request, after the first ``requests`` read whole in it: the
    shortest beginning that holds them all is found by halving (a parser cannot tell where it
    stopped), about 18 reads of ``data`` for the 256 KiB the event loop reads at most at once."""
    if requests == 0:
        return data
    low, high = 0, len(data)
    while low < high:
        middle = (low + high) // 2
        if _requests_in(data[:middle]) >= requests:
            high = middle
        else:
            low = middle + 1
    return data[low:]


def _resetting_when_cut(cycle: RequestResponseCycle, app: ASGI3Application) -> ASGI3Application:
    """``app``, the connection reset when it cut its answer short (the module docstring)."""

    async def run(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await app(scope, receive, send)
        state = scope.get("state") or {}
        if state.get(CUT_SHORT_KEY) and not (cycle.response_complete or cycle.disconnected):
            transport = cycle.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:  # closed with a reset: the unsent answer is dropped at once
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            cycle.disconnected = True  # gone: uvicorn neither closes it again nor logs an error

    return run


class _BodyAwareCycle(RequestResponseCycle):
    """uvicorn's request cycle, closing the connection after an answer begun while the request's
    body is still to come (the module docstring): the answer says ``Connection: close``, and the
    guard closes lingering once it is sent. uvicorn kept the connection and read the rest of the
    body, however long, only to throw it away; and a client told no 100 may skip its body."""

    #: Answered early, or the last answer of a stopping server: the connection closes lingering
    #: once the answer is sent.
    closes = False

    async def send(self, message: ASGISendEvent) -> None:
        if not self.response_started and self.more_body and not self.disconnected:
            self.closes = True
        if self.closes and not self.response_started and not self.disconnected:
            self.keep_alive = False  # uvicorn says Connection: close ...
            await super().send(message)
            self.keep_alive = True  # ... and the guard closes lingering, not uvicorn at once
            return
        await super().send(message)
