"""``GET /v1/reports/retrospective`` in process, over the DuckDB store and the analytics renderer
that ``payorch serve`` wires in: the report's figures, its two forms, its window, who may read it,
and 503 where the process has no store or no renderer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from engine.complaints import Complaint
from engine.types import MerchantId, RequestId
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from payorch.report import render_tables
from tests.e2e.server import CONFIG
from tests.ingest.store.test_analytics_api import ACME, ADMIN, client
from tests.ingest.store.test_durable_api import pay, running

PATH = "/v1/reports/retrospective"
#: A payment whose currency the parser normalizes: one api/validation violation.
CORRECTED = b'{"amount": "12.50", "currency": "usd", "method": "card"}'
COMPLAINT = {"category": "timeout", "description": "the checkout hung"}


@asynccontextmanager
async def reporting(data_dir: Path) -> AsyncIterator[object]:
    renderer = partial(render_tables, parse_config(CONFIG))
    async with running(data_dir, report_renderer=renderer) as app:
        yield app


async def one_violation_and_one_complaint(app: object, http: httpx.AsyncClient) -> None:
    assert (await pay(app, body=CORRECTED)).status == 200
    filed = await http.post("/v1/complaints", json=COMPLAINT, headers=ACME)
    assert filed.status_code == 201


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_the_report_counts_violations_and_maps_complaints(tmp_path: Path) -> None:
    async with reporting(tmp_path) as app, client(app) as http:
        await one_violation_and_one_complaint(app, http)
        answer = await http.get(PATH, headers=ADMIN)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/yaml"
    report = yaml.safe_load(answer.text)
    by_id = {row["id"]: row for row in report["violations"]}
    assert by_id["api/validation"] == {
        "id": "api/validation",
        "count": 1,
        "external_reports": 0,
        "mismatch": False,
        "severity": "minor",
        "owner": "api-platform",
    }
    # A complaint about a contract that recorded nothing is the mismatch the report exists for.
    assert by_id["router/timeout"]["count"] == 0
    assert by_id["router/timeout"]["external_reports"] == 1
    assert by_id["router/timeout"]["mismatch"] is True
    assert report["complaints"] == {"received": 1, "unmapped": 0}
    assert report["mismatch_rule"] == {"min_ratio": 0.1, "min_reports": 1}


async def test_json_is_the_same_document_and_the_default_window_is_the_report_span(
    tmp_path: Path,
) -> None:
    async with reporting(tmp_path) as app, client(app) as http:
        await one_violation_and_one_complaint(app, http)
        as_yaml = await http.get(PATH, headers=ADMIN)
        as_json = await http.get(PATH, params={"format": "json"}, headers=ADMIN)

    assert as_json.headers["content-type"] == "application/json"
    from_json: dict[str, Any] = orjson.loads(as_json.content)
    from_yaml: dict[str, Any] = yaml.safe_load(as_yaml.text)
    assert from_json["violations"] == from_yaml["violations"]
    assert from_json["complaints"] == from_yaml["complaints"]
    window = from_json["window"]
    # CONFIG leaves reports.every_days at its default, 14.
    assert _moment(window["to"]) - _moment(window["from"]) == timedelta(days=14)


async def test_without_a_format_the_accept_header_chooses_json_or_yaml(tmp_path: Path) -> None:
    # A client generated from the OpenAPI document sends Accept: application/json: it got YAML.
    accepts = {
        "application/json": "application/json",
        "application/yaml;q=0.5, application/json": "application/json",
        "application/*;q=0.2, application/json;q=0.1": "application/yaml",
        "application/json;q=0, */*": "application/yaml",
        "*/*": "application/yaml",
        "text/html": "application/yaml",
    }
    async with reporting(tmp_path) as app, client(app) as http:
        answers = {accept: await http.get(PATH, headers={**ADMIN, "Accept": accept}) for accept in accepts}
        asked = await http.get(
            PATH, params={"format": "yaml"}, headers={**ADMIN, "Accept": "application/json"}
        )

    assert {accept: answer.headers["content-type"] for accept, answer in answers.items()} == accepts
    assert orjson.loads(answers["application/json"].content)["violations"] == []
    assert asked.headers["content-type"] == "application/yaml"  # format, when given, decides


async def test_the_window_comes_from_the_query(tmp_path: Path) -> None:
    async with reporting(tmp_path) as app, client(app) as http:
        await one_violation_and_one_complaint(app, http)
        past = {"from": "2025-03-01", "to": "2025-03-15T00:00:00Z", "format": "json"}
        answer = await http.get(PATH, params=past, headers=ADMIN)
        backwards = await http.get(PATH, params={"from": "2025-03-15", "to": "2025-03-01"}, headers=ADMIN)
        empty = await http.get(
            PATH, params={"from": "2025-03-15", "to": "2025-03-15T00:00:00Z"}, headers=ADMIN
        )

    report = orjson.loads(answer.content)
    assert report["window"] == {"from": "2025-03-01T00:00:00Z", "to": "2025-03-15T00:00:00Z"}
    assert report["violations"] == []  # this morning's violation and complaint are outside it
    assert report["complaints"] == {"received": 0, "unmapped": 0}
    for refused in (backwards, empty):
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "from"


async def test_a_complaint_maps_through_its_payments_violation_from_before_the_window(
    tmp_path: Path,
) -> None:
    async with reporting(tmp_path) as app, client(app) as http:
        paid = await pay(app, body=CORRECTED)  # its api/validation violation is recorded now
        assert paid.status == 200
        request_id = paid.headers["request-id"]
        start = datetime.now(UTC)  # the window starts after the violation, before the complaints
        about = {"payment_id": str(paid.json()["payment_id"])}
        # A category that names no contract: the payment's minor violation is all it maps by.
        other = {"category": "other"}
        filed = await http.post("/v1/complaints", json=COMPLAINT | about | other, headers=ACME)
        assert filed.status_code == 201, filed.text
        # Another merchant naming m_acme's request: its violation is not this complaint's. The
        # API refuses such a complaint now; one filed before that is still in the store.
        parts: Parts = app.state.parts  # type: ignore[attr-defined]
        stored = Complaint(
            complaint_id="cmp_old",
            merchant_id=MerchantId("m_globex"),
            received_at=datetime.now(UTC),
            category=COMPLAINT["category"],
            description=COMPLAINT["description"],
            request_id=RequestId(request_id),
        )
        assert await parts.records.record_complaint(stored) is None
        window = {"from": start.isoformat(), "to": (start + timedelta(minutes=5)).isoformat()}
        late = await http.get(PATH, params=window | {"format": "json"}, headers=ADMIN)
        whole = await http.get(PATH, params={"format": "json"}, headers=ADMIN)

    assert (late.status_code, whole.status_code) == (200, 200)
    rows = {
        name: [(row["id"], row["count"], row["external_reports"]) for row in answer.json()["violations"]]
        for name, answer in (("late", late), ("whole", whole))
    }
    # The payment's contract either way; only the count depends on the window.
    assert rows == {
        "late": [("api/validation", 0, 1), ("router/timeout", 0, 1)],
        "whole": [("api/validation", 1, 1), ("router/timeout", 0, 1)],
    }


@pytest.mark.parametrize(
    ("headers", "params", "status", "code"),
    [
        ({}, {}, 401, "unauthorized"),
        (ACME, {}, 403, "forbidden"),
        (ADMIN, {"format": "md"}, 422, "validation_failed"),
    ],
)
async def test_an_admin_key_and_a_built_format_are_needed(
    tmp_path: Path, headers: dict[str, str], params: dict[str, str], status: int, code: str
) -> None:
    async with reporting(tmp_path) as app, client(app) as http:
        answer = await http.get(PATH, params=params, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


@pytest.mark.parametrize("output", ["md", "html"])
async def test_a_form_not_built_yet_is_refused_saying_so(tmp_path: Path, output: str) -> None:
    """It was refused as any unknown format ("Input should be 'yaml' or 'json'"), though PRODUCT.md
    names it: the answer now says it is not built yet."""
    async with reporting(tmp_path) as app, client(app) as http:
        answer = await http.get(PATH, params={"format": output}, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {
            "field": "format",
            "code": "not_built",
            "message": f"{output} is not built yet: use yaml or json",
            "severity": "error",
        }
    ]


async def test_an_unknown_format_is_one_issue_on_format_naming_the_four(tmp_path: Path) -> None:
    """It was two issues, on fields named after the type's parts ("format.literal['yaml','json']",
    "format.literal['md','html']"), each naming two of the forms."""
    async with reporting(tmp_path) as app, client(app) as http:
        answer = await http.get(PATH, params={"format": "xml"}, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {
            "field": "format",
            "code": "unknown_value",
            "message": "must be 'yaml', 'json', 'md' or 'html'",
            "severity": "error",
        }
    ]


async def test_without_a_store_or_a_renderer_the_report_is_503(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        no_renderer = await http.get(PATH, headers=ADMIN)
    renderer = partial(render_tables, parse_config(CONFIG))
    settings = Settings(
        config=parse_config(CONFIG), data_dir=tmp_path / "memory", durable=False, report_renderer=renderer
    )
    memory = create_app(settings)
    async with memory.router.lifespan_context(memory), client(memory) as http:
        no_store = await http.get(PATH, headers=ADMIN)

    assert (no_renderer.status_code, no_store.status_code) == (503, 503)
    assert "without a report renderer" in no_renderer.json()["detail"]
    assert "without the event store" in no_store.json()["detail"]
    # Every 503 says when to retry (these had no Retry-After): not before the process is started
    # otherwise, so not every second.
    assert no_renderer.headers["retry-after"] == no_store.headers["retry-after"] == "3600"
