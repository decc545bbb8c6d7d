"""``GET /v1/violations`` a page at a time: ``starting_after`` the last one's ``seq``. Its
``has_more`` had no cursor beside it, and paging by ``to=<the last timestamp>`` skipped the
violations that shared that timestamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.contracts import ContractViolation, Severity
from engine.types import ContractId, MerchantId, RequestId
from ingest.records import Records
from tests.ingest.api.test_app import ADMIN, Answer, body_of, call

MOMENT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def violation(message: str, at: datetime, contract: str = "router/timeout") -> ContractViolation:
    return ContractViolation(
        contract_id=ContractId(contract),
        request_id=RequestId(f"req_{message}"),
        severity=Severity.MAJOR,
        message=message,
        owner="payments-core",
        timestamp=at,
        merchant_id=MerchantId("m_acme"),
    )


async def listed(app: object, query: str = "", method: str = "GET") -> Answer:
    return await call(app, method, f"/v1/violations{query}", [ADMIN], body_of(b""))


async def walk(app: Any, query: str, between: int = 0) -> list[dict[str, Any]]:
    """Every page, each ``starting_after`` the last one's ``seq``; ``between`` violations more are
    recorded after the first page (newer than every other)."""
    records: Records = app.state.parts.records
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = await listed(app, f"{query}&starting_after={cursor}")
        assert page.status == 200, page.body
        seen += page.json()["violations"]  # type: ignore[arg-type]
        if not page.json()["has_more"]:
            return seen
        cursor = str(seen[-1]["seq"])
        for number in range(between):
            await records.record_violation(violation(f"later{number}", MOMENT + timedelta(hours=1)))
        await records.sync()
        between = 0


async def test_paging_lists_each_violation_once_when_many_share_a_timestamp(served: Any) -> None:
    records: Records = served.state.parts.records
    names = [f"v{number:02}" for number in range(23)]
    for number, name in enumerate(names):  # five at each instant: a page ends amid them
        await records.record_violation(violation(name, MOMENT + timedelta(seconds=number // 5)))
    await records.record_violation(violation("other", MOMENT + timedelta(seconds=2), "plan/coverage"))
    await records.sync()

    seen = await walk(served, "?contract_id=router/timeout&limit=4", between=3)
    everything = await walk(served, "?limit=7")
    window = await walk(served, "?from=2026-11-20T10:00:01Z&to=2026-11-20T10:00:03Z&limit=3")

    # Newest first, then the last recorded first; those recorded during the walk are newer than
    # its first page: not in it, never repeated.
    assert [listed["message"] for listed in seen] == list(reversed(names))
    assert sorted(listed["message"] for listed in everything) == sorted(
        [*names, "other", "later0", "later1", "later2"]
    )
    assert len({listed["seq"] for listed in everything}) == len(everything)
    assert [listed["message"] for listed in window] == ["other", *reversed(names[5:15])]


async def test_a_cursor_that_names_no_violation_is_refused(served: Any) -> None:
    records: Records = served.state.parts.records
    await records.record_violation(violation("only", MOMENT))
    await records.sync()
    shown: Any = (await listed(served)).json()["violations"]
    (only,) = shown

    asked = [f"?starting_after={only['seq'] + 1}", f"?starting_after={'9' * 20}", "?starting_after=abc"]
    answers = [await listed(served, query) for query in asked]
    heads = [await listed(served, query, method="HEAD") for query in asked]
    past_the_last = await listed(served, f"?starting_after={only['seq']}")

    errors: list[Any] = [answer.json()["errors"] for answer in answers]
    codes = [[(error["field"], error["code"]) for error in listed] for listed in errors]
    assert codes == [
        [("starting_after", "unknown_violation")],
        [("starting_after", "unknown_violation")],
        [("starting_after", "invalid_format")],
    ]
    assert [head.status for head in heads] == [422, 422, 422]
    assert past_the_last.json() == {"violations": [], "has_more": False}


async def test_the_openapi_document_describes_the_cursor(served: Any) -> None:
    document: Any = (await call(served, "GET", "/openapi.json", [], body_of(b""))).json()
    operation = document["paths"]["/v1/violations"]["get"]
    listed_schema = document["components"]["schemas"]["ListedViolationOut"]

    assert "starting_after" in {parameter["name"] for parameter in operation["parameters"]}
    assert "seq" in listed_schema["required"]
