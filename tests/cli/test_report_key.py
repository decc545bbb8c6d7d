"""``payorch report --api``'s admin key: checked before anything is sent, by where it came from, and
never shown in what the command says."""

from __future__ import annotations

import pytest

from payorch.cli import main
from tests.cli.test_report_service import FakeService, fake  # noqa: F401 - fake is a fixture

SECRET = "adm_secret_4f9d"  # noqa: S105 - a key the tests check is never shown


def said(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int | str | None, str, str]:
    """How ``payorch report ARGS`` ended: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main(["report", *args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


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
