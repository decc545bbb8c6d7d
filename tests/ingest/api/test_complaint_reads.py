"""``GET /v1/complaints/{complaint_id}``: a merchant reads back what it filed (there was no way
to: only an admin's ``/v1/analytics/complaints`` showed complaints), with the contract it maps to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from payorch.report import map_complaint
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, ADMIN, GLOBEX, JSON, Answer, body_of, call, complain


@pytest.fixture(params=["duckdb", "memory"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """The app as ``payorch serve`` makes it (with the analytics' mapper), over either store."""
    config = parse_config(CONFIG)
    settings = Settings(
        config=config,
        data_dir=tmp_path,
        durable=request.param == "duckdb",
        complaint_mapper=partial(map_complaint, config),
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def read(app: object, key: tuple[bytes, bytes], complaint_id: str, query: str = "") -> Answer:
    return await call(app, "GET", f"/v1/complaints/{complaint_id}{query}", [key], body_of(b""))


async def test_a_merchant_reads_back_its_own_complaint_and_no_other_merchants(served: object) -> None:
    paid = await call(served, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    filed = await complain(served, ACME, complaint_id="ticket-1", payment_id=paid.json()["payment_id"])
    assert filed.status == 201, filed.body

    own = await read(served, ACME, "ticket-1")
    admin = await read(served, ADMIN, "ticket-1")
    other = await read(served, GLOBEX, "ticket-1")
    other_naming_it = await read(served, GLOBEX, "ticket-1", "?merchant_id=m_acme")
    unknown = await read(served, ACME, "ticket-2")
    nobody = await read(served, (b"x-nothing", b""), "ticket-1")

    assert (own.status, admin.status) == (200, 200), own.body
    shown: Any = own.json()
    assert {name: shown[name] for name in filed.json()} == filed.json()  # as stored
    assert admin.json() == shown
    for refused in (other, other_naming_it, unknown):  # another merchant's is as none
        assert refused.status == 404, refused.body
        assert refused.json()["code"] == "not_found"
    assert nobody.status == 401


async def test_an_admin_names_the_merchant_when_two_filed_the_same_id(served: object) -> None:
    await complain(served, ACME, complaint_id="ticket-1", description="acme's")
    await complain(served, GLOBEX, complaint_id="ticket-1", description="globex's")

    either = await read(served, ADMIN, "ticket-1")
    globex = await read(served, ADMIN, "ticket-1", "?merchant_id=m_globex")
    own = await read(served, GLOBEX, "ticket-1", "?merchant_id=m_globex")

    assert either.status == 422
    errors: Any = either.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [("merchant_id", "ambiguous")]
    assert (globex.status, globex.json()["description"]) == (200, "globex's")
    assert own.json() == globex.json()


async def test_a_complaint_shows_the_contract_the_report_maps_it_to(served: object) -> None:
    refused = await call(served, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "12.345"}'))
    payment_id = refused.json()["payment_id"]
    # Paid, with its amount read past an ambiguous separator: an api/validation warning.
    corrected = await call(served, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "1,250"}'))
    assert corrected.json()["status"] == "succeeded"
    filed = {
        "explicit": await complain(served, ACME, complaint_id="c-1", contract_id="router/timeout"),
        "payment": await complain(
            served, ACME, complaint_id="c-2", category="request_rejected", payment_id=payment_id
        ),
        "request": await complain(
            served, ACME, complaint_id="c-3", category="weird", request_id=refused.headers["request-id"]
        ),
        "category": await complain(served, ACME, complaint_id="c-4", category="Double-Charge"),
        "unmapped": await complain(served, ACME, complaint_id="c-5", category="weird"),
        # Charged twice, says the merchant: the corrected field is not what it is about.
        "corrected": await complain(
            served,
            ACME,
            complaint_id="c-6",
            category="double_charge",
            payment_id=corrected.json()["payment_id"],
        ),
    }
    assert [answer.status for answer in filed.values()] == [201] * 6

    shown = {
        way: (await read(served, ACME, str(answer.json()["complaint_id"]))).json()
        for way, answer in filed.items()
    }

    assert {way: (answer["mapped_contract"], answer["mapped_by"]) for way, answer in shown.items()} == {
        "explicit": ("router/timeout", "explicit"),
        "payment": ("api/validation", "payment"),  # its payment's violation confirms its category
        "request": ("api/validation", "request"),  # a category of no contract: the request's
        "category": ("idempotency/key-reused", "category"),
        "unmapped": ("unmapped", "unmapped"),
        "corrected": ("idempotency/key-reused", "category"),
    }


async def test_a_complaint_id_holding_a_card_number_is_read_as_given_or_as_kept(served: object) -> None:
    filed = await complain(served, ACME, complaint_id="4000000000000127", description="first")
    kept = str(filed.json()["complaint_id"])

    as_given = await read(served, ACME, "4000000000000127")
    as_kept = await read(served, ACME, kept)
    missing = await read(served, ACME, "4000000000180127")

    assert (as_given.status, as_kept.status) == (200, 200)
    assert as_given.json() == as_kept.json()
    assert as_given.json()["complaint_id"] == kept
    assert missing.status == 404
    assert b"4000000000180127" not in missing.body  # the 404 names the id masked


async def test_an_app_made_without_a_mapper_shows_no_mapping(tmp_path: Path) -> None:
    application = create_app(Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=False))
    async with application.router.lifespan_context(application):
        await complain(application, ACME, complaint_id="ticket-1")
        shown = await read(application, ACME, "ticket-1")

    assert shown.status == 200
    assert (shown.json()["mapped_contract"], shown.json()["mapped_by"]) == (None, None)


async def listed(app: object, key: tuple[bytes, bytes], query: str = "") -> Answer:
    return await call(app, "GET", f"/v1/complaints{query}", [key], body_of(b""))


def ids(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.body
    complaints: Any = answer.json()["complaints"]
    return [str(complaint["complaint_id"]) for complaint in complaints]


async def test_complaints_are_listed_newest_first_by_received_at(served: object) -> None:
    for complaint_id, received_at in (
        ("c-b", "2026-11-20T10:00:00Z"),
        ("c-old", "2026-11-01T00:00:00Z"),
        ("c-new", "2026-11-25T00:00:00+01:00"),
        ("c-a", "2026-11-20T11:00:00+01:00"),  # the same moment as c-b: by id then
        ("c-c", "2026-11-20T10:00:00Z"),
    ):
        assert (
            await complain(served, ACME, complaint_id=complaint_id, received_at=received_at)
        ).status == 201
    await complain(served, GLOBEX, complaint_id="g-1", received_at="2026-11-21T00:00:00Z")

    own = await listed(served, ACME)
    window = await listed(served, ACME, "?from=2026-11-20T10:00:00Z&to=2026-11-24T23:00:00Z")
    first_two = await listed(served, ACME, "?limit=2")

    assert ids(own) == ["c-new", "c-c", "c-b", "c-a", "c-old"]
    assert own.json()["has_more"] is False
    again = await complain(served, ACME, complaint_id="c-new", received_at="2026-11-25T00:00:00+01:00")
    shown: Any = own.json()["complaints"]
    assert shown[0] == again.json()  # as stored
    assert ids(window) == ["c-c", "c-b", "c-a"]  # from inclusive, to exclusive
    assert (ids(first_two), first_two.json()["has_more"]) == (["c-new", "c-c"], True)


def at(minutes: int) -> str:
    return (datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat()


async def walk(
    app: object, key: tuple[bytes, bytes], query: str, between: Sequence[dict[str, object]] = ()
) -> list[dict[str, Any]]:
    """Every page of the list, each ``starting_after`` the last one seen; the complaints of
    ``between`` are filed (by acme) after the first page."""
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = await listed(app, key, f"{query}&starting_after={cursor}")
        assert page.status == 200, page.body
        seen += page.json()["complaints"]  # type: ignore[arg-type]
        if not page.json()["has_more"]:
            return seen
        cursor = seen[-1]["complaint_id"]
        for filing in between:
            assert (await complain(app, ACME, **filing)).status == 201
        between = []


async def test_paging_lists_each_complaint_once_while_more_are_filed(served: object) -> None:
    for number in range(250):  # four at each minute (ordered by id), so a page ends amid a minute
        await complain(served, ACME, complaint_id=f"c-{number:03}", received_at=at(number // 4))
    for number in range(5):
        await complain(served, GLOBEX, complaint_id=f"g-{number}", received_at=at(number * 15))
    # The first page ends with c-150, at minute 37 (c-151 before it, c-149 and c-148 after).
    filed_meanwhile: list[dict[str, object]] = [
        {"complaint_id": "n-newest", "received_at": at(1000)},  # before the first page's end
        {"complaint_id": "n-oldest", "received_at": at(-1000)},  # after it: still to come
        {"complaint_id": "c-1505", "received_at": at(37)},  # at its time, before it by id
        {"complaint_id": "c-1495", "received_at": at(37)},  # at its time, after it by id
    ]

    seen = await walk(served, ACME, "?limit=100", filed_meanwhile)
    everything = await walk(served, ADMIN, "?limit=100")

    names = [str(complaint["complaint_id"]) for complaint in seen]
    originals = [f"c-{number:03}" for number in reversed(range(250))]
    assert names == [*originals[:100], "c-1495", *originals[100:], "n-oldest"]
    order = [(complaint["received_at"], complaint["complaint_id"]) for complaint in seen]
    assert order == sorted(order, reverse=True)
    listed_by_admin = [str(complaint["complaint_id"]) for complaint in everything]
    assert sorted(listed_by_admin) == sorted(
        [
            *originals,
            *(str(filing["complaint_id"]) for filing in filed_meanwhile),
            *(f"g-{n}" for n in range(5)),
        ]
    )
    by_merchant = [(complaint["received_at"], complaint["merchant_id"]) for complaint in everything]
    assert by_merchant == sorted(by_merchant, reverse=True)


async def test_a_merchant_lists_its_own_complaints_only(served: object) -> None:
    await complain(served, ACME, complaint_id="a-1", received_at=at(1))
    await complain(served, ACME, complaint_id="shared", received_at=at(2))
    await complain(served, GLOBEX, complaint_id="shared", received_at=at(3))
    await complain(served, GLOBEX, complaint_id="g-1", received_at=at(4))

    own = await listed(served, GLOBEX)
    naming_itself = await listed(served, GLOBEX, "?merchant_id=m_globex")
    naming_another = await listed(served, GLOBEX, "?merchant_id=m_acme")
    past_anothers = await listed(served, GLOBEX, "?starting_after=a-1")
    past_its_own = await listed(served, GLOBEX, "?starting_after=shared")
    admin_all = await listed(served, ADMIN)
    admin_one = await listed(served, ADMIN, "?merchant_id=m_acme")
    admin_past_one = await listed(served, ADMIN, "?merchant_id=m_acme&starting_after=shared")
    admin_past_either = await listed(served, ADMIN, "?starting_after=shared")
    nobody = await listed(served, (b"x-nothing", b""))

    assert ids(own) == ids(naming_itself) == ["g-1", "shared"]
    assert {complaint["merchant_id"] for complaint in own.json()["complaints"]} == {"m_globex"}  # type: ignore[attr-defined]
    assert (ids(naming_another), naming_another.json()["has_more"]) == ([], False)
    assert ids(past_its_own) == []
    assert ids(admin_all) == ["g-1", "shared", "shared", "a-1"]
    assert ids(admin_one) == ["shared", "a-1"]
    assert ids(admin_past_one) == ["a-1"]
    for refused, code in ((past_anothers, "unknown_complaint"), (admin_past_either, "ambiguous")):
        assert refused.status == 422, refused.body
        errors: Any = refused.json()["errors"]
        assert [(error["field"], error["code"]) for error in errors] == [("starting_after", code)]
    assert nobody.status == 401


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("?since=2026-11-01", "since", "unknown_parameter"),
        ("?ending_before=c-1", "ending_before", "unknown_parameter"),
        ("?limit=1&limit=2", "limit", "repeated_parameter"),
        ("?starting_after=a&starting_after=b", "starting_after", "repeated_parameter"),
        ("?limit=0", "limit", "out_of_range"),
        ("?limit=10001", "limit", "out_of_range"),
        ("?limit=+1", "limit", "invalid_format"),
        ("?from=2026-11-02&to=2026-11-01", "from", "after_to"),
        ("?from=1764547200", "from", "invalid_format"),
    ],
)
async def test_a_list_query_it_cannot_read_is_refused(
    served: object, query: str, field: str, code: str
) -> None:
    for key in (ACME, ADMIN):
        refused = await listed(served, key, query)

        assert refused.status == 422, refused.body
        errors: Any = refused.json()["errors"]
        assert [(error["field"], error["code"]) for error in errors] == [(field, code)]


async def test_a_list_of_up_to_ten_thousand_is_taken(served: object) -> None:
    await complain(served, ACME, complaint_id="a-1")

    most = await listed(served, ACME, "?limit=10000")
    one = await listed(served, ACME, "?limit=1")

    assert ids(most) == ids(one) == ["a-1"]
    assert (most.json()["has_more"], one.json()["has_more"]) == (False, False)


async def test_a_complaint_id_holding_a_slash_is_read_back(served: object) -> None:
    filed = await complain(served, ACME, complaint_id="zendesk/4711", description="first")
    assert filed.status == 201, filed.body  # the id's pattern takes a `/`

    as_given = await read(served, ACME, "zendesk/4711")
    trailing = await read(served, ACME, "zendesk/4711/")
    empty = await read(served, ACME, "")
    metrics = await call(served, "GET", "/metrics", [], body_of(b""))

    assert as_given.status == 200, as_given.body
    assert as_given.json()["complaint_id"] == "zendesk/4711"
    # A slash at either end is the path's: the 404 names the route without it, as everywhere.
    assert trailing.status == empty.status == 404
    assert "/v1/complaints/zendesk/4711 (without the trailing slash)" in str(trailing.json()["detail"])
    assert "/v1/complaints (without the trailing slash)" in str(empty.json()["detail"])
    assert 'route="/v1/complaints/{complaint_id}"' in metrics.body.decode()


@pytest.mark.parametrize(
    "complaint_id", ["zendesk/", "zendesk//4711", "zendesk/../4711", "zendesk/./4711", "a/."]
)
async def test_a_complaint_id_that_could_not_be_read_back_at_its_path_is_refused(
    served: object, complaint_id: str
) -> None:
    """``POST /v1/complaints`` took these (201) and gave them out, but no client reads them back:
    a trailing ``/`` is the path's (404), and clients and proxies drop ``.`` and ``..`` segments
    and merge ``//``, so the complaint could be filed and never seen again."""
    filed = await complain(served, ACME, complaint_id=complaint_id)
    listed = await call(served, "GET", "/v1/complaints", [ACME], body_of(b""))

    assert filed.status == 422, filed.body
    errors: Any = filed.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [("complaint_id", "unreadable")]
    assert "GET /v1/complaints/{complaint_id}" in errors[0]["message"]
    assert listed.json()["complaints"] == []  # nothing stored


async def test_a_complaint_id_with_dots_inside_its_segments_is_taken_and_read_back(served: object) -> None:
    filed = await complain(served, ACME, complaint_id="desk.v2/...x/..y/4711.")

    assert filed.status == 201, filed.body
    assert (await read(served, ACME, "desk.v2/...x/..y/4711.")).status == 200
