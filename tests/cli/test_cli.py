import os
import pty
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import orjson
import pytest

from ingest.store.schema import FILE_NAME
from ingest.store.writer import Writer
from payorch.cli import Group, main
from payorch.cli import run as run_cli
from tests.e2e.server import free_port

PAYORCH = Path(sys.executable).parent / "payorch"
COMMANDS = ("serve", "dashboard", "demo", "simulate", "complaints", "report", "export")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PAYORCH), *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def failed_start(done: subprocess.CompletedProcess[str]) -> str:
    """Why ``payorch serve`` could not start, from the last line of its stderr, where its JSON log
    goes: every line of it is JSON (a log shipper takes each as one), the last at level error
    from ``payorch.serve`` with the global tags, as the running service logs."""
    assert done.returncode == 2, done.stderr
    lines = [orjson.loads(line) for line in done.stderr.splitlines()]
    last = lines[-1]
    assert (last["level"], last["logger"], last["service.name"]) == ("error", "payorch.serve", "payorch")
    assert last["deployment.environment.name"] == os.environ.get("PAYORCH_ENVIRONMENT", "development")
    event: str = last["event"]
    return event


def test_help_lists_every_command_of_the_contract() -> None:
    done = run("--help")
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (*COMMANDS, "complaints import"):
        main([*command.split(), "--help"])
        assert "Usage: payorch " + command in capsys.readouterr().out


def test_demo_help_names_every_signal_that_stops_it(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo serves as ``payorch serve`` does and stops on SIGHUP too; its help named two."""
    main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "until SIGINT (Ctrl-C), SIGTERM or SIGHUP, which drain the payments in flight" in help_text


def test_report_help_says_the_service_url_may_have_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    """``--api`` takes a service behind a path prefix (http://host/payorch); its help said HOST[:PORT]."""
    main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "http(s)://HOST[:PORT][/PATH]" in help_text


@pytest.mark.parametrize(
    "argv",
    [
        ["dashboard"],
        ["simulate", "--url", "http://127.0.0.1:8000", "--api-key", "k", "--payments", "3"],
        ["report", "--format", "html"],
    ],
)
def test_unbuilt_commands_say_so_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "not built yet" in capsys.readouterr().err


def test_bad_arguments_give_one_line_and_exit_2() -> None:
    done = run("serve", "--port", "eighty")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("payorch serve: error: ")
    assert "--port" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_problems_are_one_line_errors(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = run("serve", "--port", str(port), "--data", str(tmp_path / "data"))
    blocked = tmp_path / "file"
    blocked.write_text("")
    no_folder = run("serve", "--data", str(blocked / "data"))

    assert failed_start(in_use) == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert in_use.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()  # the port is tried before anything is made
    assert failed_start(no_folder).startswith("cannot create the data folder ")
    assert no_folder.stderr.count("\n") == 1


STRIPE_UNSET = """
admin_api_keys: [adm_x]
merchants:
  - merchant_id: m_x
    api_keys: [sk_x]
    default_currency: USD
    routing:
      - {method: card, processors: [stripe_live]}
processors:
  - {id: stripe_live, kind: stripe, api_key_env: PAYORCH_TEST_UNSET_STRIPE_KEY}
"""


def test_a_failed_start_leaves_nothing_in_the_folders_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found once the data folder was made, with its database, key secret and simulated ledger:
    a routed Stripe processor whose variable is unset, a Prometheus directory that is not there.
    Both left the new folders (and those files) behind."""
    config = tmp_path / "payorch.yaml"
    config.write_text(STRIPE_UNSET)
    monkeypatch.delenv("PAYORCH_TEST_UNSET_STRIPE_KEY", raising=False)
    no_key = run(
        "serve", "--config", str(config), "--data", str(tmp_path / "a" / "data"), "--port", str(free_port())
    )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    no_metrics = run("serve", "--data", str(tmp_path / "b" / "data"), "--port", str(free_port()))

    assert "PAYORCH_TEST_UNSET_STRIPE_KEY holding the API key is not set" in failed_start(no_key)
    assert failed_start(no_metrics).startswith(f"cannot use {tmp_path / 'missing'}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["payorch.yaml"]


def test_a_start_refused_for_its_key_or_secret_touches_no_existing_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing folder (a mounted volume) is not removed: the Stripe key is checked before the
    folder is used, the key secret before the database is opened. A database was created (or
    migrated) in it first."""
    config = tmp_path / "payorch.yaml"
    config.write_text(STRIPE_UNSET)
    monkeypatch.delenv("PAYORCH_TEST_UNSET_STRIPE_KEY", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    secret = tmp_path / "restored" / "idempotency-key.secret"
    secret.parent.mkdir()
    secret.write_bytes(b"cut short")

    no_key = run("serve", "--config", str(config), "--data", str(empty), "--port", str(free_port()))
    bad_secret = run("serve", "--data", str(secret.parent), "--port", str(free_port()))

    assert "PAYORCH_TEST_UNSET_STRIPE_KEY holding the API key is not set" in failed_start(no_key)
    assert failed_start(bad_secret) == f"{secret} is not a key secret (32 bytes); restore it or move it away"
    assert list(empty.iterdir()) == []
    assert list(secret.parent.iterdir()) == [secret]


def test_at_a_terminal_a_failed_start_is_a_plain_line_after_its_json_line(tmp_path: Path) -> None:
    """A person reading stderr gets the line a person reads; the log's JSON line comes first."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        reader, terminal = pty.openpty()
        with open(reader, "rb") as screen:
            done = subprocess.run(
                [str(PAYORCH), "serve", "--port", str(port), "--data", str(tmp_path / "data")],
                stderr=terminal,
                timeout=60,
                check=False,
            )
            os.close(terminal)
            shown = screen.read1().decode()
    assert done.returncode == 2
    json_line, plain = shown.splitlines()
    assert orjson.loads(json_line)["event"] == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert plain == f"payorch serve: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_file_of_the_data_folder_it_cannot_use_is_named_first(tmp_path: Path) -> None:
    """It was Python's text: ``[Errno 21] Is a directory: '.../simulated-ledger.jsonl'``."""
    journal = tmp_path / "data" / "simulated-ledger.jsonl"
    journal.mkdir(parents=True)
    with socket.socket() as probe:  # a free port: the port is taken before the folder is read
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    done = run("serve", "--data", str(tmp_path / "data"), "--port", str(port))

    assert failed_start(done) == f"cannot use {journal}: Is a directory"


def damaged_database(data: Path, table: str) -> Path:
    """A data folder whose payorch database has a damaged block in ``table`` (a disk fault's bytes:
    DuckDB opens the file, and its checksum refuses the block once it is read)."""
    data.mkdir()
    path = data / FILE_NAME
    Writer(path).close()
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "INSERT INTO idempotency_keys SELECT range, 'm_acme', 'k' || range, 'answered', 'fp', now(), "
            "200, repeat('x', 100)::BLOB, 'application/json' FROM range(3000)"
        )
        connection.execute(
            "INSERT INTO events (seq, payment_id, request_id, merchant_id, event_type, ts, accepted, proto) "
            "SELECT range, 'pay_' || range, 'req_' || range, 'm_acme', 'PaymentReceived', now(), true, "
            "repeat('x', 100)::BLOB FROM range(3000)"
        )
        connection.execute("CHECKPOINT")
        blocks = connection.execute(
            "SELECT min(block_id) FROM pragma_storage_info(?) WHERE block_id >= 0", [table]
        ).fetchall()
    with path.open("r+b") as file:
        file.seek(3 * 4096 + blocks[0][0] * 256 * 1024 + 100)  # the headers, then 256 KiB blocks
        file.write(bytes(range(64)))
    return path


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("schema_migrations", "cannot use the database"),  # read by the migrations
        ("idempotency_keys", "cannot use the database"),  # read back to answer repeats
        ("events", "crash recovery cannot read the database"),  # what recovery reads first
    ],
)
def test_a_damaged_database_stops_serve_at_start_with_one_line_naming_it(
    tmp_path: Path, table: str, says: str
) -> None:
    path = damaged_database(tmp_path / "data", table)
    with socket.socket() as probe:  # a free port: the port is taken before the database is read
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    done = run("serve", "--data", str(tmp_path / "data"), "--port", str(port))

    assert failed_start(done).startswith(f"{says} {path}: Corrupt database file: "), done.stderr
    assert "Traceback" not in done.stderr


def test_a_path_holding_a_newline_stays_one_line_in_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "x\ny"
    blocked = tmp_path / "file\u202e"  # a right-to-left override would reorder the line too
    blocked.write_text("")
    errors = []
    for argv, code in (
        (["report", "--data", str(folder)], 1),
        (["export", "--out", str(tmp_path / "out"), "--data", str(folder)], 1),
        (["serve", "--data", str(blocked / "data")], 2),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == code
        err = capsys.readouterr().err
        assert err.endswith("\n")
        assert err[:-1].isprintable(), err
        # serve's is the JSON line of its log: the text as its event says it
        errors.append(orjson.loads(err)["event"] if argv[0] == "serve" else err)

    assert [tmp_path.as_posix() + "/x\\ny" in err for err in errors] == [True, True, False]
    assert tmp_path.as_posix() + "/file\\u202e/data" in errors[2]


def test_unknown_commands_and_missing_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["frobnicate"], ["complaints", "import", str(tmp_path / "missing.csv")]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "error:" in err


def test_a_bad_config_file_names_the_file_field_and_problem(tmp_path: Path) -> None:
    config = tmp_path / "payorch.yaml"
    config.write_text(
        "merchants: []\nprocessors: [{id: p, kind: simulated, fault_rates: {declined: 2}}]\n",
        encoding="utf-8",
    )
    done = run("serve", "--config", str(config))
    assert failed_start(done) == (
        f"config error: {config}: processors[0].fault_rates.declined=2: must be between 0 and 1"
    )
    assert done.stderr.count("\n") == 1
    missing = run("serve", "--config", str(tmp_path / "nope.yaml"))
    assert failed_start(missing) == f"config error: {tmp_path / 'nope.yaml'}: does not exist"
    assert missing.stderr.count("\n") == 1


def test_a_config_nested_too_deep_is_a_config_error(tmp_path: Path) -> None:
    """It used to end in a RecursionError traceback."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 1000 + "]" * 1000 + "\n", encoding="utf-8")
    problem = f"config error: {deep}: line 1, column 101: invalid YAML: nested more than 100 levels deep"
    serve = run("serve", "--config", str(deep), "--data", str(tmp_path / "data"))
    assert failed_start(serve) == problem
    assert serve.stderr.count("\n") == 1
    report = run("report", "--config", str(deep), "--data", str(tmp_path / "data"))
    assert report.returncode == 2, report.stderr
    assert report.stderr == f"payorch: {problem}\n"


@pytest.mark.parametrize("argv", [[], ["complaints"]])
def test_a_group_without_a_command_prints_its_help_to_stdout(argv: list[str]) -> None:
    """It used to be ``payorch: error: Usage: ...``, the whole help as an error on stderr."""
    done = run(*argv)
    assert done.returncode == 2
    assert done.stdout.startswith(f"Usage: {' '.join(['payorch', *argv])} [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--port"], "payorch serve: error: Option '--port' requires an argument.\n"),
        (["report", "--out"], "payorch report: error: Option '--out' requires an argument.\n"),
        (
            ["complaints", "import", "--data"],
            "payorch complaints import: error: Option '--data' requires an argument.\n",
        ),
    ],
)
def test_an_option_missing_its_value_names_the_command(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--data", "data", "--out", "a\\b"],
        ["export", "--data", "a\\b", "--out", "out"],
        ["serve", "--data", "a\\b", "--port", "19745"],
        ["demo", "--data", "a\\b", "--port", "19746"],
        ["report", "--data", "a\\b"],
    ],
)
def test_a_path_duckdb_opens_with_a_backslash_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """DuckDB reads a backslash as a folder separator: ``export --out 'a\\b'`` wrote its Parquet
    under ``a/b``, and ``--data 'a\\b'`` opened ``a/b/payorch.duckdb``, another folder's database,
    while a server's secret and books went into ``a\\b`` (or a start failed on a file DuckDB
    could not find)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    Writer(tmp_path / "data" / FILE_NAME).close()

    with pytest.raises(SystemExit) as exited:
        main(argv)

    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.count("\n") == 1
    assert err.startswith(f"payorch {argv[0]}: error: Invalid value for '--")
    assert "'a\\b' holds a backslash, which DuckDB reads as a folder separator" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # nothing made


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--data", "../two", "--out", ""],
        ["export", "--data", "", "--out", "out"],
        ["serve", "--data", ""],
        ["serve", "--config", ""],
        ["report", "--data", ""],
        ["complaints", "import", ""],
    ],
)
def test_an_empty_path_is_a_usage_error_on_every_command(tmp_path: Path, argv: list[str]) -> None:
    """``export --out ''`` used to replace ``./events/``; ``serve --data ''`` made
    ``./payorch.duckdb``."""
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "keep.parquet").write_text("kept")

    done = run(*argv, cwd=tmp_path)

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "must not be empty" in done.stderr
    assert done.stderr.startswith(
        f"payorch {argv[0] if argv[0] != 'complaints' else 'complaints import'}: error:"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["events"]
    assert (tmp_path / "events" / "keep.parquet").read_text() == "kept"


def crashing_group() -> click.Group:
    @click.group(cls=Group)
    def group() -> None:
        """A stand-in for ``payorch``."""

    @group.command()
    def boom() -> None:
        raise KeyError("sk_live_secret")

    @group.command()
    @click.option("--count", type=int, callback=lambda *_: 1 / 0)
    def convert(count: int) -> None:
        """Never runs: its option's callback fails."""

    return group


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["boom"], "payorch boom: internal error: KeyError; please report it"),
        (["convert", "--count", "1"], "payorch convert: internal error: ZeroDivisionError; please report it"),
    ],
)
def test_an_unexpected_error_is_one_line_and_exit_1(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli(crashing_group(), argv, {})
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err == f"{expected} (PAYORCH_DEBUG=1 shows the traceback)\n"
    assert "sk_live_secret" not in err


def test_an_internal_error_of_serve_is_a_line_of_its_json_log(capsys: pytest.CaptureFixture[str]) -> None:
    """It was a plain line amid the JSON lines of the service's log."""
    group = crashing_group()

    @group.command()
    def serve() -> None:
        raise KeyError("sk_live_secret")

    with pytest.raises(SystemExit) as exited:
        run_cli(group, ["serve"], {"PAYORCH_ENVIRONMENT": "staging"})
    assert exited.value.code == 1
    err = capsys.readouterr().err
    line = orjson.loads(err)
    assert line["event"] == "internal error: KeyError; please report it (PAYORCH_DEBUG=1 shows the traceback)"
    assert (line["level"], line["logger"], line["deployment.environment.name"]) == (
        "error",
        "payorch.serve",
        "staging",
    )
    assert "sk_live_secret" not in err


class CtrlCWhileWritten:
    """A stderr whose first write is met by a Ctrl-C (a real SIGINT to this process)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.buffer = self
        self.interrupted = False

    def write(self, data: bytes) -> int:
        if not self.interrupted:
            self.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)
        self.written += data
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_a_second_ctrl_c_while_serve_says_the_first_is_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while `payorch serve` started, then again while its line was said (it loads the
    service's modules again for it, about 2 s): the traceback of a KeyboardInterrupt, no line."""
    group = crashing_group()

    @group.command()
    def serve() -> None:
        raise KeyboardInterrupt

    stderr = CtrlCWhileWritten()
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        with pytest.raises(SystemExit) as exited:
            run_cli(group, ["serve"], {})
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C ended the command with a traceback")

    assert exited.value.code == 1
    assert stderr.interrupted
    assert orjson.loads(bytes(stderr.written))["event"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_payorch_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli(crashing_group(), ["boom"], {"PAYORCH_DEBUG": "1"})
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "KeyError: 'sk_live_secret'" in err
    assert err.endswith("\npayorch boom: internal error: KeyError; please report it\n")


@pytest.mark.parametrize(
    ("argv", "option", "value"),
    [
        (["serve"], "--port", "eighty"),
        (["serve"], "--keep-alive-timeout", "1.5"),
        (["demo"], "--port", "8000-8010"),
        (["dashboard"], "--port", "x"),
        (
            ["simulate", "--url", "http://127.0.0.1:9", "--api-key", "k", "--payments", "1"],
            "--concurrency",
            "x",
        ),
    ],
)
def test_a_number_option_given_no_number_asks_for_one_not_for_a_range(
    argv: list[str], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """click said "is not a valid integer range", as if a range (1-5) were asked for."""
    with pytest.raises(SystemExit) as exited:
        main([*argv, option, value])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"payorch {argv[0]}: error: Invalid value for '{option}': '{value}' is not a valid integer.\n"
    )
    main([argv[0], "--help"])
    assert "INTEGER RANGE" not in capsys.readouterr().out
