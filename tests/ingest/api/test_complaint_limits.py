"""One merchant filing complaints without end against the disk and the others: each merchant's
complaints are limited (``merchants[].complaint_limits``), past which one is 429 ``rate_limited``
with ``Retry-After``, and never a complaint that was answered 201 or 200 is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import ComplaintLimits
from engine.types import MerchantId
from ingest.api.app import create_app
from ingest.api.complaint_limits import ComplaintGate, Refusal
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, ADMIN, GLOBEX, JSON, body_of, call, complain

ACME_ID = MerchantId("m_acme")
#: m_acme may file three complaints a minute; m_globex has the defaults.
LIMITED = CONFIG.replace(
    "    api_keys: [sk_e2e_acme]\n",
    "    api_keys: [sk_e2e_acme]\n    complaint_limits: {per_minute: 3}\n",
)


class FakeTime:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_a_minutes_count_then_one_each_share_of_a_minute() -> None:
    time = FakeTime()
    gate = ComplaintGate(time)
    limits = ComplaintLimits(per_minute=3, per_day=1000)

    assert [gate.take(ACME_ID, limits) for _ in range(3)] == [None] * 3
    assert gate.take(ACME_ID, limits) == Refusal("per_minute", 20, 3)  # a token every 20 s
    time.now += 19.5
    assert gate.take(ACME_ID, limits) == Refusal("per_minute", 1, 3)
    time.now += 0.5
    assert gate.take(ACME_ID, limits) is None
    assert gate.take(ACME_ID, limits) is not None
    time.now += 3600  # refilled to its count, no more
    assert [gate.take(ACME_ID, limits) for _ in range(4)] == [None, None, None, Refusal("per_minute", 20, 3)]


def test_the_day_limit_holds_past_the_minutes_and_says_so() -> None:
    time = FakeTime()
    gate = ComplaintGate(time)
    limits = ComplaintLimits(per_minute=2, per_day=4)

    taken = []
    for _ in range(4):
        taken.append(gate.take(ACME_ID, limits))
        time.now += 60
    assert taken == [None] * 4
    refused = gate.take(ACME_ID, limits)
    assert refused is not None
    assert (refused.limit, refused.allowed) == ("per_day", 4)
    # A token of the day's every 6 hours; four minutes of it have passed.
    assert refused.retry_after_s == 21_600 - 240
    time.now += refused.retry_after_s
    assert gate.take(ACME_ID, limits) is None


def test_tokens_given_back_and_other_merchants_are_untouched() -> None:
    gate = ComplaintGate(FakeTime())
    limits = ComplaintLimits(per_minute=1)

    assert gate.take(ACME_ID, limits) is None
    gate.give_back(ACME_ID)
    assert gate.take(ACME_ID, limits) is None
    assert gate.take(ACME_ID, limits) is not None
    assert gate.take(MerchantId("m_globex"), limits) is None
    gate.give_back(MerchantId("m_never"))  # nothing taken: nothing to give


@pytest.fixture(params=["duckdb", "memory"])
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    assert LIMITED != CONFIG
    settings = Settings(config=parse_config(LIMITED), data_dir=tmp_path, durable=request.param == "duckdb")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def listed(app: Any, key: tuple[bytes, bytes], query: str = "") -> list[str]:
    answer = await call(app, "GET", f"/v1/complaints{query}", [key], body_of(b""))
    assert answer.status == 200, answer.body
    complaints: Any = answer.json()["complaints"]
    return [complaint["complaint_id"] for complaint in complaints]


async def test_a_merchant_past_its_limit_is_429_and_nothing_answered_is_lost(app: Any) -> None:
    # A refused complaint (422) and one filed again (200) add no row: they use none of the limit.
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    unknown = await complain(app, ACME, complaint_id="t-0", payment_id="pay_nowhere")
    assert unknown.status == 422
    first = await complain(app, ACME, complaint_id="t-1", payment_id=paid.json()["payment_id"])
    assert first.status == 201
    assert (await complain(app, ACME, complaint_id="t-1", payment_id=paid.json()["payment_id"])).status == 200
    filed = [first] + [await complain(app, ACME, complaint_id=f"t-{n}") for n in (2, 3)]
    assert [answer.status for answer in filed] == [201, 201, 201]

    over = await complain(app, ACME, complaint_id="t-4")
    unnamed = await complain(app, ACME)
    # Filed before: answered as before, past the limit too (a retry whose 201 was lost).
    again = await complain(app, ACME, complaint_id="t-2")
    changed = await complain(app, ACME, complaint_id="t-2", description="something else")
    other = await complain(app, GLOBEX, complaint_id="t-4")

    for refused in (over, unnamed):
        assert refused.status == 429, refused.body
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "20"  # 3 a minute: one every 20 s
        problem: Any = refused.json()
        assert problem["code"] == "rate_limited"
        assert "3 a minute (merchants[].complaint_limits.per_minute)" in problem["detail"]
        assert "Traceback" not in refused.body.decode()
    assert (again.status, again.json()) == (200, filed[1].json())
    assert changed.status == 409
    assert other.status == 201  # another merchant is not held back
    # What was answered 201 is kept, and the refused one is not.
    assert sorted(await listed(app, ACME)) == ["t-1", "t-2", "t-3"]
    assert await listed(app, ADMIN, "?merchant_id=m_globex") == ["t-4"]
    assert (await call(app, "GET", "/v1/complaints/t-4", [ACME], body_of(b""))).status == 404


async def test_an_operators_backlog_filed_with_an_admin_key_leaves_the_merchants_limits_whole(
    app: Any,
) -> None:
    # Counted against m_acme's three a minute, an operator importing its phone complaints locked
    # m_acme out of filing its own (and was itself refused 429 past the third).
    backlog = [await complain(app, ADMIN, merchant_id="m_acme", complaint_id=f"phone-{n}") for n in range(8)]
    own = [await complain(app, ACME, complaint_id=f"t-{n}") for n in range(4)]
    again = await complain(app, ADMIN, merchant_id="m_acme", complaint_id="phone-0")

    assert [answer.status for answer in backlog] == [201] * 8
    assert [answer.status for answer in own] == [201, 201, 201, 429]  # its own limit holds it alone
    assert (again.status, again.json()) == (200, backlog[0].json())
    assert len(await listed(app, ACME)) == 11


async def test_the_openapi_document_lists_the_429_of_a_complaint(app: Any) -> None:
    document: Any = (await call(app, "GET", "/openapi.json", [], body_of(b""))).json()
    answer = document["paths"]["/v1/complaints"]["post"]["responses"]["429"]

    assert "Retry-After" in answer["headers"]
