"""The demo's traffic: the same for a seed, messy in the ways the demo promises, and sent and
counted by ``payorch.demo`` (here against a fake service: an ``httpx.MockTransport``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx

from ingest.config_file import load_sample_config
from payorch.demo import Traffic, command_name, send_traffic, summary, what_to_open
from payorch.traffic import DECLINING_CARDS, Answered, PaymentRequest, demo_complaints, demo_payments

CONFIG = load_sample_config()


def _card(request: PaymentRequest) -> object:
    metadata = request.body.get("metadata")
    return metadata.get("card_number") if isinstance(metadata, dict) else None


def test_the_traffic_is_the_same_for_a_seed_but_for_its_keys() -> None:
    first, again, other = (
        demo_payments(CONFIG, "run-a"),
        demo_payments(CONFIG, "run-b"),
        demo_payments(CONFIG, "x", 1),
    )

    assert [(r.merchant_id, r.body, r.form) for r in first] == [
        (r.merchant_id, r.body, r.form) for r in again
    ]
    keys = [r.idempotency_key for r in first if r.idempotency_key is not None]
    assert [key.replace("run-a-", "run-b-") for key in keys] == [
        r.idempotency_key for r in again if r.idempotency_key is not None
    ]
    assert all(key.startswith("run-a-") for key in keys)
    assert [r.body for r in first] != [r.body for r in other]


def test_the_traffic_is_as_messy_as_the_demo_says() -> None:
    requests = demo_payments(CONFIG, "t")

    assert len(requests) >= 24
    assert Counter(r.merchant_id for r in requests).keys() == {"m_acme", "m_globex"}
    assert requests[-1] in requests[:-1]  # an idempotent repeat: same key, same body
    assert requests[-1].idempotency_key is not None
    assert any(r.idempotency_key is None for r in requests)
    assert any(r.form for r in requests)
    assert {_card(r) for r in requests} >= set(DECLINING_CARDS)
    currencies = {str(r.body.get("currency", r.body.get("Currency", ""))).strip().lower() for r in requests}
    assert {"jpy", "gbp", "£", "€", "euro", "840"} <= currencies
    assert {"12.345", -500} <= {r.body.get("amount") for r in requests}  # refused: 422
    assert any(str(r.body.get("Amount", "")).startswith(("1", "2", "3")) for r in requests)  # over 60.00


def test_complaints_name_failed_and_partial_payments_and_a_category() -> None:
    request = PaymentRequest("m_globex", {"amount": 100})
    answers = [
        Answered(request, "rejected"),
        Answered(request, "failed", "pay_1", 1),
        Answered(request, "partially_succeeded", "pay_2", 2),
    ]
    filed = demo_complaints(answers)

    about = {(c.body["category"], c.body.get("payment_id")) for c in filed}
    assert {("declined_unexpectedly", "pay_1"), ("partial_charge", "pay_2"), ("TIMEOUT", None)} <= about
    assert {c.merchant_id for c in filed} == {"m_acme", "m_globex"}


class FakeService:
    """Answers payments as the service would, replaying a repeated key, and files complaints."""

    def __init__(self) -> None:
        self.stored: dict[str, httpx.Response] = {}
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if request.url.path == "/v1/complaints":
            return httpx.Response(201, json=json.loads(request.content))
        key = request.headers.get("idempotency-key")
        if key in self.stored:
            return httpx.Response(200, json=self.stored[key].json(), headers={"Idempotent-Replayed": "true"})
        body = request.content.decode()
        if "12.345" in body or "-500" in body or "XYZ" in body:
            return httpx.Response(422, json={"code": "validation_failed"})
        status = "failed" if any(card in body for card in DECLINING_CARDS) else "succeeded"
        answer = httpx.Response(
            200, json={"status": status, "payment_id": f"pay_{self.requests}", "step_results": [{}, {}]}
        )
        if key is not None:
            self.stored[key] = answer
        return answer


def test_the_traffic_is_counted_as_the_service_answers_it(tmp_path: Path) -> None:
    service = FakeService()
    with httpx.Client(transport=httpx.MockTransport(service), base_url="http://demo") as client:
        traffic = send_traffic(client, CONFIG, lambda: False)

    assert traffic is not None
    assert traffic.replays == 1
    assert traffic.payments["rejected"] == 3
    assert sum(traffic.payments.values()) + traffic.replays == len(demo_payments(CONFIG, "t"))
    assert traffic.payments["failed"] > 0
    assert traffic.complaints == Counter({"declined_unexpectedly": 2, "double_charge": 1, "timeout": 2})
    assert summary(traffic)[0].startswith(f"  payments: {len(demo_payments(CONFIG, 't'))} sent: ")
    assert "3 rejected (422); 1 idempotent repeat replayed" in summary(traffic)[0]
    lines = "\n".join(what_to_open("http://demo", CONFIG, tmp_path, traffic.example(), ".venv/bin/payorch"))
    assert "curl -s http://demo/v1/payments/pay_" in lines
    assert ".venv/bin/payorch report --api http://demo --api-key adm_test_123" in lines
    assert f"nothing is written to {tmp_path / 'reports'}" in lines
    # Every command not built yet is named, as the README's demo section says.
    assert "`payorch simulate`, `payorch complaints import`" in lines


def test_the_summary_counts_repeats_in_words_that_agree() -> None:
    """A repeat the service did not replay (a 409 while its first ran) left "0 idempotent repeat"."""
    said = [summary(Traffic(Counter({"succeeded": 2}), replays))[0] for replays in (0, 1, 2)]
    assert [line.partition("; ")[2] for line in said] == [
        "0 idempotent repeats replayed",
        "1 idempotent repeat replayed",
        "2 idempotent repeats replayed",
    ]


def test_the_demo_names_payorch_as_it_can_be_run_again(tmp_path: Path) -> None:
    program = tmp_path / "venv bin" / "payorch"
    program.parent.mkdir()
    program.touch()
    # After `make demo`, .venv/bin is on no PATH: the printed command is the path it was run by.
    assert command_name(".venv/bin/payorch", None, "/usr/bin/python3") == ".venv/bin/payorch"
    assert command_name(str(program), "/usr/local/bin/payorch", "py") == f"'{program}'"
    assert command_name(str(program), str(program), "py") == "payorch"
    main = "/src/payorch/__main__.py"
    assert command_name(main, "/usr/local/bin/payorch", "/opt/my py") == "'/opt/my py' -m payorch"


def test_the_traffic_stops_when_the_server_does() -> None:
    service = FakeService()
    with httpx.Client(transport=httpx.MockTransport(service), base_url="http://demo") as client:
        traffic = send_traffic(client, CONFIG, lambda: service.requests >= 5)

    assert traffic is None
    assert service.requests == 5
