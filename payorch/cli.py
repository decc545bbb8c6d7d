"""``payorch``: every command of the public contract (PRODUCT.md section 2).

Commands whose part of the platform is not built yet say so on stderr and exit 2, so that a
script never mistakes them for success. Bad arguments give a one-line usage error naming the
command (exit 2); a group given no command prints its help (exit 2). Anything unexpected is one
line too (``payorch report: internal error: KeyError; please report it``, exit 1), with the
traceback only when ``PAYORCH_DEBUG=1`` asks for it: no stack trace reaches a user otherwise.
Ctrl-C is one line too (``payorch report: interrupted``), exit 1 as ``payorch export``'s own. A
stdout whose reader went away (``| head -1``) ends any command quietly, exit 141, as ``cat`` ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from engine.config import PlatformConfig
from ingest.config_file import check_servable, load_config, load_sample_config
from ingest.errors import ConfigFileError
from ingest.private_files import exposed
from payorch.api_key import KeyFileError, key_problem, read_key_file, read_key_stream
from payorch.options import DuckDBPath, Host, Integer, Moment, PathOption, RootPath, ServiceUrl
from payorch.output import discard_stdout
from payorch.signals import stop_signals

EXIT_USAGE = 2
EXIT_FAILURE = 1
#: Stdout's reader went away: 128 + SIGPIPE, as a shell shows ``cat``'s end (killed by SIGPIPE).
#: Exited with, not killed by, so that a command run in-process (a test's) ends as SystemExit.
EXIT_READER_GONE = 128 + signal.SIGPIPE
DEFAULT_API = "http://127.0.0.1:8000"
#: Set to 1, an internal error prints its traceback before its one line.
DEBUG_ENV = "PAYORCH_DEBUG"
#: The command whose output is a JSON log (see :func:`fail_serving`).
SERVE = "payorch serve"
R = TypeVar("R")


class InternalError(Exception):
    """An exception nobody expected, raised while ``command_path`` ran (its ``__cause__``)."""

    def __init__(self, command_path: str) -> None:
        super().__init__(command_path)
        self.command_path = command_path


class CommandInterruptedError(Exception):
    """Ctrl-C stopped ``command_path`` (or SIGTERM or SIGHUP, where a command takes them as
    Ctrl-C): what it was writing is cleaned up on the way (``--out``'s hidden file, an export's
    folders)."""

    def __init__(self, command_path: str) -> None:
        super().__init__(command_path)
        self.command_path = command_path


def _within(ctx: click.Context, step: Callable[[], R]) -> R:
    """Run ``step`` of ``ctx``'s command: a usage error gets the context that names the command
    (click raises "Option '--port' requires an argument." without one), anything unexpected
    becomes an :class:`InternalError` naming it."""
    try:
        return step()
    except click.UsageError as error:
        if error.ctx is None:
            error.ctx = ctx
        raise
    except (click.ClickException, click.exceptions.Exit, click.Abort, InternalError, CommandInterruptedError):
        raise
    except KeyboardInterrupt:
        # click made it "Aborted!" after a blank line, naming no command, exit 1 as a failure.
        raise CommandInterruptedError(ctx.command_path) from None
    except Exception as error:
        raise InternalError(ctx.command_path) from error


class Command(click.Command):
    """A ``payorch`` command: its errors name it (see :func:`_within`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return _within(ctx, lambda: super(Command, self).parse_args(ctx, args))

    def invoke(self, ctx: click.Context) -> Any:
        return _within(ctx, lambda: super(Command, self).invoke(ctx))


class Group(click.Group):
    """A ``payorch`` group: its commands are Commands and its subgroups Groups."""

    command_class = Command
    group_class = type  # subgroups are Groups too

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return _within(ctx, lambda: super(Group, self).parse_args(ctx, args))


def one_line(text: str) -> str:
    """``text`` with each unprintable character (a newline in a path, a right-to-left override)
    written as its escape: an error stays one line, read as it is written."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def fail(message: str, code: int) -> NoReturn:
    """``message`` as one line on stderr, then exit with ``code``."""
    click.echo(one_line(message), err=True)
    sys.exit(code)


def load_config_or_exit(path: Path) -> PlatformConfig:
    """The configuration at ``path``, or a one-line error naming file, field and problem (exit 2)."""
    try:
        return load_config(path)
    except ConfigFileError as error:
        fail(f"payorch: config error: {error}", EXIT_USAGE)


def not_built(command: str, part: str) -> NoReturn:
    click.echo(f"payorch {command}: not built yet ({part}).", err=True)
    sys.exit(EXIT_USAGE)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="payorch")
def cli() -> None:
    """payorch: payment orchestration and contract monitoring."""


#: The data folder and port of the commands that run the server (serve, demo).
DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=DuckDBPath(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
)
PORT_OPTION = click.option("--port", type=Integer(1, 65535), default=8000, show_default=True)
#: Whose data folder a start may take over, and the name it goes by there (ingest.store.ownership):
#: the demo's too, whose refusal of a moved folder names them as serve's does.
TAKE_OVER_OPTION = click.option(
    "--take-over",
    "take_over",
    envvar="PAYORCH_TAKE_OVER",
    metavar="INSTANCE",
    help="Settle the interrupted payments of a data folder last started elsewhere (another host or "
    "folder) by INSTANCE, which a start refused without it names: only once that service is stopped "
    "for good (the folder moved, or restored after its host died). Also PAYORCH_TAKE_OVER.",
)
INSTANCE_NAME_OPTION = click.option(
    "--instance-name",
    "instance_name",
    envvar="PAYORCH_INSTANCE_NAME",
    metavar="NAME",
    help="The name this service goes by in its data folder instead of the host name, for hosts "
    "named anew at every start (a Kubernetes Deployment's pods). Also PAYORCH_INSTANCE_NAME.",
)
#: uvicorn's default; behind a load balancer, set it above the balancer's idle timeout (60 s on AWS
#: ALB, GCP and nginx's upstream keepalive): else the balancer reuses a connection being closed.
KEEP_ALIVE_S = 5
MAX_KEEP_ALIVE_S = 3600


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=PathOption(dir_okay=False, path_type=Path),
    help="YAML config file (default: the sample config).",
)
@DATA_OPTION
@click.option("--host", type=Host(), default="127.0.0.1", show_default=True)
@PORT_OPTION
@click.option(
    "--keep-alive-timeout",
    "keep_alive_s",
    type=Integer(1, MAX_KEEP_ALIVE_S),
    default=KEEP_ALIVE_S,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection idle this long. Behind a load balancer, set it above the balancer's "
    "idle timeout (60 s on AWS ALB).",
)
@click.option(
    "--root-path",
    type=RootPath(),
    default="",
    help="The path prefix a reverse proxy serves the API under and strips (/payorch): the docs, "
    "the OpenAPI document's server and the problem type links name it.",
)
@TAKE_OVER_OPTION
@INSTANCE_NAME_OPTION
def serve(
    config_path: Path | None,
    data_dir: Path,
    host: str,
    port: int,
    keep_alive_s: int,
    root_path: str,
    take_over: str | None,
    instance_name: str | None,
) -> None:
    """Serve the merchant API over DATA/payorch.duckdb (payments, complaints, analytics reads and
    the retrospective report) until SIGINT, SIGTERM or SIGHUP, which drain the payments in flight
    and exit 0. The report schedule is not built yet. Escalations are not either: no
    escalations.webhook_url is called.
    """
    with _stops_noted() as noted:
        from payorch.server import ServeError, run_server, stop_unbegun  # noqa: PLC0415 - keeps --help fast

        try:
            config = load_config(config_path) if config_path is not None else load_sample_config()
            check_servable(config, config_path or "(built-in) sample config")
        except ConfigFileError as error:
            fail_serving(f"payorch: config error: {error}", f"config error: {error}", EXIT_USAGE, os.environ)
        if noted:
            stop_unbegun(noted[0], sys.stderr.buffer, os.environ)  # nothing made yet: one line, exit 0
            sys.exit(0)
        try:
            # Its last log line says how it stopped.
            stopped = run_server(
                config,
                data_dir,
                host,
                port,
                keep_alive_s=keep_alive_s,
                root_path=root_path,
                config_path=config_path,
                take_over=take_over or None,
                instance_name=instance_name or None,
            )
        except ServeError as error:
            fail_serving(f"payorch serve: {error}", str(error), EXIT_USAGE, os.environ)
    sys.exit(0 if stopped.complete else EXIT_FAILURE)


@contextlib.contextmanager
def _stops_noted() -> Iterator[list[str]]:
    """SIGTERM and SIGHUP noted (by name, in the list given) while ``payorch serve`` (or ``payorch
    demo``) loads the service's modules and reads its config, about 1.3 s before its start takes
    them (``payorch.server``): they killed it without a word (exit 143, 129), where a moment later
    they stop it with a line and exit 0. Nothing is made before the start, so the start does not
    begin: the line says it stopped while starting. SIGINT keeps Python's own handler (Ctrl-C is
    ``interrupted`` at once); SIGHUP ignored (``nohup``) stays ignored."""
    noted: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def note(number: int, _: object) -> None:
        noted.append(signal.Signals(number).name)

    taken = stop_signals(with_interrupt=False)
    previous = {number: signal.signal(number, note) for number in taken}
    try:
        yield noted
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _on_the_command_line(parameter: str) -> bool:
    """Whether the current command's ``parameter`` was given on its command line (not by an
    environment variable or its default)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source is click.core.ParameterSource.COMMANDLINE


def fail_serving(line: str, event: str, code: int, environ: Mapping[str, str]) -> NoReturn:
    """End ``payorch serve`` with ``code`` (a start that failed, an internal error), said as its
    log says everything: a JSON line on stderr whose ``event`` is ``event`` (a log shipper parsing
    the lines dropped or mangled a plain one). A person reading stderr at a terminal gets ``line``
    after it too.

    Ctrl-C is ignored meanwhile: the command is ending already, and a second one (the first came
    while the service's modules loaded, which saying this loads again, about 2 s) printed the
    traceback of a KeyboardInterrupt in place of the line."""
    with _interrupts_ignored():
        from payorch.server import deployment_environment, log_failed_start  # noqa: PLC0415

        log_failed_start(one_line(event), sys.stderr.buffer, deployment_environment(environ))
        if sys.stderr.isatty():
            click.echo(one_line(line), err=True)
    sys.exit(code)


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (in the main thread, the only one that can set it), then as it was."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@cli.command()
@click.option(
    "--api",
    "api_url",
    type=ServiceUrl(),
    default=DEFAULT_API,
    show_default=True,
    help="URL of the running service.",
)
@click.option("--api-key", envvar="PAYORCH_API_KEY", help="Admin API key (or PAYORCH_API_KEY).")
@click.option("--port", type=Integer(1, 65535), default=8501, show_default=True)
def dashboard(api_url: str, api_key: str | None, port: int) -> None:
    """Not built yet: the Streamlit dashboard, reading through the service's API."""
    not_built("dashboard", "the Streamlit dashboard")


@cli.command()
@PORT_OPTION
@DATA_OPTION
@TAKE_OVER_OPTION
@INSTANCE_NAME_OPTION
def demo(port: int, data_dir: Path, take_over: str | None, instance_name: str | None) -> None:
    """Serve the sample configuration, fed simulated merchant traffic.

    The API server of `payorch serve` on 127.0.0.1:PORT over DATA/payorch.duckdb (its log in
    DATA/demo.log) is sent simulated merchant payments and complaints; a summary and the URLs to
    open with the sample keys are printed, and it serves until SIGINT (Ctrl-C), SIGTERM or SIGHUP,
    which drain the payments in flight and exit 0. A data folder moved or copied with payments
    in flight (a demo cut short) is refused until --take-over names the instance, as for `payorch
    serve`. The dashboard, `payorch simulate`, `payorch complaints import` and the report schedule
    are not built yet.
    """
    # SIGTERM or SIGHUP as it loads the server's modules (about 1.2 s, before its start takes them)
    # killed it without a word, exit 143 or 129: noted, they end it before the start begins.
    with _stops_noted() as noted:
        from payorch.demo import command_name, run_demo  # noqa: PLC0415 - keeps --help fast
        from payorch.server import ServeError  # noqa: PLC0415

        command = command_name(sys.argv[0], shutil.which("payorch"), sys.executable)
        try:
            stopped = run_demo(
                data_dir,
                port,
                click.echo,
                command,
                owner=(take_over or None, instance_name or None),
                noted=noted,
            )
        except ServeError as error:
            fail(f"payorch demo: {error}", EXIT_USAGE)
    sys.exit(0 if stopped.complete else EXIT_FAILURE)


@cli.command()
@click.option("--url", type=ServiceUrl(), required=True, help="Base URL of the payorch API.")
@click.option("--api-key", required=True, help="A merchant API key.")
@click.option("--payments", type=Integer(min=1), required=True, help="How many payments to send.")
@click.option("--concurrency", type=Integer(min=1), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def simulate(url: str, api_key: str, payments: int, concurrency: int, seed: int) -> None:
    """Not built yet: send simulated merchant traffic and print a summary."""
    not_built("simulate", "the traffic generator")


@cli.group()
def complaints() -> None:
    """Merchant complaints."""


@complaints.command("import")
@click.argument("file", type=PathOption(exists=True, dir_okay=False, path_type=Path))
@click.option("--api", "api_url", type=ServiceUrl(), help="URL of the running service.")
@click.option("--api-key", envvar="PAYORCH_API_KEY")
@click.option("--data", "data_dir", type=DuckDBPath(file_okay=False, path_type=Path))
def import_complaints(file: Path, api_url: str | None, api_key: str | None, data_dir: Path | None) -> None:
    """Not built yet: import complaints from CSV or JSON lines (POST /v1/complaints takes them)."""
    not_built("complaints import", "complaint intake")


@cli.command()
@click.option(
    "--api",
    "api_url",
    type=ServiceUrl(),
    help="URL of a running service to read from (with an admin key): http(s)://HOST[:PORT][/PATH].",
)
@click.option(
    "--api-key-file",
    # A string, not a Path: Path("./-") is Path("-"), and ./- must name a file called -.
    type=PathOption(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="File holding the admin API key alone (mode 600; <(pass show ...) works); - reads it from "
    "stdin (pass show ... | payorch report ... --api-key-file -; never a prompt). Prefer it, or "
    "PAYORCH_API_KEY, to --api-key.",
)
@click.option(
    "--api-key",
    envvar="PAYORCH_API_KEY",
    metavar="KEY",
    help="Admin API key, else PAYORCH_API_KEY. On the command line, ps shows it to every user and "
    "the shell keeps it in its history: prefer --api-key-file or PAYORCH_API_KEY.",
)
@click.option(
    "--data",
    "data_dir",
    type=DuckDBPath(file_okay=False, path_type=Path),
    help="Data folder to read when no service runs (default: ./data).",
)
@click.option(
    "--export",
    "export_dir",
    type=PathOption(file_okay=False, path_type=Path),
    help="A folder `payorch export --out` wrote (Parquet; copied from another machine, say), to read "
    "instead of a data folder or a service.",
)
@click.option(
    "--from",
    "date_from",
    type=Moment(),
    help="Start, inclusive: an ISO 8601 date or time (UTC unless it has an offset). "
    "Default: the report span before --to.",
)
@click.option(
    "--to",
    "date_to",
    type=Moment(),
    help="End, exclusive: an ISO 8601 date or time (UTC unless it has an offset). Default: now.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["yaml", "md", "html", "json"]),
    default="yaml",
    show_default=True,
    help="yaml and json are built; md and html (charts) are not yet.",
)
@click.option(
    "--out",
    type=PathOption(dir_okay=False, allow_dash=True),
    help="File to write, replaced whole (a link's target is written; a FIFO or device is written "
    "into); - or none: stdout.",
)
@click.option(
    "--config",
    "config_path",
    type=PathOption(dir_okay=False, path_type=Path),
    help="YAML config: complaint taxonomy, mismatch rule and report span (default: the sample config).",
)
def report(
    api_url: str | None,
    api_key_file: str | None,
    api_key: str | None,
    data_dir: Path | None,
    export_dir: Path | None,
    date_from: datetime | None,
    date_to: datetime | None,
    output_format: str,
    out: str | None,
    config_path: Path | None,
) -> None:
    """A retrospective report (default: the last 14 days): violations against complaints, from a
    running service (--api), a data folder (--data, default ./data) or a `payorch export` folder
    (--export)."""
    from payorch import report as command  # noqa: PLC0415 - keeps --help fast

    if output_format not in command.FORMATS:
        not_built(f"report --format {output_format}", "the Markdown and HTML reports with charts")
    _check_report_source(api_url, (api_key, api_key_file), data_dir, export_dir, config_path)
    if api_key_file is not None:
        api_key = _read_key_file(api_key_file)
    config = load_config_or_exit(config_path) if config_path is not None else load_sample_config()
    span_days = config.reports.every_days
    # Before the start is defaulted: without --from, the service starts the window its own span
    # before the end, not the local config's.
    given_from = date_from is not None
    if date_from is None and date_to is not None:
        try:
            date_from = date_to - timedelta(days=span_days)
        except OverflowError:
            raise click.UsageError(
                f"the default window, the {span_days} days before --to {date_to.isoformat()}, "
                "would begin before the year 1: give --from"
            ) from None
    try:
        window = command.report_window(date_from, date_to, span_days, datetime.now(UTC))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    out_path = None if out in (None, "-") else Path(out)
    source: command.Source
    if api_url is not None:
        source = command.ServiceSource(api_url, api_key or "", given_from=given_from)
    elif export_dir is not None:
        source = command.ExportSource(export_dir)
    else:
        from ingest.store.memory import memory_limit  # noqa: PLC0415 - keeps --help fast

        source = command.FileSource(
            data_dir if data_dir is not None else Path("data"), memory_limit(config.store)
        )
    try:
        with _stops_as_ctrl_c():  # the service answering a long window, the data folder read
            text = command.make_report(source, config, window, "json" if output_format == "json" else "yaml")
            command.write_report(text, out_path)
    except command.ReportError as error:
        fail(f"payorch report: {error}", EXIT_FAILURE)
    if out_path is not None:
        click.echo(one_line(f"payorch report: wrote {out_path}"), err=True)


def _check_report_source(
    api_url: str | None,
    keys: tuple[str | None, str | None],
    data_dir: Path | None,
    export_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Raise a usage error unless ``payorch report`` is given one place to read, with what it takes
    (``keys``: the ``--api-key`` and the ``--api-key-file`` given)."""
    api_key, api_key_file = keys
    places = (("--api", api_url), ("--data", data_dir), ("--export", export_dir))
    given = [name for name, value in places if value is not None]
    if len(given) > 1:
        raise click.UsageError(f"give {' or '.join(given)}, not {'both' if len(given) == 2 else 'all three'}")
    if api_url is not None and config_path is not None:
        raise click.UsageError("--api takes no --config: the service renders with its own configuration")
    key_file = api_key_file is not None
    if key_file and _on_the_command_line("api_key"):
        raise click.UsageError("give --api-key-file or --api-key, not both")
    if api_url is not None and api_key is None and not key_file:
        raise click.UsageError("--api needs an admin key: --api-key-file, PAYORCH_API_KEY or --api-key")
    if api_url is not None and not key_file and api_key is not None:
        problem = key_problem(api_key)
        if problem is not None:
            source = "--api-key" if _on_the_command_line("api_key") else "PAYORCH_API_KEY"
            raise click.UsageError(f"{source} {problem}")
    if api_url is None and (key_file or _on_the_command_line("api_key")):
        # Taken without a word, it read as if the key mattered (PAYORCH_API_KEY set for --api runs
        # of the same shell is no mistake, and stays unread). Given alone, the --api it was meant
        # for forgotten, the report was read from ./data, maybe another service's, as if served.
        if data_dir is not None:
            local = "--data reads the file"
        elif export_dir is not None:
            local = "--export reads the export"
        else:
            local = "without --api or --data it reads the file ./data/payorch.duckdb"
        option = "--api-key-file" if key_file else "--api-key"
        raise click.UsageError(f"{local} and takes no {option} (it is for --api)")


def _read_key_file(given: str) -> str:
    """The admin key ``path`` holds, or a usage error naming the file (never what it holds). A
    file that other users may read is used, and named in a warning line, as ``payorch serve``
    does for its config file. ``-`` is the standard input (a file named ``-``: ``./-``)."""
    if given == "-":
        # The bytes under sys.stdin (a test replaces sys.stdin); none when the process has none.
        stream = getattr(sys.stdin, "buffer", None)
        try:
            if stream is None:
                raise KeyFileError("cannot be read: the process has no standard input")
            return read_key_stream(stream)
        except KeyFileError as error:
            raise click.UsageError(f"--api-key-file - (stdin) {error}") from None
    path = Path(given)
    try:
        key = read_key_file(path)
    except KeyFileError as error:
        raise click.UsageError(f"--api-key-file {given} {error}") from None
    warning = exposed(path, "an admin API key")
    if warning is not None:
        click.echo(one_line(f"payorch report: WARNING: {warning}"), err=True)
    return key


@cli.command()
@click.option(
    "--out",
    required=True,
    type=DuckDBPath(file_okay=False, path_type=Path),
    help="Folder to write; its events/, violations/ and complaints/ folders are replaced.",
)
@click.option(
    "--data",
    "data_dir",
    type=DuckDBPath(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="The data folder holding payorch.duckdb (not held by a running server).",
)
@click.option(
    "--config",
    "config_path",
    type=PathOption(dir_okay=False, path_type=Path),
    help="YAML config whose store.memory_limit bounds DuckDB's memory (default: a quarter of the machine's).",
)
def export(out: Path, data_dir: Path, config_path: Path | None) -> None:
    """Events, violations and complaints as hive-partitioned Parquet (by UTC date)."""
    from ingest.store.export import ExportError, export_parquet  # noqa: PLC0415 - keeps --help fast
    from ingest.store.memory import memory_limit  # noqa: PLC0415 - keeps --help fast

    limit = memory_limit(load_config_or_exit(config_path).store) if config_path is not None else None

    try:
        with _stops_as_ctrl_c():
            written = export_parquet(data_dir, out, limit)
    except ExportError as error:
        # As for ``payorch report``: the command ran and could not do its work (no database, one
        # a server holds, a folder it cannot write): 1. Bad arguments are 2.
        fail(f"payorch export: {error}", EXIT_FAILURE)
    counts = ", ".join(f"{rows} {table}" for table, rows in written.items())
    click.echo(one_line(f"payorch export: wrote {counts} to {out}"))


@contextlib.contextmanager
def _stops_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a container stopped, a job killed) and SIGHUP (the terminal or SSH session that ran
    the command closed) stop it as Ctrl-C does meanwhile: what it was writing is removed (an
    export's generation, the earlier export kept; a report's hidden ``--out`` file), and one line
    names the command, where their defaults killed it without a word and left its partial files
    behind. Under ``nohup`` (SIGHUP ignored from the start) SIGHUP is left ignored, as ``payorch
    serve`` leaves it. Only the main thread can set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = stop_signals(with_interrupt=False)
    previous = {number: signal.signal(number, signal.default_int_handler) for number in taken}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; usage errors are one line on stderr and exit 2."""
    run(cli, argv, os.environ)


def run(command: click.Command, argv: list[str] | None, environ: Mapping[str, str]) -> None:
    """Run ``command`` (``cli``, or a test's own :class:`Group`) on ``argv``; every way it can end
    is one line on stderr (or help on stdout) and an exit code."""
    try:
        code = command.main(args=argv, prog_name="payorch", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help())  # what the user asked for, in effect: not an error line
        sys.exit(EXIT_USAGE)
    except click.UsageError as error:
        path = error.ctx.command_path if error.ctx is not None else "payorch"
        fail(f"{path}: error: {error.format_message()}", EXIT_USAGE)
    except click.ClickException as error:
        fail(f"payorch: error: {error.format_message()}", error.exit_code)
    except click.Abort:
        click.echo("payorch: aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except CommandInterruptedError as error:
        _interrupted(error.command_path, environ)
    except InternalError as error:
        if isinstance(error.__cause__, BrokenPipeError):
            _reader_gone()
        _internal_error(error.command_path, error.__cause__ or error, environ)
    except BrokenPipeError:  # help printed to a closed pipe
        _reader_gone()
    except Exception as error:  # noqa: BLE001 - the last resort: one line, never a stack trace
        _internal_error("payorch", error, environ)
    if isinstance(code, int) and code:
        sys.exit(code)


def _interrupted(command_path: str, environ: Mapping[str, str]) -> NoReturn:
    """One line naming the command Ctrl-C stopped, exit 1: the work was not done, as for a failure
    (click's own "Aborted!" came after a blank line, naming no command)."""
    if command_path == SERVE:  # its log is JSON lines on stderr
        fail_serving(f"{command_path}: interrupted", "interrupted", EXIT_FAILURE, environ)
    # At a terminal the line starts on a line of its own, not after the ^C echoed there.
    click.echo(f"{chr(10) if sys.stderr.isatty() else ''}{command_path}: interrupted", err=True)
    sys.exit(EXIT_FAILURE)


def _reader_gone() -> NoReturn:
    """Stdout's reader went away (``payorch report | head -1``, a pager quit early): the rest is
    dropped without a word, and the exit is :data:`EXIT_READER_GONE`, the status the shell shows
    for ``cat`` or ``git log`` then (``set -o pipefail`` sees it). Not 1: that says the command
    could not do its work, where an export whose summary line found no reader was written whole.
    It was an "internal error: BrokenPipeError", then a bare 1."""
    discard_stdout()
    sys.exit(EXIT_READER_GONE)


def _internal_error(command_path: str, error: BaseException, environ: Mapping[str, str]) -> NoReturn:
    if environ.get(DEBUG_ENV) == "1":
        traceback.print_exception(error, file=sys.stderr)
        hint = ""
    else:
        hint = f" ({DEBUG_ENV}=1 shows the traceback)"
    said = f"internal error: {type(error).__name__}; please report it{hint}"
    if command_path == SERVE:  # its log is JSON lines on stderr
        fail_serving(f"{command_path}: {said}", said, EXIT_FAILURE, environ)
    click.echo(f"{command_path}: {said}", err=True)
    sys.exit(EXIT_FAILURE)
