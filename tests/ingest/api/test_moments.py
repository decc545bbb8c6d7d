"""One rule for a moment written as text (``ingest.moments``): the API's ``from`` and ``to`` and
``payorch report --from/--to`` take the same forms and refuse the same ones, each saying the rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from ingest.moments import MOMENT_RULE, parse_moment
from payorch.cli import cli
from tests.ingest.api.test_app import ADMIN, app, body_of, call

__all__ = ["app"]  # the fixture, used by name

TAKEN = [
    ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ("2026-11-20T10", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # ISO 8601's reduced precision
    ("2026-11-20T10+05:30", datetime(2026, 11, 20, 10, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
    ("2026-11-20T10:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ("2026-11-20 10:00:30", datetime(2026, 11, 20, 10, 0, 30, tzinfo=UTC)),
    ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ("2026-11-20t10:00:00z", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # RFC 3339 allows lower case
    (
        "2026-11-20T10:00:00,5+01:00",
        datetime(2026, 11, 20, 10, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=1))),
    ),
    ("2026-11-20T10:00:00.123456789Z", datetime(2026, 11, 20, 10, 0, 0, 123_456, tzinfo=UTC)),
]
REFUSED = [
    "20261120",  # ISO 8601's basic form
    "2026-W47-1",  # a week date
    "2026-324",  # an ordinal date
    "20261120T100000Z",
    "2026-11-20T10:00:00+0100",  # an offset without its colon
    "2026-11-20T10:00:00+01",
    "2026-11-20T10:00:00 Z",
    "2026-11-20_10:00",
    "2026-02-30",  # no such day
    "1763000000",  # not a Unix time
    "yesterday",
]


@pytest.mark.parametrize(("text", "moment"), TAKEN)
def test_the_forms_of_rfc_3339_are_read_the_same_by_the_rule(text: str, moment: datetime) -> None:
    assert parse_moment(text) == moment
    assert parse_moment(text).tzinfo is not None


@pytest.mark.parametrize("text", REFUSED)
def test_other_forms_are_refused_saying_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match="2026-11-20T10:00:00Z"):
        parse_moment(text)


@pytest.mark.parametrize(("text", "_"), TAKEN)
async def test_the_api_and_the_command_take_the_same_forms(app: object, text: str, _: datetime) -> None:
    answer = await call(app, "GET", f"/v1/violations?to={quote(text)}", [ADMIN], body_of(b""))
    # --to far enough ahead of --from that the window is never backwards.
    done = CliRunner().invoke(
        cli, ["report", "--data", "/nonexistent-payorch-data", "--from", "0001-01-02", "--to", text]
    )

    assert answer.status == 200, answer.body
    assert done.exit_code == 1, done.output  # past the arguments: no database there
    assert "no database at" in done.output


@pytest.mark.parametrize("text", REFUSED)
async def test_the_api_and_the_command_refuse_the_same_forms(app: object, text: str) -> None:
    answer = await call(app, "GET", f"/v1/violations?from={quote(text)}", [ADMIN], body_of(b""))
    done = CliRunner().invoke(cli, ["report", "--data", "/nonexistent-payorch-data", "--from", text])

    assert answer.status == 422
    error = answer.json()["errors"][0]  # type: ignore[index]
    assert (error["field"], error["code"]) == ("from", "invalid_format")
    assert MOMENT_RULE in error["message"]
    assert done.exit_code == 2
    assert f"{text!r} is not an ISO 8601 date or time: it " in done.output
    assert "2026-11-20T10:00:00Z" in done.output
