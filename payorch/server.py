"""Running the API under uvicorn: what ``payorch serve`` does after parsing its options.

SIGINT, SIGTERM and SIGHUP stop the service gracefully: no new requests, payments in flight
drained, every queued write committed. How that went is the last log line, and what
:func:`run_server` returns to decide the exit code (0 for a complete drain), instead of uvicorn's
habit of dying by the signal afterwards. ``payorch demo`` runs the same server, with a
:data:`Companion` beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO

import uvicorn

from engine.complaints import Complaint
from engine.config import PlatformConfig
from engine.contracts import ContractViolation
from engine.errors import PayorchError
from ingest.api.app import create_app
from ingest.api.idempotency import sweep_unpublished_secrets
from ingest.api.metrics import end_multiprocess_values, start_multiprocess_values
from ingest.api.parts import Parts, Shutdown
from ingest.api.reports import ReportFormat
from ingest.api.settings import Settings
from ingest.observe.logs import DirectHandler
from ingest.observe.telemetry import ENVIRONMENT, GlobalTags, resource_attributes
from ingest.private_files import exposed, make_private_folder, private_umask
from ingest.store.reads import ReportTables, Window
from payorch.http_guard import counted_protocol
from payorch.signals import stop_signals

LOGGER = "payorch.serve"
#: Work that runs in a thread of its own once the server takes requests (the demo's traffic). It
#: is given a function that says whether the server has begun to stop, and must not outlive the
#: server by more than :data:`COMPANION_GRACE_S`: the process does not wait for it after that.
Companion = Callable[[Callable[[], bool]], None]
COMPANION_GRACE_S = 5.0


class ServeError(Exception):
    """The service could not start; the message is one line for the operator."""


class PortInUseError(ServeError):
    """The port is another process's: the demo says how to run a second one beside it."""


def deployment_environment(environ: Mapping[str, str]) -> str:
    """The ``deployment.environment.name`` tag of the process's log lines and spans:
    ``PAYORCH_ENVIRONMENT``, else OpenTelemetry's ``OTEL_RESOURCE_ATTRIBUTES`` when it names one
    (``development`` overrode it on every span and line), else ``development``."""
    return (
        environ.get("PAYORCH_ENVIRONMENT") or resource_attributes(environ).get(ENVIRONMENT) or "development"
    )


def log_failed_start(message: str, stream: IO[bytes], environment: str) -> None:
    """``message``, why the service could not start, as a line of its JSON log on ``stream``: at
    level ``error`` from ``payorch.serve``, with the global tags, as every other line."""
    handler = DirectHandler(stream, GlobalTags.of(os.environ, environment).as_dict())
    handler.handle(logging.LogRecord(LOGGER, logging.ERROR, __file__, 0, "%s", (message,), None))
    handler.close()


def unbegun(signal_name: str) -> Stopped:
    """How a start ends that ``signal_name`` stopped before it began (its modules loading, its
    config read): nothing was made, and it says so as a stop while starting does."""
    return Stopped(signal_name, 0, Shutdown(0, 0, True), 0.0, before_serving=True)


def stop_unbegun(signal_name: str, stream: IO[bytes], environ: Mapping[str, str]) -> Stopped:
    """:func:`unbegun`, said as the last line of the JSON log on ``stream``."""
    stopped = unbegun(signal_name)
    handler = DirectHandler(stream, GlobalTags.of(environ, deployment_environment(environ)).as_dict())
    handler.handle(logging.LogRecord(LOGGER, logging.INFO, __file__, 0, "%s", (stopped.summary(),), None))
    handler.close()
    return stopped


@dataclass(frozen=True, slots=True)
class Stopped:
    """How the service ended: the signal that stopped it, the payments in flight then, and how the
    app's stop went (``None``: a second Ctrl-C forced it down before the app could stop, the
    signal ``forced_by``)."""

    signal: str | None
    in_flight: int
    shutdown: Shutdown | None
    grace_s: float
    forced_by: str | None = None
    #: The signal came while the service was starting: it never took a request.
    before_serving: bool = False
    #: The app started (migrations, crash recovery), but the stop came before the service said it
    #: listened, and no request reached it: nothing was in flight, whatever the stop forced.
    unserved: bool = False
    #: Log lines the log stream did not take (in time) since the start: its reader fell behind or
    #: stopped reading. Those of the app's pipe are in its last ``observer/dropped`` report too.
    log_lines_dropped: int = 0

    @property
    def complete(self) -> bool:
        return self.shutdown is not None and self.shutdown.complete

    def summary(self) -> str:
        """One line for the operator, saying when log lines were dropped: a log reader that fell
        behind (or resumes reading later) learns of the gap."""
        summary = self._how()
        dropped = self.log_lines_dropped
        if dropped:
            summary += f" ({dropped} log line{'' if dropped == 1 else 's'} could not be written)"
        return summary

    def _how(self) -> str:
        stopped = "stopped" if self.signal is None else f"stopped on {self.signal}"
        if self.before_serving:
            return f"{stopped} while starting, before it took requests"
        shutdown = self.shutdown
        if self.unserved:
            stopped += " while starting"
            if shutdown is None:
                # A second Ctrl-C after crash recovery ended: "payments in flight were cut short"
                # was said of a service that had taken none.
                forced = "forced" if self.forced_by in (None, self.signal) else f"{self.forced_by} forced it"
                return (
                    f"{stopped}, before it took requests, and {forced} without closing the store "
                    "(no payments were in flight)"
                )
            if shutdown.complete:  # a stop during crash recovery said "no payments were in flight"
                return f"{stopped}, before it took requests"
        if shutdown is None:
            # SIGTERM then Ctrl-C: "stopped on SIGTERM without draining" would say SIGTERM does not drain.
            forced = "" if self.forced_by in (None, self.signal) else f", then {self.forced_by} forced it,"
            return (
                f"{stopped}{forced} without draining: payments in flight were cut short "
                "(the next start settles them)"
            )
        # uvicorn lets open requests end before the app stops, so most payments end before the
        # app's own drain begins: count from the signal.
        count = max(self.in_flight, shutdown.drained + shutdown.left) - shutdown.left
        drained = "no payments were in flight" if count == 0 else f"drained {_payments(count)} in flight"
        if shutdown.store_failure is not None:
            return f"{stopped}: {shutdown.store_failure}; the next start settles the payments it cut short"
        if shutdown.left:
            were, them = ("was", "it") if shutdown.left == 1 else ("were", "them")
            if count == 0:  # not "no payments were in flight": these were
                drained = "none drained"
            return (
                f"{stopped}, but {_payments(shutdown.left)} still in flight after {self.grace_s:.0f} s "
                f"{were} cut short ({drained}; the next start settles {them})"
            )
        if not shutdown.committed:
            return f"{stopped}, but the store could not commit every queued write ({drained})"
        return f"{stopped}; {drained}"


def _payments(count: int) -> str:
    return f"{count} payment{'' if count == 1 else 's'}"


def cut_short_without_traceback(record: logging.LogRecord) -> bool:
    """A log filter for uvicorn's records: a request a forced stop cancelled is not logged as
    "Exception in ASGI application" with a traceback. payorch has answered it (503
    ``payment_interrupted``) and says how the stop went; whether uvicorn's record made it out
    before the process ended depended on timing. Nor is the app's lifespan a forced stop
    cancelled: Starlette sends its traceback as the text of ``lifespan.shutdown.failed``, which
    uvicorn logs as an error of its own (when the lifespan's task is cancelled before it ends)."""
    if record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError):
        return False
    text = record.msg
    return not (
        isinstance(text, str)
        and text.startswith("Traceback (most recent call last):")
        and text.rstrip().endswith("CancelledError")
    )


class _Server(uvicorn.Server):
    """uvicorn's server, without re-raising the signal that stopped it once it has shut down (the
    process would then die by SIGTERM, or raise KeyboardInterrupt for SIGINT, whatever the drain
    did): ``payorch serve`` exits by how the stop went instead."""

    def __init__(
        self, config: uvicorn.Config, in_flight: Callable[[], int], companion: Companion | None = None
    ) -> None:
        super().__init__(config)
        self.received: list[int] = []
        self.forced_by: int | None = None  # the signal that forced a stop under way
        self.in_flight_at_signal = 0
        self.listening = False  # said it listens: the start is over
        self._in_flight = in_flight
        self._companion = companion
        self.companion: threading.Thread | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            # The app started (migrations, recovery): requests are taken now.
            host = self.config.host
            shown = f"[{host}]" if ":" in host else host
            logging.getLogger(LOGGER).info("listening on http://%s:%d", shown, self.config.port)
            self.listening = True
        if self.started and self._companion is not None:
            # A thread, not a task: whatever it does (a blocking HTTP client) never holds the loop.
            self.companion = threading.Thread(
                target=self._companion,
                args=(lambda: self.should_exit,),
                name="payorch-companion",
                daemon=True,
            )
            self.companion.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._take_waiting_connections(sockets or [])
        await super().shutdown(sockets)

    async def _take_waiting_connections(self, sockets: list[socket.socket]) -> None:
        """Take the connections the kernel completed but the event loop had not yet accepted when
        the stop came (a busy loop leaves them queued): they join the connections the stop looks
        at, so a request already sent on one is answered (``payorch.http_guard``). Closing the
        listening socket reset them: of 256 clients sending payments on new connections around a
        SIGTERM, up to 67 (in 8 runs of 10) sent their payment and got "connection reset by
        peer", unable to tell whether it was charged (it was not); none in 10 runs since. The
        listeners close before the loop runs again, so none joins the queue meanwhile."""
        loop = asyncio.get_running_loop()
        config = self.config
        factory = partial(  # as uvicorn builds its connections (Server.startup)
            config.http_protocol_class,  # type: ignore[call-arg]  # a Protocol class, with uvicorn's arguments
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        waiting: list[socket.socket] = []
        for listening in sockets:
            while True:
                try:
                    accepted, _ = listening.accept()
                except (BlockingIOError, InterruptedError):
                    break  # none left waiting
                except OSError as exc:  # out of file descriptors, or the socket is gone
                    logging.getLogger(LOGGER).warning("stop: connections left waiting: %s", exc)
                    break
                waiting.append(accepted)
        for server in self.servers:
            server.close()  # before the loop runs again: none comes between the two
        for accepted in waiting:
            accepted.setblocking(False)
            await loop.connect_accepted_socket(factory, accepted)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {
            number: signal.signal(number, self.on_signal) for number in stop_signals(with_interrupt=True)
        }
        try:
            yield
        finally:
            for number, handler in original.items():
                signal.signal(number, handler)

    def on_signal(self, number: int, frame: FrameType | None) -> None:
        if not self.received:
            self.in_flight_at_signal = self._in_flight()
        self.received.append(number)
        if self.should_exit and number == signal.SIGINT and self.forced_by is None:
            self.forced_by = number
        self.handle_exit(number, frame)  # the first stops gracefully, a second SIGINT forces it


class _SignalsAtStart:
    """SIGINT, SIGTERM and SIGHUP (the ones :meth:`_Server.capture_signals` takes) while the start
    builds the app, noted instead of acted on. Python's Ctrl-C raised KeyboardInterrupt wherever
    the start was (or DuckDB's "Query interrupted" in a migration, or a rollback's error named as
    the database's fault), and SIGTERM or SIGHUP killed the process: a new data folder was left
    half made. The start looks at :attr:`received` before it serves; once :meth:`hand_to` names
    the server, a signal stops it as uvicorn's handler would. A second Ctrl-C forces the start
    down (KeyboardInterrupt), as a second one forces a stop.

    ``noted`` is where the command noted SIGTERM and SIGHUP before (``payorch.cli``'s
    ``_stops_noted``, while it loaded): read once this class takes the signals, so that one noted
    in between is not lost."""

    def __init__(self, noted: Sequence[str] = ()) -> None:
        self.received: str | None = None
        self._noted = noted
        self._original: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        self._forward: Callable[[int, FrameType | None], None] | None = None

    def __enter__(self) -> _SignalsAtStart:
        if threading.current_thread() is threading.main_thread():
            handled = stop_signals(with_interrupt=True)
            self._original = {number: signal.signal(number, self._note) for number in handled}
        if self.received is None and self._noted:
            self.received = self._noted[0]
        return self

    def __exit__(self, *_: object) -> None:
        for number, handler in self._original.items():
            signal.signal(number, handler)

    def hand_to(self, handler: Callable[[int, FrameType | None], None]) -> None:
        self._forward = handler

    def _note(self, number: int, frame: FrameType | None) -> None:
        if self._forward is not None:
            self._forward(number, frame)
            return
        if self.received is None:
            self.received = signal.Signals(number).name
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a one-line error, not uvicorn's
    log line and exit code 3."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        refused = PortInUseError if exc.errno == errno.EADDRINUSE else ServeError
        raise refused(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _render_report(
    config: PlatformConfig, tables: ReportTables, window: Window, output: ReportFormat
) -> bytes:
    # Polars and the analytics load with the first report asked for, not at every start.
    from payorch.report import render_tables  # noqa: PLC0415

    return render_tables(config, tables, window, output)


def _map_complaint(
    config: PlatformConfig, complaint: Complaint, violations: Sequence[ContractViolation]
) -> tuple[str, str]:
    from payorch.report import map_complaint  # noqa: PLC0415 - as for _render_report

    return map_complaint(config, complaint, violations)


@private_umask()  # what it creates (database, log, Prometheus's values) is its owner's alone
def run_server(
    config: PlatformConfig,
    data_dir: Path,
    host: str,
    port: int,
    *,
    log_file: str | None = None,
    companion: Companion | None = None,
    keep_alive_s: int = 5,
    root_path: str = "",
    config_path: Path | None = None,
    take_over: str | None = None,
    instance_name: str | None = None,
    noted: Sequence[str] = (),
) -> Stopped:
    """Build the app over ``config`` and serve it until SIGINT/SIGTERM/SIGHUP (which drain
    payments).

    The JSON log goes to stderr, or appended to ``data_dir/log_file``; ``companion`` runs beside
    the server once it takes requests. A connection idle for ``keep_alive_s`` is closed, a new one
    that sends nothing too. ``root_path`` is the prefix a reverse proxy serves the app under.
    ``config_path`` is the file ``config`` was read from, if any: its mode is checked.
    ``take_over`` and ``instance_name``: whose data folder this start may take over, and the name
    it goes by there (``ingest.store.ownership``). ``noted``: the signals the command noted
    while it loaded (``payorch.cli``'s ``_stops_noted``); one there ends the start before it
    begins, nothing made (:func:`unbegun`).
    """
    with _SignalsAtStart(noted) as at_start:
        if at_start.received is not None:
            return unbegun(at_start.received)
        # The port first: one in use leaves nothing behind (no data folder, database or log made).
        listening = _listen(host, port)
        try:
            made = make_private_folder(data_dir)
            sharing = _share(data_dir)
        except OSError as exc:
            listening.close()
            raise ServeError(f"cannot create the data folder {data_dir}: {_unmade(data_dir, exc)}") from None
        try:
            stopped = _serve(
                listening,
                config,
                data_dir,
                host,
                port,
                at_start=at_start,
                log_file=log_file,
                companion=companion,
                keep_alive_s=keep_alive_s,
                root_path=root_path,
                config_path=config_path,
                owner=(take_over, instance_name),
            )
        except (ServeError, KeyboardInterrupt):
            _unmake(listening, made, sharing)
            raise
        except BaseException:
            os.close(sharing)
            raise
    if stopped.before_serving:
        _unmake(listening, made, sharing)  # as a start that failed: it served nothing, none of it is needed
    else:
        os.close(sharing)
    return stopped


def _unmade(data_dir: Path, error: OSError) -> str:
    """Why the data folder could not be made, naming a link to nowhere on the way: the system's
    own word for one was "File exists" (``--data`` a link whose folder was moved or not mounted)."""
    for folder in (*reversed(data_dir.parents), data_dir):
        if folder.is_symlink() and not folder.exists():
            return f"{folder} is a link to {os.readlink(folder)}, which does not exist"
    return str(error.strerror)


def _share(data_dir: Path) -> int:
    """A descriptor of ``data_dir`` holding a shared lock (``flock``) on it while the service
    starts and runs, released when it is closed: the mark that a ``payorch serve`` uses the folder
    (see :func:`_unmake`). On a file system without locks it holds none.

    A start that finds the folder held by no other takes the lock exclusive first, for as long as
    it sweeps the key secret files a start cut short left unpublished
    (:func:`~ingest.api.idempotency.sweep_unpublished_secrets`), then shares it: another start
    writes its own only once it holds the lock, so none is swept as it is written. A start that
    finds the lock exclusive waits for it (a sweep, or :func:`_unmake`'s removal: moments) up to
    :data:`SHARE_WAIT_S`, where it went on without one, unseen by the next start's sweep. Without
    locks nothing is swept."""
    descriptor = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another start or service holds it
        _shared(descriptor)
        return descriptor
    except OSError:  # a file system without locks: whether another uses the folder is unknown
        return descriptor
    try:
        sweep_unpublished_secrets(data_dir)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_SH)  # shared from now on
    return descriptor


#: How long a start waits for another's exclusive lock on the data folder (see :func:`_share`).
SHARE_WAIT_S = 5.0


def _shared(descriptor: int) -> None:
    """A shared lock on ``descriptor``, once no other process holds it exclusive (or after
    :data:`SHARE_WAIT_S`: then none, as on a file system without locks; nothing hangs on it)."""
    deadline = time.monotonic() + SHARE_WAIT_S
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)
        except OSError:
            return
        else:
            return


def _unmake(listening: socket.socket, made: Path | None, sharing: int) -> None:
    """Undo a start that ended before it served: a start that failed (or a signal stopped) leaves
    nothing in the folders it made (a missing Stripe key left a new data folder holding a
    database, a secret, the simulated ledger). ``sharing`` is :func:`_share`'s descriptor.

    Only a folder no other ``payorch serve`` uses is removed: two started at once on a new folder
    (a unit started twice, a script run in two terminals), the one that made it could lose the
    database to the other and remove the folder under it, its database, key secret and ledger
    with it, while the other served payments into files no longer on disk."""
    listening.close()
    try:
        if made is not None and _alone(sharing):
            shutil.rmtree(made, ignore_errors=True)
    finally:
        os.close(sharing)


def _alone(sharing: int) -> bool:
    """Whether this process is the only ``payorch serve`` holding the folder of ``sharing``: its
    shared lock becomes exclusive only then (a file system without locks: taken to be alone)."""
    try:
        fcntl.flock(sharing, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def _serve(
    listening: socket.socket,
    config: PlatformConfig,
    data_dir: Path,
    host: str,
    port: int,
    *,
    at_start: _SignalsAtStart,
    log_file: str | None,
    companion: Companion | None,
    keep_alive_s: int,
    root_path: str,
    config_path: Path | None,
    owner: tuple[str | None, str | None] = (None, None),
) -> Stopped:
    """:func:`run_server` once its socket listens and its data folder is there; ``owner``: its
    ``take_over`` and ``instance_name``."""
    log_stream = _stderr() if log_file is None else _log_file(data_dir / log_file)
    settings = Settings(
        config=config,
        data_dir=data_dir,
        environ=dict(os.environ),
        environment=deployment_environment(os.environ),
        log_stream=log_stream,  # JSON lines (ingest.observe.logs)
        report_renderer=partial(_render_report, config),
        root_path=root_path,
        complaint_mapper=partial(_map_complaint, config),
        take_over=owner[0],
        instance_name=owner[1],
    )
    try:
        start_multiprocess_values(settings.environ)  # a start counts from zero
        app = create_app(settings)
    except (PayorchError, OSError) as exc:
        problem = _os_problem(exc) if isinstance(exc, OSError) else str(exc)
        raise _start_failed(problem, None if log_file is None else log_stream) from None
    # The app pipes its loggers' records off the event loop while it runs (ingest.observe.logs);
    # this handler writes what comes before and after, in the same JSON form.
    root = logging.getLogger()
    direct = DirectHandler(log_stream, GlobalTags.of(settings.environ, settings.environment).as_dict())
    root.addHandler(direct)
    root.setLevel(logging.INFO)
    logging.getLogger("uvicorn.error").addFilter(cut_short_without_traceback)
    for warning in _start_warnings(config, config_path, data_dir):
        logging.getLogger(LOGGER).warning("%s", warning)
    if config.escalations.webhook_url is not None:  # the URL is not shown: it may hold a token
        logging.getLogger(LOGGER).warning(
            "escalations are not built yet: escalations.webhook_url is never called, "
            "and a report's mismatch opens no escalation"
        )
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=None,  # uvicorn's records go to the app's JSON log pipe instead
            access_log=False,
            # httptools, with a bounded request head; its refusals are counted with the app's answers
            http=counted_protocol(app.state.parts.metrics),
            timeout_graceful_shutdown=int(settings.shutdown_grace_s),
            timeout_keep_alive=keep_alive_s,  # the guard's idle close of a new connection too
            server_header=False,
            root_path=root_path,  # a proxy's prefix (ASGI's root_path): /docs and links name it
        ),
        lambda: int(app.state.parts.desk.in_flight),
        companion,
    )
    writer = app.state.parts.writer
    if writer is not None:
        # A disk that refused a commit stops the service (exit 1): only the next start's crash
        # recovery can settle what the lost batch held (ingest.store.writer).
        writer.on_failure = lambda _: setattr(server, "should_exit", True)
    parts = app.state.parts

    def started(_: logging.LogRecord) -> bool:
        return parts.start_failure is None

    if at_start.received is not None:
        root.removeHandler(direct)
        return _stop_unstarted(parts, at_start.received, direct, None if log_file is None else log_stream)
    at_start.hand_to(server.on_signal)  # until uvicorn takes the signals itself
    # A start that failed is said once, by the command (ServeError), not by uvicorn's traceback.
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(started)
    try:
        server.run(sockets=[listening])
    except SystemExit:  # uvicorn's way out of a failed start
        if parts.start_failure is None:
            raise
        root.removeHandler(direct)
        raise _start_failed(parts.start_failure, None if log_file is None else log_stream) from None
    finally:
        uvicorn_log.removeFilter(started)  # this server's: a process may serve again (tests)
    end_multiprocess_values(settings.environ)
    if server.companion is not None:
        server.companion.join(COMPANION_GRACE_S)  # it sees the stop and ends; its output comes first
    shutdown: Shutdown | None = app.state.parts.shutdown
    first = signal.Signals(server.received[0]).name if server.received else None
    forced_by = signal.Signals(server.forced_by).name if server.forced_by is not None else None
    pipe = parts.telemetry.logs if parts.telemetry is not None else None
    stopped = Stopped(
        first,
        server.in_flight_at_signal,
        shutdown,
        settings.shutdown_grace_s,
        forced_by,
        unserved=not server.listening and server.server_state.total_requests == 0,
        log_lines_dropped=(pipe.dropped if pipe is not None else 0) + direct.dropped,
    )
    # Straight to stderr: after a forced stop the app's log pipe may still hold "payorch" records.
    level = logging.INFO if stopped.complete else logging.ERROR
    direct.handle(logging.LogRecord(LOGGER, level, __file__, 0, "%s", (stopped.summary(),), None))
    # The last lines are written in bounded time, whatever the stream's reader does.
    root.removeHandler(direct)
    direct.close()
    return stopped


def _start_failed(problem: str, log_file: IO[bytes] | None) -> ServeError:
    """The error of a start that failed, once the log file it opened (``log_file``, the demo's) is
    closed: the command says the failure itself, and a process that serves again (a test's) kept
    the file open."""
    if log_file is not None:
        log_file.close()
    return ServeError(problem)


def _stop_unstarted(
    parts: Parts, received: str, direct: DirectHandler, log_file: IO[bytes] | None
) -> Stopped:
    """End a start that a signal stopped before it served: what building the app opened is closed
    (the database, the simulated ledger's file, telemetry's threads, ``log_file``), and the
    last log line says so."""
    settings = parts.settings
    committed = parts.writer.close() if parts.writer is not None else True
    if parts.journal is not None:
        parts.journal.close()
    if parts.telemetry is not None:
        parts.telemetry.close()
    end_multiprocess_values(settings.environ)
    stopped = Stopped(received, 0, Shutdown(0, 0, committed), settings.shutdown_grace_s, before_serving=True)
    direct.handle(logging.LogRecord(LOGGER, logging.INFO, __file__, 0, "%s", (stopped.summary(),), None))
    direct.close()
    if log_file is not None:
        log_file.close()
    return stopped


def _start_warnings(config: PlatformConfig, config_path: Path | None, data_dir: Path) -> Iterator[str]:
    """What the start warns of: a worker count it does not take, and the config file and the data
    folder when others may read them (a warning, not a refusal: ingest.private_files)."""
    workers = os.environ.get("WEB_CONCURRENCY", "").strip()
    if workers not in ("", "1"):  # uvicorn's and gunicorn's variable, set by some platforms (Heroku)
        yield (
            f"WEB_CONCURRENCY={workers} is not taken: payorch serve runs one process, DuckDB taking "
            "one writer; for several workers, run one payorch serve per data folder"
        )
    keys = bool(config.admin_api_keys) or any(merchant.api_keys for merchant in config.merchants)
    if config_path is not None and keys:
        config_open = exposed(config_path, "API keys")
        if config_open is not None:
            yield f"config file {config_open}"
    folder_open = exposed(data_dir, "payments, idempotency keys and their secret")
    if folder_open is not None:
        yield f"data folder {folder_open}"


def _os_problem(error: OSError) -> str:
    """An operating system's refusal as one line naming the file first (its text was Python's:
    ``[Errno 21] Is a directory: '/data/simulated-ledger.jsonl'``)."""
    if error.filename is None or error.strerror is None:
        return str(error)
    return f"cannot use {error.filename}: {error.strerror}"


def _stderr() -> IO[bytes]:
    """The process's stderr for the JSON log, unbuffered. Through ``sys.stderr.buffer``, a write
    stuck on a full pipe (its reader stopped reading) held that buffer's lock, which the
    interpreter takes to flush stderr as the process ends: the stop would hang there, or end in a
    fatal error it cannot write either. An unbuffered stream takes no lock of Python's."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by one without a descriptor (tests)
        return sys.stderr.buffer
    sys.stderr.flush()  # what was written through it comes first
    return open(descriptor, "wb", buffering=0, closefd=False)  # kept open, as stderr is


def _log_file(path: Path) -> IO[bytes]:
    """``path`` opened to append to, unbuffered (as stderr: :func:`_stderr`). It stays open for
    the process's life: after a forced stop the app's log pipe may still be writing to it when
    :func:`run_server` returns."""
    try:
        return path.open("ab", buffering=0)
    except OSError as exc:
        raise ServeError(f"cannot open the log file {path}: {exc.strerror}") from None
