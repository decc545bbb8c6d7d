"""End-to-end: a real ``payorch serve`` process on a free port, driven over HTTP with httpx."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import time
import uuid
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import ACME, ADMIN, GLOBEX, SLOW, Server

SPLIT = {"amount": 10000, "currency": "USD"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}


def _charges(server: Server, payment_id: str) -> list[dict[str, object]]:
    return [c for c in server.ledger() if c["payment_id"] == payment_id and c["change"] == "charge"]


def test_split_payment_charges_apple_pay_then_card(server: Server) -> None:
    response = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers=ACME, timeout=10)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded"
    assert (result["total_amount"], result["total_processed"], result["remaining_amount"]) == (
        10000,
        10000,
        0,
    )
    steps = [(s["method"], s["processor_id"], s["amount_processed"]) for s in result["step_results"]]
    assert steps == [("apple_pay", "applepay_sim", 6000), ("card", "stripe_sim", 4000)]
    timing = response.headers["Server-Timing"]
    assert "orchestration;dur=" in timing
    assert "processor;dur=" in timing
    assert response.headers["Request-Id"].startswith("req_")
    charges = _charges(server, result["payment_id"])
    assert sorted((c["processor_id"], c["amount_cents"]) for c in charges) == [
        ("applepay_sim", 6000),
        ("stripe_sim", 4000),
    ]

    shown = httpx.get(f"{server.url}/v1/payments/{result['payment_id']}", headers=ACME, timeout=10)
    assert shown.status_code == 200
    events = shown.json()["events"]
    assert [e["type"] for e in events] == [
        "PaymentReceived",
        "PlanBuilt",
        "StepAttempted",
        "StepSucceeded",
        "StepAttempted",
        "StepSucceeded",
        "PaymentCompleted",
    ]
    assert all(e["payment_id"] == result["payment_id"] and e["timestamp"].endswith("Z") for e in events)


def test_declined_card_refunds_the_apple_pay_step(server: Server) -> None:
    body = {**SPLIT, "metadata": {"card_number": "4000000000000002"}}
    response = httpx.post(f"{server.url}/v1/payments", json=body, headers=ACME, timeout=10)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["status"], result["final_error"], result["total_processed"]) == ("failed", "declined", 0)
    apple, card = result["step_results"]
    assert (apple["success"], apple["compensated"]) == (True, True)
    assert (card["success"], card["error_code"]) == (False, "declined")
    changes = [
        (c["change"], c["processor_id"]) for c in server.ledger() if c["payment_id"] == result["payment_id"]
    ]
    assert changes == [("charge", "applepay_sim"), ("refund", "applepay_sim")]
    shown = httpx.get(f"{server.url}/v1/payments/{result['payment_id']}", headers=ACME, timeout=10).json()
    assert "CompensationIssued" in [e["type"] for e in shown["events"]]
    assert shown["events"][-1]["type"] == "PaymentFailed"
    # the card number never comes back unmasked
    assert "4000000000000002" not in shown.__repr__()


def test_allow_partial_merchant_reports_what_remains(server: Server) -> None:
    body = {"amount": "25.00", "currency": "EUR", "metadata": {"card_number": "4000000000009995"}}
    response = httpx.post(f"{server.url}/v1/payments", json=body, headers=GLOBEX, timeout=10)

    assert response.status_code == 200
    result = response.json()
    assert (result["status"], result["total_amount"], result["remaining_amount"]) == ("failed", 2500, 2500)
    assert result["step_results"][0]["error_code"] == "declined"


def test_unprocessable_request_is_422_and_charges_nothing(server: Server) -> None:
    before = len(server.ledger())
    response = httpx.post(
        f"{server.url}/v1/payments",
        json={"amount": "twelve", "currency": "XYZ", "metadata": {"card_number": "4242424242424242"}},
        headers=ACME,
        timeout=10,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (422, "validation_failed")
    fields = {(e["field"], e["severity"]) for e in problem["errors"]}
    assert ("amount", "error") in fields
    assert ("currency", "error") in fields
    assert "4242424242424242" not in response.text
    assert len(server.ledger()) == before
    violations = httpx.get(
        f"{server.url}/v1/violations", params={"contract_id": "api/validation"}, headers=ADMIN, timeout=10
    ).json()["violations"]
    assert any(v["request_id"] == problem["request_id"] for v in violations)


def test_keys_are_required_and_scoped(server: Server) -> None:
    url = f"{server.url}/v1/payments"
    missing = httpx.post(url, json=SPLIT, timeout=10)
    wrong = httpx.post(url, json=SPLIT, headers={"Authorization": "Bearer sk_nope"}, timeout=10)
    admin_pays = httpx.post(url, json=SPLIT, headers=ADMIN, timeout=10)
    merchant_reads_violations = httpx.get(f"{server.url}/v1/violations", headers=ACME, timeout=10)
    other_merchant_in_body = httpx.post(
        url, json={**SPLIT, "merchant_id": "m_globex"}, headers=ACME, timeout=10
    )

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["code"] == "unauthorized"
    assert admin_pays.status_code == 403
    assert merchant_reads_violations.status_code == 403
    assert other_merchant_in_body.status_code == 403
    assert other_merchant_in_body.json()["errors"][0]["field"] == "merchant_id"


def test_another_merchants_payment_is_404(server: Server) -> None:
    paid = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers=ACME, timeout=10).json()
    url = f"{server.url}/v1/payments/{paid['payment_id']}"

    assert httpx.get(url, headers=GLOBEX, timeout=10).status_code == 404
    assert httpx.get(url, headers=ACME, timeout=10).status_code == 200
    assert httpx.get(url, headers=ADMIN, timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/v1/payments/pay_unknown", headers=ADMIN, timeout=10).status_code == 404


def test_repeat_with_the_same_key_replays_and_charges_once(server: Server) -> None:
    headers = {**ACME, **_key()}
    first = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers=headers, timeout=10)
    again = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers=headers, timeout=10)

    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(_charges(server, first.json()["payment_id"])) == 2


def test_same_key_with_another_body_is_422(server: Server) -> None:
    headers = {**ACME, **_key()}
    first = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers=headers, timeout=10)
    other = httpx.post(
        f"{server.url}/v1/payments", json={**SPLIT, "amount": 9000}, headers=headers, timeout=10
    )

    assert first.status_code == 200
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    merchant_keys_are_separate = httpx.post(
        f"{server.url}/v1/payments",
        json={"amount": 9000},
        headers={**GLOBEX, "Idempotency-Key": headers["Idempotency-Key"]},
        timeout=10,
    )
    assert merchant_keys_are_separate.status_code == 200


async def test_fifty_concurrent_requests_with_one_key_charge_once(server: Server) -> None:
    # The slow merchant's charge takes about 1.5 s, so the other 49 surely arrive while it runs.
    headers = {**SLOW, **_key()}
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/payments", json=SPLIT, headers=headers) for _ in range(50))
        )

    statuses = Counter((r.status_code, r.headers.get("Idempotent-Replayed") == "true") for r in responses)
    assert statuses[200, False] == 1, statuses
    assert statuses[409, False] >= 1, statuses
    assert set(statuses) <= {(200, False), (200, True), (409, False)}, statuses
    conflicts = [r for r in responses if r.status_code == 409]
    assert all(r.json()["code"] == "idempotency_key_in_use" for r in conflicts)
    payment_ids = {r.json()["payment_id"] for r in responses if r.status_code == 200}
    assert len(payment_ids) == 1
    (payment_id,) = payment_ids
    charged = [c for c in server.ledger() if c["change"] == "charge" and c["payment_id"] == payment_id]
    assert [(c["processor_id"], c["amount_cents"]) for c in charged] == [("slow_sim", 10000)]


def test_body_over_64_kib_is_413(server: Server) -> None:
    body = b'{"amount": 100, "metadata": {"x": "' + b"a" * 70_000 + b'"}}'
    response = httpx.post(
        f"{server.url}/v1/payments",
        content=body,
        headers={**ACME, "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_chunked_body_over_64_kib_is_413_and_the_connection_closes(server: Server) -> None:
    # The service kept reading the rest of the body after its 413, only to throw it away: a client
    # streaming one without end held its connection, and a core of the server, for ever.
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        b"POST /v1/payments HTTP/1.1\r\nHost: payorch\r\nAuthorization: Bearer sk_e2e_acme\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (16_384, b"a" * 16_384)
    answer = b""
    closed = False
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head)
        connection.setblocking(False)
        deadline = time.monotonic() + 30  # never reached when the connection closes
        while time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError, ConnectionResetError, BrokenPipeError):
                connection.send(chunk)  # the body never ends
            try:
                received = connection.recv(65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except ConnectionResetError:
                closed = True
                break
            if not received:
                closed = True
                break
            answer += received
    head_answered, _, body = answer.partition(b"\r\n\r\n")

    assert head_answered.startswith(b"HTTP/1.1 413"), answer
    assert b"connection: close" in head_answered
    assert b'"code":"payload_too_large"' in body
    assert closed  # by the service, while the body was still coming


def test_headers_over_32_kib_are_431_and_charge_nothing(server: Server) -> None:
    key = _key()
    headers = {**ACME, **key, "X-Padding": "a" * 33_000}
    response = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers=headers, timeout=10)

    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "headers_too_large"
    replayed = httpx.post(f"{server.url}/v1/payments", json=SPLIT, headers={**ACME, **key}, timeout=10)
    assert "idempotent-replayed" not in replayed.headers  # the first never reached the service


def test_form_encoded_payment(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/payments",
        data={"Amount": "12.50", "Currency": "usd", "Method": "Visa"},
        headers=ACME,
        timeout=10,
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["total_amount"], result["currency"]) == (1250, "USD")
    assert result["step_results"][0]["method"] == "card"
    assert {issue["severity"] for issue in result["validation_errors"]} == {"warning"}


def test_multipart_and_compressed_bodies_are_422_saying_what_to_send(server: Server) -> None:
    before = len(server.ledger())
    multipart = httpx.post(
        f"{server.url}/v1/payments",
        files={"amount": (None, "1250"), "currency": (None, "USD")},
        headers=ACME,
        timeout=10,
    )
    compressed = httpx.post(
        f"{server.url}/v1/payments",
        content=gzip.compress(b'{"amount": 1250, "currency": "USD"}'),
        headers={**ACME, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=10,
    )

    for response, code, says in (
        (multipart, "unsupported_content_type", "multipart bodies are not accepted"),
        (compressed, "unsupported_content_encoding", "is not supported"),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        (error,) = response.json()["errors"]
        assert (error["field"], error["code"]) == ("body", code)
        assert says in error["message"]
    assert len(server.ledger()) == before


def test_complaints_are_stored_once(server: Server) -> None:
    complaint = {
        "complaint_id": f"c-{uuid.uuid4()}",
        "category": "double_charge",
        "description": "charged twice",
    }
    first = httpx.post(f"{server.url}/v1/complaints", json=complaint, headers=ACME, timeout=10)
    again = httpx.post(f"{server.url}/v1/complaints", json=complaint, headers=ACME, timeout=10)
    admin_without_merchant = httpx.post(
        f"{server.url}/v1/complaints", json=complaint, headers=ADMIN, timeout=10
    )

    assert first.status_code == 201, first.text
    assert first.json()["merchant_id"] == "m_acme"
    assert again.status_code == 200
    assert again.json() == first.json()
    assert admin_without_merchant.status_code == 422


def test_a_complaint_id_holding_a_slash_is_read_back_encoded_or_not(server: Server) -> None:
    complaint_id = f"zendesk/{uuid.uuid4()}"
    filed = httpx.post(
        f"{server.url}/v1/complaints",
        json={"complaint_id": complaint_id, "category": "timeout"},
        headers=ACME,
        timeout=10,
    )
    # The server sees `%2F` decoded: a client's encoded path parameter, as generated clients send it.
    encoded = httpx.get(
        f"{server.url}/v1/complaints/{complaint_id.replace('/', '%2F')}", headers=ACME, timeout=10
    )
    as_given = httpx.get(f"{server.url}/v1/complaints/{complaint_id}", headers=ACME, timeout=10)

    assert filed.status_code == 201, filed.text
    assert (encoded.status_code, as_given.status_code) == (200, 200), encoded.text
    assert encoded.json()["complaint_id"] == as_given.json()["complaint_id"] == complaint_id


def test_unknown_route_and_method_are_problems(server: Server) -> None:
    missing = httpx.get(f"{server.url}/v2/nothing", timeout=10)
    wrong_method = httpx.delete(f"{server.url}/v1/payments", headers=ACME, timeout=10)

    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


def test_openapi_describes_every_endpoint(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()

    assert {"/v1/payments", "/v1/payments/{payment_id}", "/v1/complaints", "/v1/violations"} <= set(
        spec["paths"]
    )
    post = spec["paths"]["/v1/payments"]["post"]
    assert {"200", "401", "409", "413", "422", "503"} <= set(post["responses"])
    assert "application/json" in post["requestBody"]["content"]


def test_a_client_that_goes_away_does_not_cut_its_payment_short(server: Server) -> None:
    key = f"e2e-gone-{uuid.uuid4()}"
    body = b'{"amount": 2500}'
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/payments HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer sk_e2e_slow\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(request)
        time.sleep(0.3)  # the slow processor is still working on the charge
    # The connection is gone. The payment must still end, and its answer be kept under the key.
    deadline = time.monotonic() + 20
    again = httpx.post(
        f"{server.url}/v1/payments", content=body, headers={**SLOW, "Idempotency-Key": key}, timeout=10
    )
    while again.status_code == 409 and time.monotonic() < deadline:
        time.sleep(0.2)
        again = httpx.post(
            f"{server.url}/v1/payments", content=body, headers={**SLOW, "Idempotency-Key": key}, timeout=10
        )

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    result = again.json()
    assert result["status"] == "succeeded"
    charged = [c for c in server.ledger() if c["payment_id"] == result["payment_id"]]
    assert [(c["change"], c["amount_cents"]) for c in charged] == [("charge", 2500)]
    shown = httpx.get(f"{server.url}/v1/payments/{result['payment_id']}", headers=SLOW, timeout=10).json()
    assert shown["events"][-1]["type"] == "PaymentCompleted"


def test_a_transfer_coding_besides_chunked_is_501_and_charges_nothing(server: Server) -> None:
    coded = gzip.compress(b'{"amount": 1371, "currency": "USD"}')
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        b"POST /v1/payments HTTP/1.1\r\nHost: payorch\r\nAuthorization: Bearer sk_e2e_acme\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(coded), coded)
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 501"), head
    assert b'"code":"transfer_coding_not_supported"' in body.replace(b" ", b"")
    assert all(line.get("amount_cents") != 1371 for line in server.ledger())  # nothing charged


def _refusals_counted(server: Server) -> dict[tuple[str, str], float]:
    """``payorch_http_responses_total`` of the route ``unmatched``: (method, code) to count."""
    scraped = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.labels["method"], sample.labels["code"]): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "payorch_http_responses_total" and sample.labels["route"] == "unmatched"
    }


def test_the_connections_own_refusals_are_counted_on_metrics(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    before = _refusals_counted(server)
    oversized = b"POST /v1/payments HTTP/1.1\r\nHost: payorch\r\nX-Big: " + b"a" * 33_000 + b"\r\n\r\n"
    for request in (oversized, oversized, b"BREW /healthz HTTP/1.1\r\nHost: payorch\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(request)
            assert connection.recv(12) in (b"HTTP/1.1 431", b"HTTP/1.1 501")
    after = _refusals_counted(server)

    assert after.get(("POST", "431"), 0) - before.get(("POST", "431"), 0) == 2
    assert after.get(("other", "501"), 0) - before.get(("other", "501"), 0) == 1
