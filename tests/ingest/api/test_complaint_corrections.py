"""What ``POST /v1/complaints`` corrects in a complaint (ingest.api.complaint_fields) is said in
its answer and kept with it, as a payment's corrections are (PRODUCT.md section 5): its
``validation_errors``, warnings each with field, code, message, severity and raw. They were made,
or refused, without a word."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from engine.complaints import Complaint
from engine.types import MerchantId
from ingest.records import MemoryRecords
from tests.ingest.api.test_app import ACME, JSON, Answer, body_of, call
from tests.ingest.store.test_durable_api import running


async def post(app: object, body: Mapping[str, object]) -> Answer:
    return await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(orjson.dumps(body)))


def issue(field: str, code: str, message: str, raw: str | None) -> dict[str, object]:
    return {"field": field, "code": code, "message": message, "severity": "warning", "raw": raw}


CORRECTED = [
    issue("complaint_id", "normalized", 'read the field "Complaint-ID" as complaint_id', "Complaint-ID"),
    issue("complaint_id", "normalized", 'dropped the spaces around "zendesk/4711"', " zendesk/4711 "),
    issue("received_at", "normalized", 'read the field "receivedAt" as received_at', "receivedAt"),
    issue("category", "normalized", 'dropped the spaces around "timeout"', "timeout\t"),
    issue(
        "received_at",
        "normalized",
        'read "2026-11-20 08:00" as 2026-11-20T08:00:00Z (no offset: UTC)',
        "2026-11-20 08:00",
    ),
    issue(
        "description",
        "card_number_masked",
        "masked a card number in the description: only its first six and last four digits are kept",
        "the charge on 424242******4242 hung",
    ),
]


async def test_a_complaints_corrections_are_answered_and_kept_with_it(tmp_path: Path) -> None:
    body = {
        "Complaint-ID": " zendesk/4711 ",
        "receivedAt": "2026-11-20 08:00",
        "category": "timeout\t",
        "description": "the charge on 4242 4242 4242 4242 hung",
    }
    async with running(tmp_path) as app:
        filed = await post(app, body)
        # The same complaint in its own words: the one stored, answered as it was (not a 409).
        again = await post(
            app,
            {
                "complaint_id": "zendesk/4711",
                "received_at": "2026-11-20T08:00:00Z",
                "category": "timeout",
                "description": "the charge on 4242 4242 4242 4242 hung",
            },
        )
        plain = await post(app, {"complaint_id": "plain-1", "category": "timeout"})
        both = await post(app, {"complaint_id": "c-2", "ComplaintId": "c-3", "category": "timeout"})
        twice = await post(app, {"complaint_id": "c-4", "complaintId": "c-4", "category": "timeout"})
    async with running(tmp_path) as app:  # kept in the database: read back after a restart
        read: Any = (await call(app, "GET", "/v1/complaints/zendesk/4711", [ACME], body_of(b""))).json()
        listed: Any = (await call(app, "GET", "/v1/complaints", [ACME], body_of(b""))).json()

    assert filed.status == 201, filed.body
    answer: Any = filed.json()
    assert (answer["complaint_id"], answer["received_at"]) == ("zendesk/4711", "2026-11-20T08:00:00Z")
    assert answer["validation_errors"] == CORRECTED
    assert (again.status, again.json()) == (200, answer)
    assert read["validation_errors"] == CORRECTED
    by_id = {complaint["complaint_id"]: complaint for complaint in listed["complaints"]}
    assert by_id["zendesk/4711"]["validation_errors"] == CORRECTED
    assert plain.status == 201
    assert plain.json()["validation_errors"] == by_id["plain-1"]["validation_errors"] == []
    # One field given two values under two spellings: refused, nothing stored.
    assert both.status == 422
    refused: Any = both.json()
    assert [(error["field"], error["code"]) for error in refused["errors"]] == [
        ("complaint_id", "conflicting_fields")
    ]
    assert "c-2" not in by_id and "c-3" not in by_id
    assert twice.status == 201
    noted: Any = twice.json()
    assert [(issue["field"], issue["code"]) for issue in noted["validation_errors"]] == [
        ("complaint_id", "duplicate_field")
    ]


async def test_a_complaints_corrections_are_counted_apart_from_a_payments(tmp_path: Path) -> None:
    # They were kept with the complaint and counted nowhere, while a payment's were: a support desk
    # writing field names another way was seen in no metric.
    async with running(tmp_path) as app:
        await post(app, {"Complaint-ID": " c-1 ", "category": "timeout"})
        await post(app, {"complaintId": "c-2", "category": "timeout", "receivedAt": "2026-11-20"})
        await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "1,000"}'))
        scraped = await call(app, "GET", "/metrics", [], body_of(b""))
    counted = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
        if sample.name == "payorch_validation_issues_total"
    }

    def issues(field: str, code: str, intake: str) -> float:
        return counted.get((("code", code), ("field", field), ("intake", intake)), 0)

    assert issues("complaint_id", "normalized", "complaint") == 3  # two names, one trim
    assert issues("received_at", "normalized", "complaint") == 2  # a name, a date alone
    assert issues("amount", "ambiguous_separator", "payment") == 1
    assert issues("complaint_id", "normalized", "payment") == 0
    assert not any(
        dict(labels)["intake"] == "complaint" and dict(labels)["field"] == "amount" for labels in counted
    )


async def test_a_category_spelled_another_way_is_filed_as_the_taxonomy_writes_it(tmp_path: Path) -> None:
    # "Double-Charge" was stored as spelled (the merchant's reads and exports kept it apart from
    # double_charge), "timeouts" mapped to nothing and "double charge" was 422 with no hint.
    spelled = {
        "Double-Charge": "double_charge",
        "double charge": "double_charge",
        "TIMEOUTS": "timeout",
        "Slow.Payments": "slow_payment",
        "mysteries": "mysteries",  # names no category: kept, unmapped as before
        "card not present": "card_not_present",
        "timeout": "timeout",
    }
    async with running(tmp_path) as app:
        filed = {
            given: await post(app, {"complaint_id": f"c-{n}", "category": given})
            for n, given in enumerate(spelled)
        }
        read: Any = (await call(app, "GET", "/v1/complaints/c-2", [ACME], body_of(b""))).json()

    for given, taken in spelled.items():
        answer: Any = filed[given].json()
        assert (filed[given].status, answer["category"]) == (201, taken), given
    notes = {given: filed[given].json()["validation_errors"] for given in spelled}
    assert notes["Double-Charge"] == [
        issue(
            "category",
            "normalized",
            'read the category "Double-Charge" as double_charge, the taxonomy\'s',
            "Double-Charge",
        )
    ]
    assert notes["card not present"] == [
        issue(
            "category",
            "normalized",
            'read the category "card not present" as card_not_present (spaces as _), which the '
            "taxonomy does not name",
            "card not present",
        )
    ]
    assert notes["mysteries"] == notes["timeout"] == []
    # Stored so: the report's taxonomy maps it, and the merchant's reads and exports say it alike.
    assert (read["category"], read["validation_errors"]) == ("timeout", notes["TIMEOUTS"])


async def test_a_complaint_stored_as_spelled_before_is_the_one_filed_again(tmp_path: Path) -> None:
    # Stored before categories were filed as the taxonomy writes them, then filed again (a retry
    # of the support desk's import): the same complaint, not a 409 complaint_exists.
    records = MemoryRecords()
    old = Complaint("z-1", MerchantId("m_acme"), datetime(2026, 11, 20, tzinfo=UTC), "Double-Charge")
    await records.record_complaint(old)
    body = {"complaint_id": "z-1", "category": "Double-Charge", "received_at": "2026-11-20T00:00:00Z"}
    async with running(tmp_path, records=records) as app:
        again = await post(app, body)
        other = await post(app, {**body, "category": "timeout"})

    assert (again.status, again.json()["category"]) == (200, "Double-Charge")
    assert other.status == 409
