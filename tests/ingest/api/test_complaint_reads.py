"""``GET /v1/complaints/{complaint_id}``: a merchant reads back what it filed (there was no way
to: only an admin's ``/v1/analytics/complaints`` showed complaints), with the contract it maps to."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    filed = {
        "explicit": await complain(served, ACME, complaint_id="c-1", contract_id="router/timeout"),
        "payment": await complain(
            served, ACME, complaint_id="c-2", category="timeout", payment_id=payment_id
        ),
        "request": await complain(
            served, ACME, complaint_id="c-3", category="timeout", request_id=refused.headers["request-id"]
        ),
        "category": await complain(served, ACME, complaint_id="c-4", category="Double-Charge"),
        "unmapped": await complain(served, ACME, complaint_id="c-5", category="weird"),
    }
    assert [answer.status for answer in filed.values()] == [201] * 5

    shown = {
        way: (await read(served, ACME, str(answer.json()["complaint_id"]))).json()
        for way, answer in filed.items()
    }

    assert {way: (answer["mapped_contract"], answer["mapped_by"]) for way, answer in shown.items()} == {
        "explicit": ("router/timeout", "explicit"),
        "payment": ("api/validation", "payment"),  # its payment's violation wins over its category
        "request": ("api/validation", "request"),
        "category": ("idempotency/key-reused", "category"),
        "unmapped": ("unmapped", "unmapped"),
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
