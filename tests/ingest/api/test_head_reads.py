"""A ``HEAD`` of a read answers the status and headers its ``GET`` would, without reading what
only the body needs (the ``GET`` of each route is tested with it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest

from engine.complaints import Complaint
from engine.contracts import ContractViolation
from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.records import ComplaintQuery, MemoryRecords, RecordedViolation, StoredPayment, ViolationQuery
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, ADMIN, GLOBEX, JSON, Answer, body_of, call


class CountingRecords(MemoryRecords):
    """Records that count the reads a body needs: a payment with its events, a page of
    complaints, a list of violations."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def payment(self, payment_id: str) -> StoredPayment | None:
        self.reads += 1
        return await super().payment(payment_id)

    async def complaints_page(self, query: ComplaintQuery) -> Sequence[Complaint]:
        self.reads += 1
        return await super().complaints_page(query)

    async def violations_page(self, query: ViolationQuery) -> Sequence[RecordedViolation]:
        self.reads += 1
        return await super().violations_page(query)


class CountingMapper:
    def __init__(self) -> None:
        self.mapped = 0

    def __call__(self, complaint: Complaint, violations: Sequence[ContractViolation]) -> tuple[str, str]:
        self.mapped += 1
        return "unmapped", "unmapped"


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[object, CountingRecords, CountingMapper]]:
    records, mapper = CountingRecords(), CountingMapper()
    settings = Settings(
        config=parse_config(CONFIG), data_dir=tmp_path, records=records, complaint_mapper=mapper
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application, records, mapper


async def _paid_and_complained(app: object) -> str:
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    complaint = {"complaint_id": "c-1", "category": "timeout", "description": "it hung"}
    filed = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(orjson.dumps(complaint)))
    assert (paid.status, filed.status) == (200, 201)
    return str(paid.json()["payment_id"])


async def test_a_head_of_a_payment_complaints_or_violations_reads_no_body(
    counted: tuple[object, CountingRecords, CountingMapper],
) -> None:
    """The HEADs ran their GET's query (a payment's events read and its document built, a page of
    complaints, the violations, a complaint's mapping) to throw the body away. They now answer
    the GET's status and type, after the same checks (the key first), reading none of it."""
    app, records, mapper = counted
    payment_id = await _paid_and_complained(app)
    asked = [
        (f"/v1/payments/{payment_id}", ACME),
        (f"/v1/payments/{payment_id}", GLOBEX),  # another merchant's: 404, never 200
        (f"/v1/payments/{payment_id}", ADMIN),
        ("/v1/payments/pay_nobody", ACME),
        (f"/v1/payments/{payment_id}", (b"authorization", b"Bearer sk_wrong")),  # 401 first
        ("/v1/complaints", ACME),
        ("/v1/complaints?starting_after=c-none", ACME),  # 422: the cursor names no complaint
        ("/v1/complaints/c-1", ACME),
        ("/v1/complaints/c-1", GLOBEX),
        ("/v1/violations", ADMIN),
        ("/v1/violations", ACME),  # 403: an admin read
        ("/v1/violations?contract_id=no/such", ADMIN),
        ("/v1/violations?from=2026-11-02&to=2026-11-01", ADMIN),
    ]
    records.reads = mapper.mapped = 0
    heads: list[Answer] = [await call(app, "HEAD", path, [key], body_of(b"")) for path, key in asked]
    assert (records.reads, mapper.mapped) == (0, 0)

    gets = [await call(app, "GET", path, [key], body_of(b"")) for path, key in asked]
    assert records.reads > 0 and mapper.mapped > 0  # the GETs do read: the counts can see them
    statuses = [get.status for get in gets]
    assert statuses == [200, 404, 200, 404, 401, 200, 422, 200, 404, 200, 403, 422, 422]
    for (path, _), head, get in zip(asked, heads, gets, strict=True):
        assert head.status == get.status, path
        assert head.body == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        for name in ("allow", "www-authenticate", "retry-after"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


async def test_a_head_of_a_stored_payment_tells_its_merchant_from_the_others(tmp_path: Path) -> None:
    """The durable store answers a HEAD by the payment's merchant alone."""
    application = create_app(Settings(config=parse_config(CONFIG), data_dir=tmp_path))
    async with application.router.lifespan_context(application):
        paid = await call(application, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
        path = f"/v1/payments/{paid.json()['payment_id']}"
        heads = [await call(application, "HEAD", path, [key], body_of(b"")) for key in (ACME, GLOBEX, ADMIN)]
        nobody = await call(application, "HEAD", "/v1/payments/pay_nobody", [ADMIN], body_of(b""))

    assert [head.status for head in heads] == [200, 404, 200]
    assert nobody.status == 404
    assert all(head.body == b"" for head in [*heads, nobody])
    assert "content-length" not in heads[0].headers  # only the document built tells it
