"""``payorch report --api``'s admin key: checked before anything is sent, by where it came from, and
never shown in what the command says."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from payorch.cli import main
from tests.cli.test_report_service import FakeService, fake  # noqa: F401 - fake is a fixture

SECRET = "adm_secret_4f9d"  # noqa: S105 - a key the tests check is never shown


def said(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int | str | None, str, str]:
    """How ``payorch report ARGS`` ended: its exit code, stdout and stderr."""
    try:
        main(["report", *args])
    except SystemExit as exited:
        code = exited.code
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (f"{SECRET}\n", "holds spaces, control or non-ASCII characters (a trailing newline?)"),
        (f"{SECRET}\r", "holds spaces, control or non-ASCII characters (a trailing newline?)"),
        (f"{SECRET}\u00e9", "holds spaces, control or non-ASCII characters"),
        (f"{SECRET}\u00a0", "holds spaces, control or non-ASCII characters"),
        (f" {SECRET}", "holds spaces, control or non-ASCII characters"),
        ("   ", "holds spaces, control or non-ASCII characters"),
        ("", "is empty"),
    ],
)
def test_a_key_no_header_can_carry_is_a_usage_error_that_never_shows_it(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    problem: str,
) -> None:
    monkeypatch.delenv("PAYORCH_API_KEY", raising=False)
    given = said(capsys, "--api", fake.url, "--api-key", key)
    monkeypatch.setenv("PAYORCH_API_KEY", key)
    from_environment = said(capsys, "--api", fake.url)

    assert given == (2, "", f"payorch report: error: --api-key {problem}{given[2].split(problem)[1]}")
    assert given[2].count("\n") == 1
    if key:  # click reads an empty variable as none: "--api needs an admin key"
        assert from_environment[:2] == (2, "")
        assert from_environment[2].startswith(f"payorch report: error: PAYORCH_API_KEY {problem}")
    for err in (given[2], from_environment[2]):
        assert SECRET not in err
        assert "Traceback" not in err
    assert fake.asked == []  # nothing was sent


def key_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "admin.key"
    path.write_text(text, encoding="utf-8", newline="")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("text", [SECRET, f"{SECRET}\n", f"{SECRET}\r\n", f"{SECRET}\n\n"])
def test_the_key_file_gives_the_key_and_wins_over_the_environment(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    text: str,
) -> None:
    monkeypatch.setenv("PAYORCH_API_KEY", "adm_of_another_service")  # the command line wins

    done = said(capsys, "--api", fake.url, "--api-key-file", str(key_file(tmp_path, text)))

    assert done == (0, "violations: []\n", "")
    assert [authorization for _, authorization in fake.asked] == [f"Bearer {SECRET}"]


def test_a_key_file_other_users_may_read_is_used_and_named_in_a_warning(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = key_file(tmp_path, f"{SECRET}\n", 0o644)

    done = said(capsys, "--api", fake.url, "--api-key-file", str(path))

    assert done == (
        0,
        "violations: []\n",
        f"payorch report: WARNING: {path} holds an admin API key and is open to other users "
        "(mode 0644): chmod 600 it\n",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("\n", "is empty"),
        (f"{SECRET} \n", "holds spaces, control or non-ASCII characters"),
        (f"admin_api_keys: [{SECRET}]\nmerchants: []\n", "holds more than one line"),
        (SECRET * 300, "is larger than 4096 bytes: not a key file"),
        (f"{SECRET}\u00e9", "holds spaces, control or non-ASCII characters"),
    ],
)
def test_a_key_file_that_holds_no_key_is_a_usage_error_that_never_shows_it(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    problem: str,
) -> None:
    path = key_file(tmp_path, text)

    code, out, err = said(capsys, "--api", fake.url, "--api-key-file", str(path))

    assert (code, out) == (2, "")
    assert err.startswith(f"payorch report: error: --api-key-file {path} {problem}")
    assert err.count("\n") == 1
    assert SECRET not in err
    assert fake.asked == []


def test_a_key_file_that_cannot_be_read_is_a_usage_error_naming_it(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "nobody-writes"
    os.mkfifo(fifo)
    cases = {
        tmp_path / "missing.key": "does not exist",
        fifo: "is a pipe that nothing was written to",  # at once, not waited on
        tmp_path: "is a directory",
    }
    for path, problem in cases.items():
        code, out, err = said(capsys, "--api", fake.url, "--api-key-file", str(path))

        assert (code, out) == (2, ""), err
        assert problem in err
        assert str(path) in err
        assert err.count("\n") == 1
    assert fake.asked == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--api", "URL", "--api-key", SECRET), "give --api-key-file or --api-key, not both"),
        ((), "without --api or --data it reads the file ./data/payorch.duckdb and takes no --api-key-file"),
        (("--data", "data"), "--data reads the file and takes no --api-key-file (it is for --api)"),
    ],
)
def test_a_key_file_with_another_key_or_without_api_is_a_usage_error(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: tuple[str, ...],
    expected: str,
) -> None:
    path = key_file(tmp_path, SECRET)
    given = [fake.url if arg == "URL" else arg for arg in args]

    code, out, err = said(capsys, *given, "--api-key-file", str(path))

    assert (code, out, err) == (2, "", f"payorch report: error: {expected}" + err.split(expected)[1])
    assert SECRET not in err
    assert fake.asked == []


def test_help_says_to_prefer_the_key_file_or_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    assert "--api-key-file FILE" in help_text
    assert "ps shows it to every user" in help_text
    assert "prefer --api-key-file or PAYORCH_API_KEY" in help_text


class Terminal(io.BytesIO):
    """A standard input that is a terminal: reading it would wait for someone to type the key."""

    def isatty(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("a terminal is never read: nothing prompts for the key")


def piped(monkeypatch: pytest.MonkeyPatch, stream: io.BytesIO) -> None:
    """Make ``stream`` the process's standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))


@pytest.mark.parametrize("text", [SECRET, f"{SECRET}\n", f"{SECRET}\r\n"])
def test_a_dash_reads_the_key_from_stdin(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
) -> None:
    monkeypatch.setenv("PAYORCH_API_KEY", "adm_of_another_service")
    piped(monkeypatch, io.BytesIO(text.encode()))

    done = said(capsys, "--api", fake.url, "--api-key-file", "-")

    assert done == (0, "violations: []\n", "")
    assert [authorization for _, authorization in fake.asked] == [f"Bearer {SECRET}"]


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (io.BytesIO(b""), "is empty: nothing was piped in"),
        (io.BytesIO(b"\n"), "is empty"),
        (Terminal(), "is a terminal: pipe the key in"),
        (io.BytesIO(f" {SECRET}\n".encode()), "holds spaces, control or non-ASCII characters"),
        (io.BytesIO(f"{SECRET}\t\n".encode()), "holds spaces, control or non-ASCII characters"),
        (io.BytesIO(f"{SECRET}\n{SECRET}\n".encode()), "holds more than one line"),
        (io.BytesIO(SECRET.encode() * 300), "holds more than 4096 bytes: not a key"),
    ],
)
def test_a_dash_with_no_key_on_stdin_is_a_usage_error_that_never_shows_it(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stream: io.BytesIO,
    problem: str,
) -> None:
    piped(monkeypatch, stream)

    code, out, err = said(capsys, "--api", fake.url, "--api-key-file", "-")

    assert (code, out) == (2, "")
    assert err.startswith(f"payorch report: error: --api-key-file - (stdin) {problem}")
    assert err.count("\n") == 1
    assert SECRET not in err
    assert fake.asked == []


def test_a_file_named_dash_is_read_as_dot_slash_dash(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "-").write_text(f"{SECRET}\n", encoding="utf-8")
    (tmp_path / "-").chmod(0o600)
    monkeypatch.chdir(tmp_path)
    piped(monkeypatch, Terminal())

    done = said(capsys, "--api", fake.url, "--api-key-file", "./-")

    assert done == (0, "violations: []\n", "")
    assert [authorization for _, authorization in fake.asked] == [f"Bearer {SECRET}"]
