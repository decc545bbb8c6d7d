"""The app in-process, driven through ASGI: limits, timeouts, faults and metrics that a client
over a real socket cannot easily provoke. (The end-to-end tests run a real server.)"""

from __future__ import annotations

import asyncio
import gzip
import html
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.contracts import default_registry
from engine.results import CompositeResult
from engine.types import MerchantId, RequestId
from ingest.api.app import create_app
from ingest.api.parts import Parts
from ingest.api.payments import new_id
from ingest.api.problems import PROBLEMS
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.ledger_journal import FILE_NAME, read_journal
from ingest.parsing import idempotency_key_problem
from ingest.parsing.masking import mask_card_numbers
from ingest.records import MemoryRecords
from tests.e2e.server import CONFIG

ACME = (b"authorization", b"Bearer sk_e2e_acme")
JSON = (b"content-type", b"application/json")

Receive = Callable[[], Awaitable[dict[str, object]]]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)

    def json(self) -> dict[str, object]:
        document: dict[str, object] = orjson.loads(self.body)
        return document


async def call(
    app: object, method: str, path: str, headers: list[tuple[bytes, bytes]], receive: Receive
) -> Answer:
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    answer, send = collecting()
    await app(scope, receive, send)  # type: ignore[operator]
    return answer


def collecting() -> tuple[Answer, Callable[[dict[str, Any]], Awaitable[None]]]:
    """An answer, and the ASGI ``send`` that fills it in."""
    answer = Answer(0, {})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    return answer, send


def body_of(*chunks: bytes, then_wait: bool = False) -> Receive:
    pending = list(chunks)

    async def receive() -> dict[str, object]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or then_wait}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


class FailingRecords(MemoryRecords):
    """Records whose result store breaks: the fault must not reach the client."""

    async def save_result(
        self, result: CompositeResult, document: bytes, *, first_seq: int | None = None
    ) -> None:
        raise OSError("/var/lib/payorch/payorch.duckdb: disk I/O error")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[object]:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, body_timeout_s=0.05)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_chunked_body_over_64_kib_is_413_before_it_is_all_read(app: object) -> None:
    chunk = b"x" * 40_000
    answer = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(chunk, chunk, chunk))

    assert answer.status == 413
    assert answer.json()["code"] == "payload_too_large"


async def test_a_body_that_stops_arriving_is_408(app: object) -> None:
    answer = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount":', then_wait=True))

    assert answer.status == 408
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_complaint_body_gets_the_same_limit_and_deadline_as_a_payment(app: object) -> None:
    chunk = b"x" * 40_000
    too_large = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(chunk, chunk))
    stalled = await call(
        app, "POST", "/v1/complaints", [ACME, JSON], body_of(b'{"category":', then_wait=True)
    )
    stalled_without_key = await call(app, "POST", "/v1/complaints", [JSON], body_of(b"{", then_wait=True))

    assert (too_large.status, too_large.json()["code"]) == (413, "payload_too_large")
    assert (stalled.status, stalled.json()["code"]) == (408, "request_timeout")
    assert stalled_without_key.status == 408


async def test_a_key_or_credential_repeated_with_another_value_is_400(app: object) -> None:
    body = b'{"amount": 1250}'
    keys = [(b"idempotency-key", b"order-a"), (b"idempotency-key", b"order-b")]
    two_keys = await call(app, "POST", "/v1/payments", [ACME, JSON, *keys], body_of(body))
    two_callers = await call(app, "POST", "/v1/payments", [ACME, GLOBEX, JSON], body_of(body))
    same_twice = await call(app, "POST", "/v1/payments", [ACME, ACME, JSON], body_of(body))
    read_by_two = await call(app, "GET", "/v1/violations", [ADMIN, ACME], body_of(b""))

    assert (two_keys.status, two_callers.status, read_by_two.status) == (400, 400, 400)
    assert two_keys.json()["errors"] == [
        {
            "field": "Idempotency-Key",
            "code": "conflicting_headers",
            "message": "is repeated with different values",
            "severity": "error",
        }
    ]
    assert two_callers.json()["errors"][0]["field"] == "Authorization"  # type: ignore[index]
    assert b"sk_e2e" not in two_callers.body
    assert same_twice.status == 200  # a header a proxy repeated as it was is one header
    for public in ("/healthz", "/metrics"):  # no key is read there: nothing to doubt
        assert (await call(app, "GET", public, [ADMIN, ACME], body_of(b""))).status == 200


async def test_a_body_declared_with_two_content_types_is_400_and_charges_nothing(
    app: object, tmp_path: Path
) -> None:
    # Which type the body is was a guess (the first line counted): a proxy or a WAF that reads the
    # other one sees another request than the service charged for.
    form = (b"content-type", b"application/x-www-form-urlencoded")
    body = b'{"amount": 1250}'
    payment = await call(app, "POST", "/v1/payments", [ACME, JSON, form], body_of(body))
    complaint = await call(app, "POST", "/v1/complaints", [ACME, form, JSON], body_of(b"{}"))
    same_twice = await call(app, "POST", "/v1/payments", [ACME, JSON, JSON], body_of(body))

    assert (payment.status, complaint.status) == (400, 400)
    for refused in (payment, complaint):
        assert refused.json()["errors"] == [
            {
                "field": "Content-Type",
                "code": "conflicting_headers",
                "message": "is repeated with different values",
                "severity": "error",
            }
        ]
    assert same_twice.status == 200  # a header a proxy repeated as it was is one header
    charged = read_journal(tmp_path / FILE_NAME)
    assert [line["payment_id"] for line in charged] == [same_twice.json()["payment_id"]]


async def test_violations_take_the_same_window_rules_as_the_other_reads(app: object) -> None:
    refused = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "lots"}'))
    every = await call(app, "GET", "/v1/violations?contract_id=", [ADMIN], body_of(b""))
    one = await call(app, "GET", "/v1/violations?contract_id=api/validation", [ADMIN], body_of(b""))
    backwards = await call(
        app, "GET", "/v1/violations?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", [ADMIN], body_of(b"")
    )
    out_of_range = await call(
        app, "GET", "/v1/violations?to=0001-01-01T00:00:00%2B01:00", [ADMIN], body_of(b"")
    )
    merchant = await call(app, "GET", "/v1/violations?limit=abc", [ACME], body_of(b""))
    numbers = [
        await call(app, "GET", path, [ADMIN], body_of(b""))
        for path in (
            "/v1/violations?to=0.5",
            "/v1/analytics/events?from=12345678901234",
            "/v1/reports/retrospective?to=1",
        )
    ]

    assert refused.status == 422
    assert every.status == 200 and every.json() == one.json()  # empty: no filter
    assert len(one.json()["violations"]) == 1  # type: ignore[arg-type]
    assert (backwards.status, backwards.json()["errors"][0]["code"]) == (422, "after_to")  # type: ignore[index]
    assert (out_of_range.status, out_of_range.json()["errors"][0]["code"]) == (422, "out_of_range")  # type: ignore[index]
    assert merchant.status == 403  # the key is refused before its query is looked at
    for number in numbers:  # not a Unix time: these take ISO 8601 only
        assert number.status == 422, number.body
        assert "ISO 8601" in number.json()["errors"][0]["message"]  # type: ignore[index]


async def test_violations_of_an_unknown_contract_are_422_not_an_empty_list(app: object) -> None:
    await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "lots"}'))
    typo = await call(app, "GET", "/v1/violations?contract_id=api/validaton", [ADMIN], body_of(b""))

    assert typo.status == 422  # a typo is not "no violations"
    assert typo.json()["errors"] == [
        {
            "field": "contract_id",
            "code": "unknown_contract",
            "message": "'api/validaton' is not in the registry",
            "severity": "error",
        }
    ]
    assert "violations" not in typo.json()


async def test_a_violations_list_cut_at_its_limit_says_there_are_more(app: object) -> None:
    for amount in (b"lots", b"many", b"plenty"):
        refused = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "%s"}' % amount))
        assert refused.status == 422

    cut = (await call(app, "GET", "/v1/violations?limit=2", [ADMIN], body_of(b""))).json()
    whole = (await call(app, "GET", "/v1/violations?limit=3", [ADMIN], body_of(b""))).json()

    assert (len(cut["violations"]), cut["has_more"]) == (2, True)  # type: ignore[arg-type]
    assert (len(whole["violations"]), whole["has_more"]) == (3, False)  # type: ignore[arg-type]
    assert cut["violations"] == whole["violations"][:2]  # type: ignore[index]


async def test_violations_are_listed_by_the_payment_request_or_merchant_they_name(either_app: object) -> None:
    """The ids a violation shows are filters of the list: a `Request-Id` a merchant reports, the
    payment an answer named. Unknown to the route, ``?request_id=`` listed every violation."""
    app = either_app
    acme = [
        await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "%s"}' % amount))
        for amount in (b"lots", b"many")
    ]
    globex = await call(app, "POST", "/v1/payments", [GLOBEX, JSON], body_of(b'{"amount": "plenty"}'))
    assert [answer.status for answer in (*acme, globex)] == [422, 422, 422]

    async def listed(query: str) -> list[tuple[object, object, object]]:
        answer = await call(app, "GET", f"/v1/violations?{query}", [ADMIN], body_of(b""))
        assert answer.status == 200, answer.body
        found: Any = answer.json()["violations"]
        return [(v["payment_id"], v["request_id"], v["merchant_id"]) for v in found]

    first = (acme[0].json()["payment_id"], acme[0].headers["request-id"], "m_acme")
    second = (acme[1].json()["payment_id"], acme[1].headers["request-id"], "m_acme")
    assert await listed(f"payment_id={first[0]}") == [first]
    assert await listed(f"request_id={second[1]}") == [second]
    assert await listed("merchant_id=m_acme") == [second, first]
    assert await listed(f"merchant_id=m_globex&request_id={first[1]}") == []
    assert await listed("payment_id=pay_nowhere") == []
    assert len(await listed("payment_id=&request_id=&merchant_id=")) == 3  # empty: no filter


async def test_an_unknown_query_parameter_is_422_not_ignored(app: object) -> None:
    """A typo or a filter the route lacks read as the whole unfiltered list (Stripe answers such a
    request 400, "unknown parameter"); the key is still checked first."""
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    payment = f"/v1/payments/{paid.json()['payment_id']}"
    answers = {
        path: await call(app, "GET", path, [key], body_of(b""))
        for path, key in (
            ("/v1/violations?contract=api/validation", ADMIN),
            ("/v1/violations?limit=5&since=2026-11-01", ADMIN),
            ("/v1/analytics/events?payment_id=pay_x", ADMIN),
            ("/v1/reports/retrospective?format=json&window=7d", ADMIN),
            (f"{payment}?expand=events", ACME),
        )
    }
    merchant = await call(app, "GET", "/v1/violations?contract=x", [ACME], body_of(b""))
    nobody = await call(app, "GET", f"{payment}?expand=events", [], body_of(b""))
    known = await call(
        app, "GET", "/v1/violations?limit=5&contract_id=&from=2026-11-01", [ADMIN], body_of(b"")
    )

    for path, answer in answers.items():
        assert answer.status == 422, (path, answer.body)
        errors: Any = answer.json()["errors"]
        unknown = path.split("?")[1].split("&")[-1].split("=")[0]
        assert errors == [
            {
                "field": unknown,
                "code": "unknown_parameter",
                "message": "is not a parameter of this endpoint",
                "severity": "error",
            }
        ], path
    assert "`contract_id`" in str(answers["/v1/violations?contract=api/validation"].json()["detail"])
    assert (merchant.status, nobody.status, known.status) == (403, 401, 200)


async def test_a_repeated_or_loosely_written_query_parameter_is_422_naming_it(app: object) -> None:
    """``?limit=1&limit=2`` was read as its last value, and ``limit`` as pydantic reads a number:
    `` 1``, ``+1``, ``1.0`` and ``1_0`` (ten) were taken."""
    for amount in (b"lots", b"many"):
        await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "%s"}' % amount))

    async def get(query: str) -> Answer:
        return await call(app, "GET", f"/v1/violations?{query}", [ADMIN], body_of(b""))

    repeated = await get("limit=1&limit=2&contract_id=&contract_id=")
    window = await call(
        app, "GET", "/v1/analytics/events?from=2026-11-01&from=2026-11-02", [ADMIN], body_of(b"")
    )
    loose = {value: await get(f"limit={value}") for value in ("%201", "1%20", "%2B1", "1.0", "1_0", "")}
    plain = await get("limit=1")

    assert repeated.status == 422, repeated.body
    errors: Any = repeated.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [
        ("limit", "repeated_parameter"),
        ("contract_id", "repeated_parameter"),
    ]
    assert (window.status, window.json()["errors"][0]["field"]) == (422, "from")  # type: ignore[index]
    for value, answer in loose.items():
        assert answer.status == 422, (value, answer.body)
        assert answer.json()["errors"][0]["field"] == "limit", value  # type: ignore[index]
    assert plain.status == 200
    assert len(plain.json()["violations"]) == 1  # type: ignore[arg-type]


async def test_the_openapi_document_says_what_the_service_sends(app: object) -> None:
    document = (await call(app, "GET", "/openapi.json", [], body_of(b""))).json()
    paths: dict[str, Any] = document["paths"]  # type: ignore[assignment]
    post = paths["/v1/payments"]["post"]
    problem_schema = {"$ref": "#/components/schemas/ProblemOut"}

    key = [parameter for parameter in post["parameters"] if parameter["name"] == "Idempotency-Key"]
    assert key and key[0]["in"] == "header" and key[0]["schema"]["maxLength"] == 255
    assert {"Idempotent-Replayed", "Server-Timing", "Request-Id"} <= set(post["responses"]["200"]["headers"])
    assert "Retry-After" in post["responses"]["409"]["headers"]
    assert "WWW-Authenticate" in post["responses"]["401"]["headers"]
    assert key[0]["schema"]["pattern"] == "^[ -~]*[!-~][ -~]*$"
    assert "400" in paths["/v1/violations"]["get"]["responses"]  # a repeated Authorization
    assert "400" in paths["/healthz"]["get"]["responses"]  # bytes the HTTP parser cannot read
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                assert "Request-Id" in response["headers"], (path, method, status)
                if int(status) >= 400:  # errors are problem documents, and only that
                    assert response["content"] == {"application/problem+json": {"schema": problem_schema}}


async def test_every_operation_documents_the_refusals_that_come_before_its_route(app: object) -> None:
    """A declared body over 64 KiB is 413 whatever the route, as a request late in coming (408),
    with a head over 32 KiB (431, payorch.http_guard) or a target over it (414), unreadable (400) or
    with a transfer coding besides chunked (501) is: every operation lists them all."""
    document = (await call(app, "GET", "/openapi.json", [], body_of(b""))).json()
    paths: dict[str, Any] = document["paths"]  # type: ignore[assignment]
    too_long = (b"content-length", b"70000")

    for path, operations in paths.items():
        concrete = path.replace("{payment_id}", "pay_1").replace("{code}", "not_found")
        for method, operation in operations.items():
            answer = await call(app, method.upper(), concrete, [ACME, too_long], body_of(b""))
            assert (answer.status, answer.json()["code"]) == (413, "payload_too_large"), (path, method)
            listed = set(operation["responses"])
            assert {"400", "408", "413", "414", "431", "501", "505"} <= listed, (path, method)
            coded = await call(
                app, method.upper(), concrete, [ACME, (b"transfer-encoding", b"gzip, chunked")], body_of(b"")
            )
            assert (coded.status, coded.json()["code"]) == (501, "transfer_coding_not_supported"), (
                path,
                method,
            )


async def test_every_problem_type_uri_names_a_page_that_says_what_it_means(app: object) -> None:
    unauthorized = await call(app, "GET", "/v1/violations", [], body_of(b""))
    followed = await call(app, "GET", str(unauthorized.json()["type"]), [], body_of(b""))
    pages = {code: await call(app, "GET", f"/problems/{code}", [], body_of(b"")) for code in PROBLEMS}
    unknown = await call(app, "GET", "/problems/no_such_problem", [], body_of(b""))

    assert followed.status == 200 and followed.headers["content-type"].startswith("text/html")
    assert b"A valid API key is required" in followed.body and b"Bearer" in followed.body
    for code, page in pages.items():
        assert page.status == 200, code
        assert html.escape(PROBLEMS[code].title).encode() in page.body, code
        assert f"HTTP {PROBLEMS[code].status}".encode() in page.body, code
    assert (unknown.status, unknown.json()["code"]) == (404, "not_found")


async def test_a_complaint_body_that_is_not_json_names_the_body(app: object) -> None:
    answer = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(b'{"category": '))

    assert answer.status == 422
    errors: list[dict[str, str]] = answer.json()["errors"]  # type: ignore[assignment]
    assert [(error["field"], error["code"]) for error in errors] == [("body", "invalid_json")]
    assert errors[0]["message"].startswith("is not valid JSON")


async def _cut_short(app: object, key: list[tuple[bytes, bytes]]) -> Answer:
    """The answer to a slow payment whose request the stopping server cancels."""
    answer, send = collecting()
    slow = (b"authorization", b"Bearer sk_e2e_slow")  # its processor takes about 1.5 s
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/payments",
        "query_string": b"",
        "headers": [slow, JSON, *key],
    }
    request = asyncio.ensure_future(app(scope, body_of(b'{"amount": 2500}'), send))  # type: ignore[operator]
    await asyncio.sleep(0.3)
    request.cancel()  # what the server does to its requests when it stops without waiting
    with pytest.raises(asyncio.CancelledError):
        await request
    return answer


async def test_a_payment_the_stopping_server_does_not_wait_for_is_answered_503(app: object) -> None:
    answer = await _cut_short(app, [(b"idempotency-key", b"cut-short-1")])

    assert answer.status == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
    problem = answer.json()
    assert problem["code"] == "payment_interrupted"  # not the "nothing was charged" of a busy writer
    assert str(problem["payment_id"]).startswith("pay_")
    assert f"GET /v1/payments/{problem['payment_id']}" in str(problem["detail"])
    assert "retry with the same Idempotency-Key" in str(problem["detail"])


async def test_an_interrupted_payments_problem_has_only_fields_the_openapi_document_names(
    app: object,
) -> None:
    answer = await _cut_short(app, [(b"idempotency-key", b"cut-short-documented")])
    document = (await call(app, "GET", "/openapi.json", [], body_of(b""))).json()
    problem: dict[str, Any] = document["components"]["schemas"]["ProblemOut"]  # type: ignore[index]

    assert "payment_id" in answer.json()
    assert set(answer.json()) <= set(problem["properties"])


async def test_a_keyless_payment_cut_short_is_told_to_look_it_up_not_to_retry(app: object) -> None:
    answer = await _cut_short(app, [])

    detail = str(answer.json()["detail"])
    assert answer.status == 503
    assert "Look it up before paying again" in detail
    assert "retry with the same Idempotency-Key" not in detail


async def test_behind_a_proxy_prefix_an_interrupted_payment_names_its_path_under_it(tmp_path: Path) -> None:
    # The detail sent the client to GET /v1/payments/..., the host's root behind the proxy: a 404.
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, root_path="/payorch")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        answer = await _cut_short(application, [(b"idempotency-key", b"cut-short-proxied")])

    problem = answer.json()
    assert problem["type"] == "/payorch/problems/payment_interrupted"
    assert f"GET /payorch/v1/payments/{problem['payment_id']} shows" in str(problem["detail"])


async def test_a_stop_that_leaves_a_payment_in_flight_counts_it_in_words_that_agree(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It said "1 payments still in flight after 0 s" (the grace, 0.05 s, rounded away)."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=False, shutdown_grace_s=0.05)
    application = create_app(settings)
    slow = (b"authorization", b"Bearer sk_e2e_slow")  # its processor takes about 1.5 s
    caplog.set_level(logging.ERROR, logger="payorch.api")
    async with application.router.lifespan_context(application):
        paying = asyncio.ensure_future(
            call(application, "POST", "/v1/payments", [slow, JSON], body_of(b'{"amount": 2500}'))
        )
        while not application.state.parts.desk.in_flight:  # at its processor
            await asyncio.sleep(0.01)
    answer = await paying  # it ends on its own, after the stop

    said = [record.getMessage() for record in caplog.records]
    assert [line for line in said if line.startswith("shutdown:")] == [
        "shutdown: 1 payment still in flight after 0.05 s"
    ]
    assert answer.status == 200


async def test_a_method_the_merchant_does_not_take_is_422_saying_which_it_takes(app: object) -> None:
    answer = await call(
        app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1200, "method": "paypal"}')
    )

    assert answer.status == 422
    errors: list[dict[str, str]] = answer.json()["errors"]  # type: ignore[assignment]
    assert [error for error in errors if error["severity"] == "error"] == [
        {
            "field": "method",
            "code": "method_not_enabled",
            "message": "method paypal is not enabled for this merchant (enabled: apple_pay, card)",
            "severity": "error",
        }
    ]


async def test_a_fault_after_charging_is_a_plain_500_kept_under_the_key(tmp_path: Path) -> None:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, records=FailingRecords())
    application = create_app(settings)
    headers = [ACME, JSON, (b"idempotency-key", b"order-17")]
    async with application.router.lifespan_context(application):
        first = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        again = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))

    assert first.status == again.status == 500
    assert again.headers["idempotent-replayed"] == "true"
    assert first.body == again.body
    text = first.body.decode()
    assert "disk I/O" not in text
    assert "/var/lib" not in text
    assert "Traceback" not in text
    assert first.json()["code"] == "internal_error"


async def test_the_headers_of_a_replayed_500_are_those_the_openapi_document_names(tmp_path: Path) -> None:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, records=FailingRecords())
    application = create_app(settings)
    headers = [ACME, JSON, (b"idempotency-key", b"order-18")]
    async with application.router.lifespan_context(application):
        await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        again = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        document = (await call(application, "GET", "/openapi.json", [], body_of(b""))).json()
    paths: dict[str, Any] = document["paths"]  # type: ignore[assignment]
    described = paths["/v1/payments"]["post"]["responses"]["500"]["headers"]

    assert again.headers["idempotent-replayed"] == "true"
    assert {"Idempotent-Replayed", "Request-Id"} <= set(described)


async def test_a_payment_answered_500_counts_once_as_error(tmp_path: Path) -> None:
    # Its result could not be saved: it was counted nowhere, so payorch_payments_total fell short
    # of the payments answered (payorch_http_responses_total counted the 500).
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, records=FailingRecords())
    application = create_app(settings)
    headers = [ACME, JSON, (b"idempotency-key", b"order-19")]
    async with application.router.lifespan_context(application):
        first = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        again = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        scraped = await call(application, "GET", "/metrics", [], body_of(b""))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
    }

    assert (first.status, again.headers["idempotent-replayed"]) == (500, "true")
    # Once (the replay counts as a replay), as answered: not the success it was never told.
    counted = {labels: value for (name, labels), value in samples.items() if name == "payorch_payments_total"}
    assert counted == {(("status", "error"),): 1}
    assert samples["payorch_payment_latency_seconds_count", (("status", "error"),)] == 1
    assert samples["payorch_idempotent_replays_total", ()] == 1


async def test_validation_issues_and_outcomes_are_counted(app: object) -> None:
    await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "1,000", "currency": "usd"}'))
    await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "nope"}'))
    scraped = await call(app, "GET", "/metrics", [], body_of(b""))

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
    }
    assert (
        samples[
            "payorch_validation_issues_total",
            (("code", "ambiguous_separator"), ("field", "amount"), ("intake", "payment")),
        ]
        == 1
    )
    invalid = (("code", "invalid_amount"), ("field", "amount"), ("intake", "payment"))
    assert samples["payorch_validation_issues_total", invalid] == 1
    assert samples["payorch_payments_total", (("status", "succeeded"),)] == 1
    assert samples["payorch_payments_total", (("status", "rejected"),)] == 1


async def test_bad_idempotency_keys_are_400(app: object) -> None:
    # Each says what is wrong with the key, as the body's key is told.
    faults = {
        b"": "is empty",
        b"k" * 256: "has 256 characters",
        b"tab\there": "holds the character U+0009",
        # A header's bytes are UTF-8 as clients send them: "é" was told as "Ã" (its first byte as
        # Latin-1), and 300 of them as 600 characters.
        "clé".encode(): 'holds the character "é" (U+00E9)',
        "é".encode() * 300: "has 300 characters",
        b"caf\xe9": 'holds the character "é" (U+00E9)',  # Latin-1 itself: as sent
    }
    for key, fault in faults.items():
        answer = await call(
            app, "POST", "/v1/payments", [ACME, JSON, (b"idempotency-key", key)], body_of(b'{"amount": 5}')
        )
        assert answer.status == 400, key
        assert answer.json()["errors"] == [
            {
                "field": "Idempotency-Key",
                "code": "invalid_idempotency_key",
                "message": fault,
                "severity": "error",
            }
        ]


#: Keys on either side of the rule, for the header and the body's key alike.
KEYS = ["k", "k" * 255, "order 17 ~!@#", "", "   ", "k" * 256, "tab\there", "clé-ü", "a\x1b[31m", "a\x7f"]


@pytest.mark.parametrize("key", KEYS)
async def test_the_header_and_the_body_key_meet_one_rule(app: object, key: str) -> None:
    header = await call(
        app,
        "POST",
        "/v1/payments",
        [ACME, JSON, (b"idempotency-key", key.encode("latin-1"))],
        body_of(b'{"amount": 5}'),
    )
    # Another merchant, so that a valid key is new to it (keys are scoped per merchant).
    body = await call(
        app,
        "POST",
        "/v1/payments",
        [GLOBEX, JSON],
        body_of(orjson.dumps({"amount": 5, "idempotency_key": key})),
    )
    refused = idempotency_key_problem(key) is not None
    assert header.status == (400 if refused else 200), key
    assert body.status == (422 if refused else 200), key
    if refused:
        errors = body.json()["errors"]
        assert isinstance(errors, list)
        blocking = [error for error in errors if error["severity"] == "error"]
        assert [(error["field"], error["code"]) for error in blocking] == [
            ("idempotency_key", "invalid_idempotency_key")
        ]
        assert "printable ASCII" in blocking[0]["message"]


async def test_a_body_key_that_differs_from_the_header_is_refused_as_the_openapi_body_says(
    app: object,
) -> None:
    document = (await call(app, "GET", "/openapi.json", [], body_of(b""))).json()
    body = orjson.dumps({"amount": 5, "idempotency_key": "order-body"})
    answer = await call(
        app, "POST", "/v1/payments", [ACME, JSON, (b"idempotency-key", b"order-head")], body_of(body)
    )

    errors = answer.json()["errors"]
    assert isinstance(errors, list)
    blocking = [(error["field"], error["code"]) for error in errors if error["severity"] == "error"]
    assert (answer.status, blocking) == (422, [("idempotency_key", "conflicting_idempotency_key")])
    post: Any = document["paths"]["/v1/payments"]["post"]  # type: ignore[index]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    described = schema["properties"]["idempotency_key"]["description"]
    assert "conflicting_idempotency_key" in described and "wins" not in described


MULTIPART = b'--x\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1250\r\n--x--\r\n'


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ([(b"content-type", b"multipart/form-data; boundary=x")], MULTIPART, "unsupported_content_type"),
        (
            [JSON, (b"content-encoding", b"gzip")],
            gzip.compress(b'{"amount": 1250}'),
            "unsupported_content_encoding",
        ),
        # Two lines of a list header are one list: the second coding counts.
        (
            [JSON, (b"content-encoding", b"identity"), (b"content-encoding", b"br")],
            b'{"amount": 1250}',
            "unsupported_content_encoding",
        ),
    ],
    # Named: a gzip member holds the time it was made, and pytest-xdist's workers must collect
    # the same test names.
    ids=["multipart", "gzip", "identity-then-br"],
)
async def test_a_body_the_parser_cannot_read_is_422_saying_what_to_send(
    app: object, headers: list[tuple[bytes, bytes]], body: bytes, code: str
) -> None:
    answer = await call(app, "POST", "/v1/payments", [ACME, *headers], body_of(body))
    assert answer.status == 422
    assert answer.headers["content-type"] == "application/problem+json"
    document = answer.json()
    assert document["code"] == "validation_failed"
    errors = document["errors"]
    assert isinstance(errors, list)
    assert [(error["field"], error["code"]) for error in errors] == [("body", code)]


async def test_the_identity_coding_is_a_body_as_it_is(app: object) -> None:
    headers = [ACME, JSON, (b"content-encoding", b"identity")]
    answer = await call(app, "POST", "/v1/payments", headers, body_of(b'{"amount": 1250}'))
    assert answer.status == 200


async def test_a_trailing_slash_is_a_404_that_names_the_route(app: object) -> None:
    answer = await call(app, "POST", "/v1/payments/", [ACME, JSON], body_of(b'{"amount": 1250}'))
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == (
        "No route matches this path; /v1/payments (without the trailing slash) is one."
    )
    elsewhere = await call(app, "GET", "/v1/nowhere/", [ACME], body_of(b""))
    assert (elsewhere.status, elsewhere.json()["detail"]) == (404, "No route matches this path.")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"application/x-www-form-urlencoded", b"category=timeout"),  # a JSON object is read as JSON
        (b"application/json", b'["timeout"]'),
    ],
)
async def test_a_complaint_that_is_not_a_json_object_is_422_saying_what_to_send(
    app: object, content_type: bytes, body: bytes
) -> None:
    answer = await call(app, "POST", "/v1/complaints", [ACME, (b"content-type", content_type)], body_of(body))
    assert answer.status == 422
    assert answer.json()["errors"] == [
        {
            "field": "body",
            "code": "not_an_object",
            "message": "the body must be a JSON object, sent with Content-Type: application/json",
            "severity": "error",
        }
    ]


GLOBEX = (b"authorization", b"Bearer sk_e2e_globex")


async def complain(app: object, key: tuple[bytes, bytes], **fields: object) -> Answer:
    body = orjson.dumps({"category": "double_charge", "description": "charged twice", **fields})
    return await call(app, "POST", "/v1/complaints", [key, JSON], body_of(body))


async def test_a_complaint_may_name_only_its_own_merchants_payment(app: object) -> None:
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    payment_id = paid.json()["payment_id"]

    own = await complain(app, ACME, payment_id=payment_id)
    others = await complain(app, GLOBEX, payment_id=payment_id)
    unknown = await complain(app, GLOBEX, payment_id="pay_nowhere")

    assert own.status == 201
    assert own.json()["payment_id"] == payment_id
    # Another merchant's payment and a payment that does not exist get the same answer.
    for refused, named in ((others, payment_id), (unknown, "pay_nowhere")):
        assert refused.status == 422
        assert refused.json()["errors"] == [
            {
                "field": "payment_id",
                "code": "unknown_payment",
                "message": f"no payment {named!r} for this merchant",
                "severity": "error",
            }
        ]


async def test_a_complaint_may_name_only_its_own_merchants_request(either_app: object) -> None:
    app = either_app
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    refused = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "12.345"}'))
    keyed = [ACME, JSON, (b"idempotency-key", b"order-7")]
    await call(app, "POST", "/v1/payments", keyed, body_of(b'{"amount": 1250}'))
    reused = await call(app, "POST", "/v1/payments", keyed, body_of(b'{"amount": 999}'))
    assert (paid.status, refused.status, reused.json()["code"]) == (200, 422, "idempotency_key_reused")
    paid_request = paid.headers["request-id"]

    # A payment's, a refused request's, a reused key's: each a request m_acme was answered.
    answered = (paid, refused, reused)
    own = [await complain(app, ACME, request_id=answer.headers["request-id"]) for answer in answered]
    others = await complain(app, GLOBEX, request_id=paid_request)
    unknown = await complain(app, GLOBEX, request_id="req_nowhere")

    assert [answer.status for answer in own] == [201, 201, 201]
    assert own[0].json()["request_id"] == paid_request
    # Another merchant's request and a request that does not exist get the same answer.
    for answer, named in ((others, paid_request), (unknown, "req_nowhere")):
        assert answer.status == 422
        assert answer.json()["errors"] == [
            {
                "field": "request_id",
                "code": "unknown_request",
                "message": f"no request {named!r} for this merchant",
                "severity": "error",
            }
        ]


async def test_a_complaint_naming_a_payment_and_another_payments_request_is_refused(
    either_app: object,
) -> None:
    # The request id was silently ignored: the complaint mapped through the payment alone.
    app = either_app
    first, second = [
        await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}')) for _ in range(2)
    ]
    keyed = [ACME, JSON, (b"idempotency-key", b"order-8")]
    await call(app, "POST", "/v1/payments", keyed, body_of(b'{"amount": 1250}'))
    reused = await call(app, "POST", "/v1/payments", keyed, body_of(b'{"amount": 999}'))
    payment_id, request_id = first.json()["payment_id"], second.headers["request-id"]

    crossed = await complain(app, ACME, payment_id=payment_id, request_id=request_id)
    matching = await complain(app, ACME, payment_id=payment_id, request_id=first.headers["request-id"])
    # A reused key's request is recorded with no payment: it may be about any.
    with_reused = await complain(app, ACME, payment_id=payment_id, request_id=reused.headers["request-id"])

    assert crossed.status == 422
    message = f"request {request_id!r} is not one of payment {payment_id!r}"
    assert crossed.json()["errors"] == [
        {"field": field, "code": "request_mismatch", "message": message, "severity": "error"}
        for field in ("payment_id", "request_id")
    ]
    assert (matching.status, with_reused.status) == (201, 201)


async def test_a_card_number_in_a_complaint_is_kept_masked(app: object) -> None:
    filed = await complain(
        app, ACME, complaint_id="cmp_card", description="card 4242 4242 4242 4242 billed twice"
    )
    again = await complain(
        app, ACME, complaint_id="cmp_card", description="card 4242 4242 4242 4242 billed twice"
    )
    as_category = await complain(app, ACME, category="4242424242424242")

    assert filed.status == 201
    assert filed.json()["description"] == "card 424242******4242 billed twice"
    assert again.status == 200  # the stored complaint, as kept
    assert again.json()["description"] == "card 424242******4242 billed twice"
    assert as_category.status == 422
    assert b"4242424242424242" not in as_category.body


ADMIN = (b"authorization", b"Bearer adm_e2e_admin")


@pytest.fixture(params=["duckdb", "memory"])
async def either_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """The app over the DuckDB store, and over the memory records."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=request.param == "duckdb")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_refused_request_is_looked_up_by_the_payment_id_its_answer_gives(either_app: object) -> None:
    """The refusal is recorded under a payment id (its violation names it): that id shows it,
    ``rejected`` with its issues and nothing charged, to its merchant and an admin, and a
    complaint may name it; it was a 404 and ``unknown_payment``."""
    app = either_app
    refused = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "12.345"}'))
    assert refused.status == 422
    payment_id = refused.json()["payment_id"]
    assert isinstance(payment_id, str)
    assert payment_id.startswith("pay_")

    own = await call(app, "GET", f"/v1/payments/{payment_id}", [ACME], body_of(b""))
    admin = await call(app, "GET", f"/v1/payments/{payment_id}", [ADMIN], body_of(b""))
    other = await call(app, "GET", f"/v1/payments/{payment_id}", [GLOBEX], body_of(b""))
    complaint = await complain(app, ACME, payment_id=payment_id)

    assert (own.status, admin.status, other.status) == (200, 200, 404), own.body
    shown: Any = own.json()
    assert admin.json() == shown
    assert shown["payment_id"] == payment_id
    assert shown["request_id"] == refused.headers["request-id"]
    assert (shown["status"], shown["success"], shown["total_processed"]) == ("rejected", False, 0)
    assert (shown["step_results"], shown["final_error"], shown["currency"]) == ([], None, "USD")
    answered: Any = refused.json()["errors"]
    issues = [(issue["field"], issue["code"]) for issue in shown["validation_errors"]]
    assert [(error["field"], error["code"]) for error in answered] == issues
    assert [event["type"] for event in shown["events"]] == ["PaymentReceived"]
    assert shown["events"][0]["accepted"] is False
    assert complaint.status == 201, complaint.body


async def test_complaint_ids_are_each_merchants_own(either_app: object) -> None:
    app = either_app
    acme = await complain(app, ACME, complaint_id="ticket-1", description="acme's")
    globex = await complain(app, GLOBEX, complaint_id="ticket-1", description="globex's")
    acme_again = await complain(app, ACME, complaint_id="ticket-1", description="acme's")
    globex_again = await complain(app, GLOBEX, complaint_id="ticket-1", description="globex's")

    assert (acme.status, globex.status) == (201, 201)
    assert (acme.json()["merchant_id"], globex.json()["merchant_id"]) == ("m_acme", "m_globex")
    # A retry gets its own merchant's complaint back, as stored, and nothing of the other's.
    assert (acme_again.status, acme_again.json()) == (200, acme.json())
    assert (globex_again.status, globex_again.json()) == (200, globex.json())
    assert b"acme" not in globex_again.body


@pytest.mark.parametrize(
    ("card", "code", "retryable", "attempts"),
    [("4000000000000002", "declined", False, 1), ("4000000000000119", "processing_error", True, 2)],
)
async def test_a_failed_steps_events_show_whether_it_may_be_retried(
    either_app: object, card: str, code: str, retryable: bool, attempts: int
) -> None:
    body = orjson.dumps({"amount": 500, "method": "card", "metadata": {"card_number": card}})
    paid = await call(either_app, "POST", "/v1/payments", [ACME, JSON], body_of(body))
    got = await call(either_app, "GET", f"/v1/payments/{paid.json()['payment_id']}", [ACME], body_of(b""))

    steps: list[dict[str, object]] = paid.json()["step_results"]  # type: ignore[assignment]
    events: list[dict[str, object]] = got.json()["events"]  # type: ignore[assignment]
    assert [(s["error_code"], s["retryable"], s["attempts"]) for s in steps] == [(code, retryable, attempts)]
    failed = [(e["attempt"], e["error_code"], e["retryable"]) for e in events if e["type"] == "StepFailed"]
    # The same retry flag as the step's result, on every failed attempt.
    assert failed == [(n, code, retryable) for n in range(1, attempts + 1)]


@pytest.mark.parametrize(
    ("card", "code", "decline_code"),
    [
        ("4000000000000002", "declined", "generic_decline"),
        ("4000000000009995", "declined", "insufficient_funds"),
        ("4000000000009987", "declined", "lost_card"),
        ("4000000000009979", "declined", "stolen_card"),
        ("4000000000000069", "invalid_card", "expired_card"),
        ("4000000000000127", "invalid_card", "incorrect_cvc"),
        ("4242424242424241", "invalid_card", "incorrect_number"),
        ("4000000000000119", "processing_error", None),
        ("4242424242424242", None, None),
    ],
)
async def test_a_test_cards_decline_code_is_in_the_result_and_its_stored_events(
    either_app: object, card: str, code: str | None, decline_code: str | None
) -> None:
    body = orjson.dumps({"amount": 500, "method": "card", "metadata": {"card_number": card}})
    paid = await call(either_app, "POST", "/v1/payments", [ACME, JSON], body_of(body))
    got = await call(either_app, "GET", f"/v1/payments/{paid.json()['payment_id']}", [ACME], body_of(b""))

    assert (paid.status, got.status) == (200, 200)
    for answer in (paid, got):
        steps: list[dict[str, object]] = answer.json()["step_results"]  # type: ignore[assignment]
        assert [(s["error_code"], s["decline_code"]) for s in steps] == [(code, decline_code)]
    events: list[dict[str, object]] = got.json()["events"]  # type: ignore[assignment]
    failed = [(e["error_code"], e["decline_code"]) for e in events if e["type"] == "StepFailed"]
    # Every failed attempt's event says why the card was refused, as the step's result does.
    assert failed == ([] if code is None else [(code, decline_code)] * len(failed))
    assert len(failed) == (0 if code is None else 2 if code == "processing_error" else 1)


async def test_a_complaint_id_filed_again_with_other_content_is_409_and_the_first_is_kept(
    either_app: object,
) -> None:
    app = either_app
    first = await complain(app, ACME, complaint_id="ticket-2", description="charged twice")
    other = await complain(app, ACME, complaint_id="ticket-2", description="charged three times")
    other_time = await complain(
        app, ACME, complaint_id="ticket-2", description="charged twice", received_at="2026-01-01T00:00:00Z"
    )
    again = await complain(app, ACME, complaint_id="ticket-2", description="charged twice")

    assert first.status == 201
    assert (other.status, other.json()["code"]) == (409, "complaint_exists")
    assert "ticket-2" in str(other.json()["detail"])
    assert other_time.status == 409  # a received_at given in the body is part of the complaint
    assert (again.status, again.json()) == (200, first.json())


async def test_a_card_number_where_an_id_belongs_is_refused_without_being_shown(app: object) -> None:
    answers = {
        name: await complain(app, ACME, **{name: value})
        for name, value in (
            ("request_id", "req-4000000000000069"),
            ("payment_id", "4242424242424242"),
            ("category", "4000000000000002"),
        )
    }

    for name, answer in answers.items():
        assert answer.status == 422, name
        assert answer.json()["errors"] == [
            {
                "field": name,
                "code": "card_number",
                "message": "looks like a card number, which is neither stored nor shown",
                "severity": "error",
            }
        ]
        for number in (b"4000000000000069", b"4242424242424242", b"4000000000000002"):
            assert number not in answer.body


async def test_a_complaint_id_that_holds_a_card_number_is_kept_masked_not_refused(either_app: object) -> None:
    """A merchant's reference whose digits happen to pass Luhn (1 random 24-hex-digit id in 800) made
    the complaint unfileable (422 ``card_number``): it is kept masked, each such id apart from
    the others, and filing it again finds the stored complaint."""
    app = either_app
    filed = await complain(app, ACME, complaint_id="4000000000000127", description="first")
    other = await complain(app, ACME, complaint_id="4000000000180127", description="second")
    again = await complain(app, ACME, complaint_id="4000000000000127", description="first")
    hex_id = await complain(app, ACME, complaint_id="c0de4804381938134e74a78")

    assert (filed.status, other.status, again.status, hex_id.status) == (201, 201, 200, 201), filed.body
    kept = str(filed.json()["complaint_id"])
    assert re.fullmatch(r"400000xxxxxx0127\.[a-p]{16}", kept), kept
    assert other.json()["complaint_id"] != kept  # ids that mask alike stay apart
    assert again.json() == filed.json()
    assert re.fullmatch(r"c0de480438xxx8134e74a78\.[a-p]{16}", str(hex_id.json()["complaint_id"]))
    for answer in (filed, other, again, hex_id):
        assert mask_card_numbers(answer.body.decode()) == answer.body.decode()
    # The id as kept names the same complaint.
    by_kept = await complain(app, ACME, complaint_id=kept, description="first")
    assert (by_kept.status, by_kept.json()) == (200, filed.json())


def test_no_issued_id_looks_like_a_card_number() -> None:
    ids = [new_id("pay") for _ in range(20_000)]

    assert all(mask_card_numbers(issued) == issued for issued in ids)
    assert len(set(ids)) == len(ids)


async def test_a_complaint_may_name_an_issued_id_whose_digits_pass_luhn(app: object) -> None:
    # Issued before new_id avoided such ids: 4804381938134 is 13 digits that pass Luhn.
    old_request_id = "req_224ea4804381938134e74a78"
    assert mask_card_numbers(old_request_id) != old_request_id
    # The request was recorded then (a complaint names only its own merchant's requests).
    parts: Parts = app.state.parts  # type: ignore[attr-defined]
    await parts.records.record_violation(
        default_registry().violation(
            "api/validation",
            request_id=RequestId(old_request_id),
            message="amount: too_precise (error)",
            timestamp=datetime.now(UTC),
            merchant_id=MerchantId("m_acme"),
        )
    )

    filed = await complain(app, ACME, request_id=old_request_id)

    assert filed.status == 201, filed.body
    assert filed.json()["request_id"] == old_request_id


@pytest.mark.parametrize("received_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_a_complaint_received_outside_the_years_utc_can_hold_is_422(
    either_app: object, received_at: str
) -> None:
    refused = await complain(either_app, ACME, complaint_id="ticket-9", received_at=received_at)
    filed = await complain(either_app, ACME, complaint_id="ticket-9", received_at="0001-01-01T01:00:00+01:00")

    assert refused.status == 422, refused.body
    assert refused.json()["errors"] == [
        {
            "field": "received_at",
            "code": "out_of_range",
            "message": "is outside the years 1 to 9999 in UTC",
            "severity": "error",
        }
    ]
    # Nothing was kept of the refused one: its id is free, and the earliest time UTC holds is taken.
    assert (filed.status, filed.json()["received_at"]) == (201, "0001-01-01T00:00:00Z")


@pytest.mark.parametrize("received_at", [1763000000, 1763000000000, 1763000000.5, "1763000000", " 0 "])
async def test_a_complaint_received_at_a_number_is_422_not_a_unix_time(
    app: object, received_at: object
) -> None:
    # Read as a Unix time, 1763000000 (seconds) and 1763000000000 (milliseconds) were both filed
    # as 2025-11-13T02:13:20Z; section 9 of the contract says ISO 8601.
    refused = await complain(app, ACME, received_at=received_at)

    assert refused.status == 422, refused.body
    errors: list[dict[str, object]] = refused.json()["errors"]  # type: ignore[assignment]
    assert [(error["field"], error["code"]) for error in errors] == [("received_at", "invalid_format")]
    assert "ISO 8601" in str(errors[0]["message"])


async def test_an_admin_files_complaints_only_for_configured_merchants(app: object) -> None:
    known = await complain(app, ADMIN, merchant_id="m_globex")
    unknown = await complain(app, ADMIN, merchant_id="m_nope")

    assert (known.status, known.json()["merchant_id"]) == (201, "m_globex")
    assert unknown.status == 422
    assert unknown.json()["errors"] == [
        {
            "field": "merchant_id",
            "code": "unknown_merchant",
            "message": "no merchant 'm_nope' is configured",
            "severity": "error",
        }
    ]


async def test_head_is_get_without_the_body(app: object) -> None:
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    path = f"/v1/payments/{paid.json()['payment_id']}"

    got = await call(app, "GET", path, [ACME], body_of(b""))
    head = await call(app, "HEAD", path, [ACME], body_of(b""))
    health = await call(app, "HEAD", "/healthz", [], body_of(b""))
    listed = await call(app, "HEAD", "/v1/payments", [ACME], body_of(b""))

    assert (got.status, head.status, health.status) == (200, 200, 200)
    assert head.body == b"" and health.body == b""
    # A payment's length is known only once its events are read and its document built, which a
    # HEAD leaves out (tests/ingest/api/test_head_reads.py); a page made at once has it.
    assert "content-length" not in head.headers
    health_got = await call(app, "GET", "/healthz", [], body_of(b""))
    assert health.headers["content-length"] == str(len(health_got.body))
    assert head.headers["content-type"] == got.headers["content-type"]
    assert (listed.status, listed.body) == (200, b"")  # the list of payments (GET /v1/payments)
    not_posted = await call(app, "POST", "/healthz", [], body_of(b""))
    assert (not_posted.status, not_posted.headers["allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PROPFIND", "/v1/payments"), ("QUERY", "/v1/violations"), ("BREW", "/v1/violations")],
)
async def test_a_method_the_http_parser_passed_that_a_path_does_not_take_is_405_with_allow(
    app: object, method: str, path: str
) -> None:
    """A method that reaches the app was read as one by the HTTP parser (which answers 501 for a
    token it does not know): a path that does not take it is 405 with ``Allow``, as for DELETE.
    Not 501: the service's contract is no 5xx for a request it understood (schemathesis sends
    QUERY, a method HTTP is adding, and counts a 501 as a server error)."""
    other = await call(app, method, path, [ACME], body_of(b""))
    known = await call(app, "DELETE", path, [ACME], body_of(b""))

    assert (other.status, other.json()["code"]) == (405, "method_not_allowed")
    assert other.headers["content-type"] == "application/problem+json"
    assert other.headers["allow"] == known.headers["allow"]
    assert (known.status, known.json()["code"]) == (405, "method_not_allowed")


async def test_head_refused_for_its_declared_length_has_no_body(app: object) -> None:
    too_long = (b"content-length", b"999999999")

    head = await call(app, "HEAD", "/healthz", [too_long], body_of(b""))
    get = await call(app, "GET", "/healthz", [too_long], body_of(b""))

    assert (head.status, get.status) == (413, 413)
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))
    assert b"limit" in get.body


#: What is wrong with each Authorization header, as the 401 says it; the key is never repeated.
AUTH_FAULTS = [
    ([], "No API key was sent"),
    ([(b"authorization", b"Basic c2tfZTJlX2FjbWU6")], "must use the Bearer scheme"),
    ([(b"authorization", b"Bearer ")], "names no API key"),
    ([(b"authorization", b"Bearer sk_wrong_but_well_formed")], "not one of this service's keys"),
]


@pytest.mark.parametrize(("headers", "reason"), AUTH_FAULTS)
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/payments"), ("GET", "/v1/payments/pay_1")])
async def test_a_401_says_what_is_wrong_with_the_key(
    app: object, method: str, path: str, headers: list[tuple[bytes, bytes]], reason: str
) -> None:
    answer = await call(app, method, path, [*headers, JSON], body_of(b'{"amount": 5}'))
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="payorch"'
    detail = str(answer.json()["detail"])
    assert reason in detail
    assert "sk_wrong" not in detail


async def responses_counted(
    app: object, wanted: Callable[[dict[str, str]], bool] = lambda _: True
) -> dict[tuple[tuple[str, str], ...], float]:
    """``payorch_http_responses_total`` as scraped now: labels (sorted) to count, those ``wanted``."""
    scraped = await call(app, "GET", "/metrics", [], body_of(b""))
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
        if sample.name == "payorch_http_responses_total" and wanted(sample.labels)
    }


async def test_every_response_is_counted_by_method_route_and_status(app: object) -> None:
    await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 500}'))
    await call(app, "POST", "/v1/payments", [JSON], body_of(b'{"amount": 500}'))
    await call(app, "GET", "/v1/payments/pay_nobody", [ACME], body_of(b""))
    for path in ("/v1/nowhere/1", "/v1/nowhere/2"):  # no route: one label, not one per path
        await call(app, "GET", path, [ACME], body_of(b""))
    await call(app, "BREW", "/v1/payments", [ACME], body_of(b""))
    counted = await responses_counted(app)
    assert counted == {
        (("code", "200"), ("method", "POST"), ("route", "/v1/payments")): 1,
        (("code", "401"), ("method", "POST"), ("route", "/v1/payments")): 1,
        (("code", "404"), ("method", "GET"), ("route", "/v1/payments/{payment_id}")): 1,
        (("code", "404"), ("method", "GET"), ("route", "unmatched")): 2,
        (("code", "405"), ("method", "other"), ("route", "/v1/payments")): 1,
    }


async def test_a_head_answer_is_counted_under_its_route(app: object) -> None:
    await call(app, "HEAD", "/healthz", [], body_of(b""))
    await call(app, "HEAD", "/v1/payments/pay_nobody", [ACME], body_of(b""))
    counted = await responses_counted(app, lambda labels: labels["method"] == "HEAD")
    assert counted == {
        (("code", "200"), ("method", "HEAD"), ("route", "/healthz")): 1,
        (("code", "404"), ("method", "HEAD"), ("route", "/v1/payments/{payment_id}")): 1,
    }


async def test_the_docs_are_counted_under_their_routes(app: object) -> None:
    for path in ("/docs", "/openapi.json", "/redoc"):
        await call(app, "GET", path, [], body_of(b""))
    await call(app, "HEAD", "/docs", [], body_of(b""))
    counted = await responses_counted(app, lambda labels: labels["route"] != "/metrics")
    assert counted == {
        (("code", "200"), ("method", "GET"), ("route", "/docs")): 1,
        (("code", "200"), ("method", "GET"), ("route", "/openapi.json")): 1,
        (("code", "200"), ("method", "GET"), ("route", "/redoc")): 1,
        (("code", "200"), ("method", "HEAD"), ("route", "/docs")): 1,
    }


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_everything_they_use_from_the_service(app: object, page: str) -> None:
    # FastAPI's own pages loaded their scripts, styles and fonts from CDNs: offline or behind a
    # firewall they came up blank. Every script, style and icon a page names must be served here.
    answer = await call(app, "GET", page, [], body_of(b""))
    assert answer.status == 200
    text = answer.body.decode()
    used = re.findall(r"""(?:src|href)=["']([^"']+)["']""", text)
    used += re.findall(r"""url:\s*['"]([^'"]+)['"]""", text)  # Swagger UI's document
    used += re.findall(r"""spec-url=["']([^"']+)["']""", text)  # Redoc's
    assert "/openapi.json" in used
    assert not [url for url in used if "://" in url or url.startswith("//")], used
    for url in used:
        served = await call(app, "GET", url, [], body_of(b""))
        assert served.status == 200, url
        assert len(served.body) > 0, url


@pytest.mark.parametrize("asked", ["items=0-1", "bytes=a-b", "bytes=10-5", "bytes"])
async def test_a_range_of_an_asset_that_cannot_be_read_is_ignored(app: object, asked: str) -> None:
    # RFC 9110 section 14.2: a server ignores a Range it cannot read (MUST, for a unit it does
    # not know). Starlette refused it 400, in plain text.
    whole = await call(app, "GET", "/docs/assets/favicon.png", [], body_of(b""))
    answer = await call(app, "GET", "/docs/assets/favicon.png", [(b"range", asked.encode())], body_of(b""))

    assert answer.status == 200, answer.body
    assert answer.body == whole.body
    assert answer.headers["content-type"] == "image/png"


async def test_a_range_beyond_an_asset_is_a_problem_giving_its_size(app: object) -> None:
    whole = await call(app, "GET", "/docs/assets/favicon.png", [], body_of(b""))
    size = len(whole.body)
    range_header = (b"range", f"bytes={size}-".encode())
    answer = await call(app, "GET", "/docs/assets/favicon.png", [range_header], body_of(b""))

    assert answer.status == 416
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["content-range"] == f"bytes */{size}"
    assert answer.json()["code"] == "range_not_satisfiable"
    assert answer.json()["request_id"] == answer.headers["request-id"]
    head = await call(app, "HEAD", "/docs/assets/favicon.png", [range_header], body_of(b""))
    assert (head.status, head.body) == (416, b"")


async def test_a_range_within_an_asset_is_still_served(app: object) -> None:
    whole = await call(app, "GET", "/docs/assets/favicon.png", [], body_of(b""))
    answer = await call(app, "GET", "/docs/assets/favicon.png", [(b"range", b"bytes=1-4")], body_of(b""))

    assert answer.status == 206
    assert answer.body == whole.body[1:5]


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/favicon.png/",
        "/docs/assets/favicon.png/.",
        "/docs/assets/./favicon.png",
        "/docs/assets//favicon.png",
        "/docs/assets/x/../favicon.png",
    ],
)
async def test_an_asset_is_found_at_its_own_path_only(app: object, path: str) -> None:
    # Starlette normalised the path: the icon was served at each of these too.
    answer = await call(app, "GET", path, [], body_of(b""))

    assert answer.status == 404, path
    assert answer.json()["code"] == "not_found"


async def test_a_complaint_in_the_future_is_told_how_far_ahead_is_let_through(app: object) -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=6)).isoformat()
    answer = await complain(app, ACME, complaint_id="t-six", received_at=ahead)

    assert answer.status == 422, answer.body
    errors: list[dict[str, object]] = answer.json()["errors"]  # type: ignore[assignment]
    assert "more than 5 minutes after now" in str(errors[0]["message"])
    assert "5 minutes ahead" in str(answer.json()["detail"])


async def test_a_complaint_received_in_the_future_is_422(app: object) -> None:
    now = datetime.now(UTC)
    ahead = await complain(
        app, ACME, complaint_id="t-ahead", received_at=(now + timedelta(days=1)).isoformat()
    )
    skewed = await complain(
        app, ACME, complaint_id="t-skew", received_at=(now + timedelta(minutes=1)).isoformat()
    )

    assert ahead.status == 422, ahead.body
    errors: list[dict[str, object]] = ahead.json()["errors"]  # type: ignore[assignment]
    assert [(error["field"], error["code"]) for error in errors] == [("received_at", "in_the_future")]
    assert skewed.status == 201, skewed.body  # a clock a minute ahead of the service's is let through


async def test_a_complaint_received_before_its_payment_is_422(either_app: object) -> None:
    app = either_app
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    payment_id = paid.json()["payment_id"]
    now = datetime.now(UTC)

    earlier = await complain(
        app, ACME, payment_id=payment_id, received_at=(now - timedelta(days=400)).isoformat()
    )
    skewed = await complain(
        app, ACME, payment_id=payment_id, received_at=(now - timedelta(minutes=1)).isoformat()
    )
    unnamed = await complain(app, ACME, received_at=(now - timedelta(days=400)).isoformat())

    assert earlier.status == 422, earlier.body
    errors: list[dict[str, object]] = earlier.json()["errors"]  # type: ignore[assignment]
    assert [(error["field"], error["code"]) for error in errors] == [("received_at", "before_payment")]
    assert str(payment_id) in str(errors[0]["message"])
    assert skewed.status == 201, skewed.body  # a clock a minute behind the service's is let through
    assert unnamed.status == 201, unnamed.body  # an old complaint about no payment may be filed late


async def test_a_complaint_filed_without_a_time_after_the_clock_stepped_back_is_not_before_its_payment(
    either_app: object,
) -> None:
    app = either_app
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    payment = paid.json()
    clock = app.state.parts.clock  # type: ignore[attr-defined]
    stepped_back = clock.now() - timedelta(hours=1)
    clock.now = lambda: stepped_back  # NTP corrected a clock an hour fast since the payment

    filed = await complain(app, ACME, complaint_id="t-stepped", payment_id=payment["payment_id"])
    again = await complain(app, ACME, complaint_id="t-stepped", payment_id=payment["payment_id"])

    looked_up = await call(app, "GET", f"/v1/payments/{payment['payment_id']}", [ACME], body_of(b""))
    events: list[dict[str, object]] = looked_up.json()["events"]  # type: ignore[assignment]
    received = events[0]["timestamp"]
    assert filed.status == 201, filed.body  # not 422 before_payment for a time the merchant never gave
    assert filed.json()["received_at"] == received  # filed now, yet not before its payment
    assert (again.status, again.json()) == (200, filed.json())


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/payments"), ("POST", "/v1/complaints")])
async def test_a_transfer_coding_besides_chunked_is_501(app: object, method: str, path: str) -> None:
    coded = [ACME, JSON, (b"transfer-encoding", b"gzip, chunked")]
    refused = await call(app, method, path, coded, body_of(b'{"amount": 5, "category": "timeout"}'))
    plain = await call(
        app, method, path, [ACME, JSON, (b"transfer-encoding", b"Chunked")], body_of(b'{"amount": 5}')
    )

    assert refused.status == 501, refused.body
    assert refused.json()["code"] == "transfer_coding_not_supported"
    assert plain.status != 501


@pytest.mark.parametrize(
    ("method", "path", "key", "body"),
    [
        ("GET", "/v1/violations?limit=abc", ADMIN, b""),
        ("GET", "/v1/violations?from=yesterday", ADMIN, b""),
        ("GET", "/v1/analytics/events?to=1764547200", ADMIN, b""),
        ("GET", "/v1/complaints?limit=%2B1", ACME, b""),
        ("GET", "/v1/reports/retrospective?from=2026-13-01", ADMIN, b""),
        ("POST", "/v1/complaints", ACME, b'{"category": "timeout", "received_at": 1764547200}'),
    ],
)
async def test_a_value_a_validator_refuses_is_told_in_its_own_words(
    app: object, method: str, path: str, key: tuple[bytes, bytes], body: bytes
) -> None:
    answer = await call(app, method, path, [key, JSON], body_of(body))

    assert answer.status == 422, answer.body
    errors: Any = answer.json()["errors"]
    assert [error["code"] for error in errors] == ["invalid_format"]
    message = errors[0]["message"]
    assert "must be " in message
    assert "error" not in message.lower(), message  # pydantic's "Value error, " before its words


async def test_a_payment_with_a_query_parameter_is_refused_and_charges_nothing(app: object) -> None:
    """``POST /v1/payments?amount=999999`` charged the body's 1250 and said nothing: the query was
    ignored. As Stripe, a POST's parameters are read from its body only: the request is refused
    (recorded as any refusal), its key stays free, and a key's stored answer still replays first."""
    keyed = [ACME, JSON, (b"idempotency-key", b"order-77")]
    body = b'{"amount": 1250, "currency": "USD"}'
    refused = await call(app, "POST", "/v1/payments?amount=999999&note", keyed, body_of(body))
    keyless = await call(app, "POST", "/v1/payments?amount=999999", [JSON], body_of(body))
    stored = await call(app, "GET", f"/v1/payments/{refused.json()['payment_id']}", [ACME], body_of(b""))
    paid = await call(app, "POST", "/v1/payments", keyed, body_of(body))
    replayed = await call(app, "POST", "/v1/payments?amount=999999", keyed, body_of(body))
    empty = await call(app, "POST", "/v1/payments?", [ACME, JSON], body_of(body))

    assert refused.status == 422, refused.body
    listed: Any = refused.json()["errors"]
    errors = [e for e in listed if e["severity"] == "error"]
    assert [(e["field"], e["code"]) for e in errors] == [
        ("amount", "unknown_parameter"),
        ("note", "unknown_parameter"),
    ]
    assert "read from the body only" in errors[0]["message"]
    assert keyless.status == 401  # the key is checked first
    assert stored.json()["status"] == "rejected"
    assert (paid.status, paid.json()["total_processed"]) == (200, 1250)  # the key was left free
    assert (replayed.status, replayed.headers.get("idempotent-replayed")) == (200, "true")
    assert replayed.body == paid.body
    assert empty.status == 200
