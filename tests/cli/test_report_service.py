"""``payorch report --api``: the running service's own report (``GET /v1/reports/retrospective``,
rendered with the service's configuration), asked for an explicit window; the same document as
the endpoint's; and each refusal or failure of the service on one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from engine.monitor import ReportWindow
from ingest.config_file import load_sample_config
from payorch.report import ReportError, ServiceSource
from tests.cli.test_report import report, rows, same_report, whole_second_after
from tests.e2e.server import ACME, ADMIN, CONFIG, GLOBEX, Server, start_server

PATH = "/v1/reports/retrospective"
ADMIN_KEY = ADMIN["Authorization"].removeprefix("Bearer ")
#: The service's own taxonomy: ``mystery`` maps there, and nowhere with the sample config.
SERVICE_CONFIG = CONFIG + "complaint_taxonomy: {mystery: observer/dropped}\n"


class _QuietServer(ThreadingHTTPServer):
    """The fake's server: its handler threads are joined at its close, and a handler's own error
    (a client that went away mid-answer: a command interrupted, a test's slow answer) is kept in
    ``errors``, not printed. Printed, it landed in whichever command's captured stderr ran then,
    failing that test's no-traceback check (seen once, in a 403 case after a slow answer's test)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[BaseException] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None:
            self.errors.append(error)


class FakeService:
    """A local HTTP server answering every GET with one canned answer, keeping what was asked."""

    def __init__(self) -> None:
        self.answer: tuple[int, str, bytes] = (200, "application/yaml", b"violations: []\n")
        #: Answers given first, in order, each with headers of its own; then ``answer``.
        self.first: list[tuple[int, str, bytes, dict[str, str]]] = []
        self.asked: list[tuple[str, str | None]] = []
        #: Seconds each answer is held back (a service reading a long window).
        self.delay_s = 0.0
        #: Set at the fake's close: an answer still held back goes at once (a test's teardown
        #: does not wait out its delay).
        self.released = threading.Event()
        #: Answers sent whole.
        self.answered = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.asked.append((self.path, self.headers.get("Authorization")))
                status, media_type, body, headers = fake.first.pop(0) if fake.first else (*fake.answer, {})
                fake.released.wait(fake.delay_s)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                fake.answered += 1

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads what was asked from ``asked``."""

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[FakeService]:
    service = FakeService()
    thread = threading.Thread(target=service.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield service
    service.released.set()
    service.server.shutdown()
    service.server.server_close()
    thread.join()


WINDOW = ReportWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


def ask(url: str, *args: str) -> tuple[int, str, str]:
    done = report("--api", url, "--api-key", ADMIN_KEY, *args)
    assert "Traceback" not in done.output
    return done.exit_code, done.stdout, done.stderr


def test_the_service_is_asked_for_its_report_of_the_default_window(fake: FakeService) -> None:
    document = b'{"window": {"from": "x", "to": "y"}, "violations": []}\n'
    fake.answer = (200, "application/json", document)
    now = datetime.now(UTC)

    code, out, err = ask(fake.url, "--format", "json")

    assert (code, out, err) == (0, document.decode(), "")
    [(asked, authorization)] = fake.asked
    assert authorization == f"Bearer {ADMIN_KEY}"
    assert urlsplit(asked).path == PATH
    query = {name: values[0] for name, values in parse_qs(urlsplit(asked).query).items()}
    assert set(query) == {"to", "format"}  # the start is the service's: its own report span
    assert query["format"] == "json"
    assert abs(datetime.fromisoformat(query["to"]) - now) < timedelta(minutes=1)


def test_an_end_without_a_start_leaves_the_start_to_the_service(fake: FakeService) -> None:
    fake.answer = (200, "application/json", b"{}\n")

    code, _, err = ask(fake.url, "--format", "json", "--to", "2026-11-25")

    assert (code, err) == (0, "")
    [(asked, _)] = fake.asked
    query = {name: values[0] for name, values in parse_qs(urlsplit(asked).query).items()}
    # Not the 14 days of the local sample config: the service's own reports.every_days.
    assert query == {"to": "2026-11-25T00:00:00+00:00", "format": "json"}


def test_a_start_given_is_sent(fake: FakeService) -> None:
    fake.answer = (200, "application/json", b"{}\n")

    code, _, err = ask(fake.url, "--format", "json", "--from", "2026-11-01", "--to", "2026-11-08")

    assert (code, err) == (0, "")
    [(asked, _)] = fake.asked
    query = {name: values[0] for name, values in parse_qs(urlsplit(asked).query).items()}
    assert (query["from"], query["to"]) == ("2026-11-01T00:00:00+00:00", "2026-11-08T00:00:00+00:00")


def test_yaml_is_asked_for_by_default_and_written_as_answered(fake: FakeService, tmp_path: Path) -> None:
    out = tmp_path / "retro.yaml"

    code, stdout, err = ask(fake.url, "--from", "2026-11-12", "--to", "2026-11-26", "--out", str(out))

    assert (code, stdout, err) == (0, "", f"payorch report: wrote {out}\n")
    assert out.read_bytes() == fake.answer[2]
    query = parse_qs(urlsplit(fake.asked[0][0]).query)
    assert query == {
        "from": ["2026-11-12T00:00:00+00:00"],
        "to": ["2026-11-26T00:00:00+00:00"],
        "format": ["yaml"],
    }


NGINX_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(
            (401, "application/problem+json", b'{"code": "unauthorized", "detail": "No key."}'),
            "the service at {url} refused the API key: an admin key is needed",
            id="401",
        ),
        pytest.param(
            (403, "application/problem+json", b'{"code": "forbidden", "detail": "Admins only."}'),
            "the service at {url} refused the API key: an admin key is needed",
            id="403",
        ),
        pytest.param(
            (
                422,
                "application/problem+json",
                b'{"code": "validation_failed", "title": "Validation failed", '
                b'"detail": "`from` is outside the years 1 to 9999 in UTC.\\nsee errors"}',
            ),
            "{url}" + PATH + " answered 422: `from` is outside the years 1 to 9999 in UTC.",
            id="422-detail-first-line",
        ),
        pytest.param(
            (503, "application/problem+json", b'{"title": "Service unavailable"}'),
            "{url}" + PATH + " answered 503: Service unavailable",
            id="503-title",
        ),
        pytest.param(
            (502, "text/html", NGINX_502),
            "{url}" + PATH + " answered 502: 502 Bad Gateway",
            id="html-error-page",
        ),
        pytest.param(
            (404, "text/plain", b"\n\n  Not  Found\nat all\n"),
            "{url}" + PATH + " answered 404: Not Found",
            id="text-first-line",
        ),
        pytest.param(
            (500, "text/plain", b"x" * 5000),
            "{url}" + PATH + " answered 500: " + "x" * 197 + "...",
            id="long-line-cut",
        ),
        pytest.param((500, "text/plain", b""), "{url}" + PATH + " answered 500: (no body)", id="no-body"),
        pytest.param(
            (200, "text/html; charset=utf-8", b"<!doctype html>\n<html><body>Welcome</body></html>\n"),
            "{url}" + PATH + " answered text/html, not a report (application/yaml): "
            "is {url} a payorch service?",
            id="html-200",
        ),
        pytest.param(
            (200, "application/json", b"{}"),
            "{url}" + PATH + " answered application/json, not a report (application/yaml): "
            "is {url} a payorch service?",
            id="other-format",
        ),
    ],
)
def test_what_the_service_says_instead_of_a_report_is_one_line(
    fake: FakeService, answer: tuple[int, str, bytes], expected: str
) -> None:
    fake.answer = answer

    code, out, err = ask(fake.url)

    assert (code, out) == (1, "")
    assert err == f"payorch report: {expected.format(url=fake.url)}\n"


READS = "1 admin reads of a time window are running"
BUSY = (
    503,
    "application/problem+json",
    b'{"title": "Service unavailable", "detail": "1 admin reads of a time window are running"}',
    {"Retry-After": "2"},
)


def test_a_service_too_busy_to_read_is_asked_again_after_the_wait_it_gives(fake: FakeService) -> None:
    fake.first = [BUSY, BUSY]
    waits: list[float] = []

    text = ServiceSource(fake.url, ADMIN_KEY, sleep=waits.append).report(load_sample_config(), WINDOW, "yaml")

    assert text == "violations: []\n"
    assert waits == [2, 2]
    assert len(fake.asked) == 3
    assert len({path for path, _ in fake.asked}) == 1  # the same window each time


@pytest.mark.parametrize(
    ("busy", "asked", "said"),
    [
        # Still busy: a few tries, then what it said, and how long it was waited for.
        (
            [BUSY] * 10,
            4,
            f"{READS} (asked 4 times over 6 s, as its Retry-After said)",
        ),
        ([(*BUSY[:3], {"Retry-After": "60"})], 1, READS),  # too long
        ([(*BUSY[:3], {})], 1, READS),  # no wait given
        ([(*BUSY[:3], {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})], 1, READS),
    ],
)
def test_a_service_that_stays_busy_is_a_one_line_failure(
    fake: FakeService, busy: list[tuple[int, str, bytes, dict[str, str]]], asked: int, said: str
) -> None:
    fake.first = list(busy)
    waits: list[float] = []

    with pytest.raises(ReportError) as failed:
        ServiceSource(fake.url, ADMIN_KEY, sleep=waits.append).report(load_sample_config(), WINDOW, "yaml")

    assert str(failed.value) == f"{fake.url}{PATH} answered 503: {said}"
    assert (len(fake.asked), sum(waits)) == (asked, 2 * (asked - 1))


@pytest.fixture
def unanswered() -> Iterator[str]:
    """The URL of a host that takes no connection and refuses none (a firewall dropping it, a
    wrong address in a private network): a listening socket whose queue is full, so that the
    kernel drops what else comes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    queued = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(listener.getsockname())
        queued.append(client)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    for client in queued:
        client.close()
    listener.close()


def test_a_host_that_takes_no_connection_is_given_up_on_soon(unanswered: str) -> None:
    source = ServiceSource(unanswered, ADMIN_KEY, connect_timeout_s=0.5)

    with pytest.raises(ReportError) as failed:
        source.report(load_sample_config(), WINDOW, "yaml")

    # The connect limit, not the two minutes a long read is given, is what gave up:
    assert str(failed.value) == (
        f"cannot read {unanswered}{PATH}: no connection within 0.5 s: is the host right, and reachable "
        "from here?"
    )


def test_a_service_slow_to_answer_is_not_given_up_on_as_a_connection_is(fake: FakeService) -> None:
    fake.delay_s = 1.0

    text = ServiceSource(fake.url, ADMIN_KEY, connect_timeout_s=0.2).report(
        load_sample_config(), WINDOW, "yaml"
    )

    assert text == "violations: []\n"


@pytest.fixture
def tls_fake(fake: FakeService, tmp_path: Path) -> tuple[FakeService, Path]:
    """``fake`` behind TLS, with a certificate of its own (no CA this machine trusts), and the
    certificate's file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        reason = "making a certificate needs openssl (the Debian package openssl)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI must run every test: a missing tool is a red build
        pytest.skip(reason)
    key, certificate = tmp_path / "service.key", tmp_path / "service.crt"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(certificate), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    fake.server.socket = context.wrap_socket(fake.server.socket, server_side=True)
    fake.url = fake.url.replace("http://", "https://")
    return fake, certificate


def test_a_certificate_not_trusted_here_is_said_so_not_a_service_not_running(
    tls_fake: tuple[FakeService, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, certificate = tls_fake
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    with pytest.raises(ReportError) as failed:
        ServiceSource(fake.url, ADMIN_KEY).report(load_sample_config(), WINDOW, "yaml")

    said = str(failed.value)
    assert said.startswith(f"cannot read {fake.url}{PATH}: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert said.endswith(
        ": the service's certificate is not one this machine trusts: name the file of its CA in SSL_CERT_FILE"
    )
    assert "running" not in said
    # As told: the file named, the same service answers.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    assert (
        ServiceSource(fake.url, ADMIN_KEY).report(load_sample_config(), WINDOW, "yaml") == "violations: []\n"
    )


@pytest.mark.parametrize(
    ("status", "location", "said"),
    [
        (
            301,  # a proxy's http-to-https redirect
            f"https://payorch.example.com{PATH}?to=2026-11-02T00%3A00%3A00%2B00%3A00&format=yaml",
            f"a redirect to https://payorch.example.com{PATH}, not followed (the key would go there): "
            "give --api https://payorch.example.com",
        ),
        (
            308,
            f"/payorch{PATH}",
            "a redirect to {url}/payorch" + PATH + ", not followed (the key would go there): "
            "give --api {url}/payorch",
        ),
        (302, "/login?next=/v1", "a redirect to {url}/login (not followed)"),
    ],
)
def test_a_redirect_is_not_followed_and_names_the_api_to_give(
    fake: FakeService, status: int, location: str, said: str
) -> None:
    fake.first = [(status, "text/html", b"<html>Moved</html>", {"Location": location})]

    code, out, err = ask(fake.url)

    assert (code, out, len(fake.asked)) == (1, "", 1)
    assert err == f"payorch report: {fake.url}{PATH} answered {status}: {said.format(url=fake.url)}\n"


def test_a_url_that_is_no_url_is_one_line() -> None:
    # The command refuses it before asking (a usage error); the source, handed one anyway, says
    # so in one line too rather than raising httpx's own error.
    with pytest.raises(ReportError) as refused:
        ServiceSource("http://[::1", ADMIN_KEY).report(load_sample_config(), WINDOW, "json")

    assert str(refused.value).startswith("cannot read http://[::1/v1/reports/retrospective: ")
    assert "\n" not in str(refused.value)


# --- against a running payorch serve -------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("payorch-report"), config=SERVICE_CONFIG)
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()


def test_the_command_and_the_endpoint_give_the_same_report(service: Server) -> None:
    with httpx.Client(base_url=service.url, timeout=10) as http:
        paid = http.post(
            "/v1/payments",
            json={"amount": "$100.00", "currency": "usd"},  # corrected: one api/validation violation
            headers={**ACME, "Idempotency-Key": f"report-{uuid.uuid4()}"},
        )
        assert paid.status_code == 200, paid.text
        start = whole_second_after(datetime.now(UTC))  # after the violation
        received = (start + timedelta(minutes=1)).isoformat()
        for key, complaint in (
            # A category that names no contract: the payment's minor violation is all it maps by.
            (ACME, {"category": "other", "payment_id": paid.json()["payment_id"]}),
            (ACME, {"category": "mystery"}),  # the service's taxonomy maps it
            (GLOBEX, {"category": "timeout"}),
        ):
            filed = http.post("/v1/complaints", json=complaint | {"received_at": received}, headers=key)
            assert filed.status_code == 201, filed.text
        # Another merchant cannot name m_acme's request (the report's mapping would ignore it).
        others = {"category": "timeout", "request_id": paid.headers["request-id"]}
        refused = http.post("/v1/complaints", json=others, headers=GLOBEX)
        assert (refused.status_code, refused.json()["errors"][0]["code"]) == (422, "unknown_request")
        window = {"from": start.isoformat(), "to": (start + timedelta(minutes=5)).isoformat()}
        served = {
            output: http.get(PATH, params=window | {"format": output}, headers=ADMIN).text
            for output in ("json", "yaml")
        }

    window_args = ("--from", start.isoformat(), "--to", window["to"])
    as_json = ask(service.url, *window_args, "--format", "json")
    as_yaml = ask(service.url, *window_args)

    assert (as_json[0], as_json[2], as_yaml[0], as_yaml[2]) == (0, "", 0, "")
    document = json.loads(as_json[1])
    assert same_report(document, json.loads(served["json"]))
    assert same_report(yaml.safe_load(as_yaml[1]), yaml.safe_load(served["yaml"]))
    # The payment's contract though its violation is before the window; the service's taxonomy;
    # the other merchant's complaint by its category.
    assert rows(document) == [
        ("api/validation", 0, 1, True),
        ("observer/dropped", 0, 1, True),
        ("router/timeout", 0, 1, True),
    ]
    assert document["complaints"] == {"received": 3, "unmapped": 0}
