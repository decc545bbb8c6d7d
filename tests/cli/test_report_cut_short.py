"""``payorch report`` cut short: a stdout whose reader has gone (``| head -1``) ends it quietly, exit
141 as ``cat`` ends; a stdout that fails otherwise (a full disk) is one line, exit 1. Neither is an
internal error, and nothing is left to fail again when Python flushes stdout on the way out. Ctrl-C
(SIGTERM, SIGHUP) is one line naming the command, exit 1."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from payorch.cli import main
from tests.cli.test_report_service import ADMIN_KEY, FakeService, fake  # noqa: F401 - fake is a fixture

#: More than a pipe holds (64 KiB), as a fortnight's report of many contracts is.
REPORT = b"violations:\n" + b"  - {id: router/timeout, count: 932, external_reports: 8}\n" * 4000


@pytest.fixture
def closed_pipe() -> Iterator[TextIO]:
    """The write end of a pipe whose reader has gone."""
    reader, writer = os.pipe()
    os.close(reader)
    with open(writer, "w", encoding="utf-8") as stream:
        yield stream


def report_to(stdout: TextIO, url: str, monkeypatch: pytest.MonkeyPatch) -> int | str | None:
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as exited:
        main(["report", "--api", url, "--api-key", ADMIN_KEY])
    return exited.value.code


def test_a_reader_gone_ends_the_report_quietly_with_exit_141_as_cat_ends(
    fake: FakeService,  # noqa: F811 - the fixture
    closed_pipe: TextIO,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.answer = (200, "application/yaml", REPORT)

    code = report_to(closed_pipe, fake.url, monkeypatch)

    assert (code, capsys.readouterr().err) == (141, "")
    closed_pipe.write("what was left\n")
    closed_pipe.flush()  # stdout's way out: it no longer fails


def test_a_stdout_that_fails_is_one_line_not_an_internal_error(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.answer = (200, "application/yaml", REPORT)
    with open("/dev/full", "w", encoding="utf-8") as full:
        code = report_to(full, fake.url, monkeypatch)
        full.flush()  # nothing left to fail on the way out

    assert (code, capsys.readouterr().err) == (
        1,
        "payorch report: cannot write to stdout: No space left on device\n",
    )


class Killed(BaseException):
    """What a signal's default action does, raised instead (it would end the test's process)."""


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_the_service_answers_is_one_line_naming_the_command_and_writes_nothing(
    fake: FakeService,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    number: signal.Signals,
) -> None:
    """Ctrl-C, and SIGTERM (a job's time limit) or SIGHUP (the SSH session dropped), which killed
    the report without a word, by their default action."""
    fake.delay_s = 5.0  # a long window being read
    out = tmp_path / "retro.yaml"
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    stop = threading.Timer(0.3, signal.pthread_kill, (main_thread, number))

    def killed(number: int, frame: object) -> None:
        raise Killed(number)

    default = signal.getsignal(number)
    if number != signal.SIGINT:  # Python's own handler stays: Ctrl-C is KeyboardInterrupt
        signal.signal(number, killed)
    try:
        stop.start()
        with pytest.raises(SystemExit) as exited:
            main(["report", "--api", fake.url, "--api-key", ADMIN_KEY, "--out", str(out)])
    finally:
        stop.join()
        signal.signal(number, default)

    assert fake.answered == 0  # stopped then, not when the answer came
    assert (exited.value.code, capsys.readouterr()) == (1, ("", "payorch report: interrupted\n"))
    assert list(tmp_path.iterdir()) == []
