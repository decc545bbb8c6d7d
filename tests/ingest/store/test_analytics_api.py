"""The analytics read endpoints in process, over the DuckDB store: the same rows as JSON and as an
Arrow IPC stream, the window's bounds, admin-only access, 422 for bad parameters, and 503 when
the process runs without the store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.ipc
import pytest

from ingest.api import analytics_reads
from ingest.api.analytics_reads import ARROW_STREAM, BATCH_ROWS, window_between
from ingest.api.problems import ApiProblem
from ingest.store.reads import EVENTS, Window, WindowError
from ingest.store.writer import Write
from tests.ingest.api.test_app import body_of, call
from tests.ingest.store.test_durable_api import SPLIT as SPLIT_BODY
from tests.ingest.store.test_durable_api import pay, running

ADMIN = {"Authorization": "Bearer adm_e2e_admin"}
ACME = {"Authorization": "Bearer sk_e2e_acme"}
ENDPOINTS = ("events", "violations", "complaints")
DAY = "2025-03-10T{:02}:00:00Z"


@asynccontextmanager
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def get(
    http: httpx.AsyncClient,
    name: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] = ADMIN,
) -> httpx.Response:
    return await http.get(f"/v1/analytics/{name}", params=params, headers=headers)


def arrow_of(response: httpx.Response) -> pa.Table:
    assert response.headers["content-type"] == ARROW_STREAM
    return pyarrow.ipc.open_stream(response.content).read_all()


async def violations_at(app: object, *hours: int) -> None:
    """Violations stamped at the given hours of 2025-03-10 UTC, written beside the service."""

    def insert(connection: object) -> None:
        for seq, hour in enumerate(hours, start=1):
            connection.execute(  # type: ignore[attr-defined]
                "INSERT INTO violations VALUES (?, 'router/timeout', 'major', 'payments-core', 'slow', "
                "'req_1', NULL, 'm_acme', ?)",
                [seq, datetime(2025, 3, 10, hour, tzinfo=UTC)],
            )

    await app.state.parts.writer.submit_and_wait(Write(None, apply=insert))  # type: ignore[attr-defined]


async def test_a_payments_events_come_back_in_order_as_json_and_as_arrow(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        paid = await pay(app)
        payment_id = paid.json()["payment_id"]
        as_json = await get(http, "events")
        as_arrow = await get(http, "events", {"format": "arrow"})

    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    rows = as_json.json()["events"]
    assert [row["event_type"] for row in rows if row["payment_id"] == payment_id] == [
        "PaymentReceived",
        "PlanBuilt",
        "StepAttempted",
        "StepSucceeded",
        "StepAttempted",
        "StepSucceeded",
        "PaymentCompleted",
    ]
    assert [row["seq"] for row in rows] == sorted(row["seq"] for row in rows)
    assert set(rows[0]) == set(EVENTS.schema.names)  # the queryable columns, no document or proto
    assert all(row["timestamp"].endswith("Z") for row in rows)
    table = arrow_of(as_arrow)
    assert table.schema == EVENTS.schema
    assert table.column("seq").to_pylist() == [row["seq"] for row in rows]
    assert table.column("event_type").to_pylist() == [row["event_type"] for row in rows]
    stamps = [stamp.isoformat().replace("+00:00", "Z") for stamp in table.column("timestamp").to_pylist()]
    assert stamps == [row["timestamp"] for row in rows]


async def test_a_declined_cards_reason_is_a_column_of_its_step_failed_events(tmp_path: Path) -> None:
    insufficient_funds = (
        b'{"amount": 1250, "method": "card", "metadata": {"card_number": "4000000000009995"}}'
    )
    async with running(tmp_path) as app, client(app) as http:
        declined = await pay(app, body=insufficient_funds)
        paid = await pay(app)
        as_json = await get(http, "events")
        as_arrow = await get(http, "events", {"format": "arrow"})

    steps: list[dict[str, object]] = declined.json()["step_results"]  # type: ignore[assignment]
    assert steps[0]["decline_code"] == "insufficient_funds"
    reasons = {
        (row["payment_id"], row["event_type"], row["decline_code"])
        for row in as_json.json()["events"]
        if row["event_type"] == "StepFailed" or row["decline_code"] is not None
    }
    assert reasons == {(declined.json()["payment_id"], "StepFailed", "insufficient_funds")}
    table = arrow_of(as_arrow)
    columns = (table.column(name).to_pylist() for name in ("payment_id", "event_type", "decline_code"))
    rows = set(zip(*columns, strict=True))
    assert {row for row in rows if row[1] == "StepFailed" or row[2] is not None} == reasons
    assert (paid.json()["payment_id"], "StepSucceeded", None) in rows


async def test_an_amount_comes_with_its_currency_and_method_and_each_payment_with_how_it_ended(
    tmp_path: Path,
) -> None:
    """USD, EUR and JPY amounts were one column: summed together, and no method to group by."""
    globex = (b"authorization", b"Bearer sk_e2e_globex")
    async with running(tmp_path) as app, client(app) as http:
        bodies = (
            SPLIT_BODY,
            b'{"amount": "1500", "currency": "JPY", "method": "card"}',
            b'{"amount": -5, "currency": "USD", "method": "card"}',
        )
        answers = [await pay(app, body=body) for body in bodies]
        headers = [globex, (b"content-type", b"application/json")]
        answers.append(await call(app, "POST", "/v1/payments", headers, body_of(b'{"amount": 4000}')))
        as_json = (await get(http, "events")).json()["events"]
        as_arrow = arrow_of(await get(http, "events", {"format": "arrow"})).to_pylist()

    assert [answer.status for answer in answers] == [200, 200, 422, 200]
    split, yen, refused, euro = (answer.json() for answer in answers)
    steps = {
        (answer["payment_id"], step["step_index"]): step["method"]
        for answer in (split, yen, euro)
        for step in answer["step_results"]  # type: ignore[attr-defined]
    }
    for rows in (as_json, as_arrow):
        charged: dict[str, int] = {}
        for row in rows:
            if row["event_type"] == "StepSucceeded":
                charged[row["currency"]] = charged.get(row["currency"], 0) + row["amount_cents"]
            if row["step_index"] is not None:
                assert row["method"] == steps[row["payment_id"], row["step_index"]]
        assert charged == {"USD": 10_000, "JPY": 1500, "EUR": 4000}
        ended = {row["payment_id"]: row["status"] for row in rows if row["status"] is not None}
        assert ended == {
            split["payment_id"]: "succeeded",
            yen["payment_id"]: "succeeded",
            refused["payment_id"]: "rejected",
            euro["payment_id"]: "succeeded",
        }
        received = {
            row["payment_id"]: row["accepted"] for row in rows if row["event_type"] == "PaymentReceived"
        }
        assert received[refused["payment_id"]] is False and received[split["payment_id"]] is True
        planned = [row["amount_cents"] for row in rows if row["event_type"] == "PlanBuilt"]
        assert planned == [10_000, 1500, 4000]
    assert set(steps.values()) == {"apple_pay", "card"}


async def test_a_plan_builts_amount_is_the_payments_total(tmp_path: Path) -> None:
    """A PlanBuilt's amount_cents was NULL, though its event holds its total (total_amount_cents)."""
    async with running(tmp_path) as app, client(app) as http:
        paid = await pay(app)
        as_json = (await get(http, "events")).json()["events"]
        as_arrow = arrow_of(await get(http, "events", {"format": "arrow"})).to_pylist()

    assert paid.json()["total_amount"] == 10_000
    for rows in (as_json, as_arrow):
        assert [row["amount_cents"] for row in rows if row["event_type"] == "PlanBuilt"] == [10_000]


async def test_the_window_takes_from_and_leaves_out_to(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        await violations_at(app, 9, 10, 11, 12)
        window = {"from": DAY.format(10), "to": DAY.format(12)}
        as_json = await get(http, "violations", window)
        as_arrow = await get(http, "violations", {**window, "format": "arrow"})
        naive = await get(http, "violations", {"from": "2025-03-10T10:00:00", "to": "2025-03-10T12:00:00"})
        offset = await get(http, "violations", {"from": "2025-03-10T11:00:00+01:00", "to": DAY.format(11)})
        default = await get(http, "violations")  # the last 14 days: not March 2025

    stamps = [row["timestamp"] for row in as_json.json()["violations"]]
    assert stamps == [DAY.format(10), DAY.format(11)]
    assert arrow_of(as_arrow).column("seq").to_pylist() == [2, 3]
    assert naive.json() == as_json.json()  # a naive datetime is UTC
    assert [row["seq"] for row in offset.json()["violations"]] == [2]
    assert default.json() == {"violations": []}


async def test_complaints_are_read_by_when_they_were_received(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        for number, hour in ((1, 8), (2, 13)):
            complaint = {
                "complaint_id": f"cmp_{number}",
                "category": "timeout",
                "received_at": DAY.format(hour),
            }
            filed = await http.post("/v1/complaints", json=complaint, headers=ACME)
            assert filed.status_code == 201
        morning = await get(http, "complaints", {"from": DAY.format(0), "to": DAY.format(12)})
        day = await get(http, "complaints", {"from": DAY.format(0), "to": "2025-03-11", "format": "arrow"})

    assert morning.json() == {
        "complaints": [
            {
                "complaint_id": "cmp_1",
                "merchant_id": "m_acme",
                "received_at": DAY.format(8),
                "category": "timeout",
                "description": "",
                "payment_id": None,
                "request_id": None,
                "contract_id": None,
            }
        ]
    }
    assert arrow_of(day).column("complaint_id").to_pylist() == ["cmp_1", "cmp_2"]


async def test_an_empty_window_is_an_empty_list_and_an_arrow_stream_with_the_columns(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        answers = {name: await get(http, name, {"format": "arrow"}) for name in ENDPOINTS}
        listed = await get(http, "complaints")

    assert listed.json() == {"complaints": []}
    for name, answer in answers.items():
        table = arrow_of(answer)
        assert table.num_rows == 0, name
        assert "timestamp" in table.schema.names or "received_at" in table.schema.names


async def test_only_an_admin_key_reads(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        anonymous = [await get(http, name, headers={}) for name in ENDPOINTS]
        merchant = [await get(http, name, headers=ACME) for name in ENDPOINTS]

    assert [answer.status_code for answer in anonymous] == [401, 401, 401]
    assert [answer.status_code for answer in merchant] == [403, 403, 403]
    assert all(a.headers["content-type"] == "application/problem+json" for a in anonymous + merchant)
    assert merchant[0].json()["code"] == "forbidden"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": DAY.format(12), "to": DAY.format(10)}, "from"),
        ({"from": "2999-01-01T00:00:00Z"}, "from"),  # after `to`, which defaults to now
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"format": "csv"}, "format"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    tmp_path: Path, params: dict[str, str], field: str
) -> None:
    async with running(tmp_path) as app, client(app) as http:
        answers = [await get(http, name, params) for name in ENDPOINTS]

    for answer in answers:
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in answer.json()["errors"]] == [field]


async def test_without_the_store_the_reads_are_503(tmp_path: Path) -> None:
    async with running(tmp_path, durable=False) as app, client(app) as http:
        answers = [await get(http, name) for name in ENDPOINTS]
        heads = [await http.head(f"/v1/analytics/{name}", headers=ADMIN) for name in ENDPOINTS]

    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["code"] == "service_unavailable"
        assert "without the event store" in answer.json()["detail"]
        # Every 503 says when to retry (these had no Retry-After): not before the process is
        # started otherwise, so not every second.
        assert answer.headers["retry-after"] == "3600"
    assert [(head.status_code, head.headers.get("retry-after")) for head in heads] == [(503, "3600")] * 3


async def test_the_openapi_document_declares_json_and_arrow(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        document = (await http.get("/openapi.json")).json()

    for name in ENDPOINTS:
        operation = document["paths"][f"/v1/analytics/{name}"]["get"]
        assert set(operation["responses"]["200"]["content"]) == {"application/json", ARROW_STREAM}
        assert {"401", "403", "422", "503"} <= set(operation["responses"])
        assert {parameter["name"] for parameter in operation["parameters"]} == {"from", "to", "format"}


def test_the_default_window_is_the_last_14_days_and_naive_means_utc() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)

    assert window_between(None, None, now) == Window(now - timedelta(days=14), now)
    plus_one = timezone(timedelta(hours=1))
    window = window_between(datetime(2026, 11, 1), datetime(2026, 11, 2, 1, tzinfo=plus_one), now)
    assert window == Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    with pytest.raises(ApiProblem):
        window_between(now, now - timedelta(seconds=1), now)
    with pytest.raises(WindowError):
        Window(datetime(2026, 11, 1), now)  # naive: refused below the API too


async def test_a_read_left_unfinished_on_the_shared_connection_does_not_break_them(tmp_path: Path) -> None:
    async with running(tmp_path) as app, client(app) as http:
        writer = app.state.parts.writer  # type: ignore[attr-defined]
        # DuckDB 2.x refuses new work on a connection whose last result was not read to the end.
        writer.read_now(lambda connection: connection.execute("SELECT * FROM range(10)").fetchone())
        answers = [await get(http, name) for name in ENDPOINTS]

    assert [answer.status_code for answer in answers] == [200, 200, 200]


async def _body_pieces(app: object, query: str) -> list[bytes]:
    """The body of ``GET /v1/analytics/events?{query}`` as the app sends it, piece by piece."""
    pieces: list[bytes] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/analytics/events",
        "raw_path": b"/v1/analytics/events",
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", ADMIN["Authorization"].encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            pieces.append(message["body"])  # type: ignore[arg-type]

    await app(scope, body_of(b""), send)  # type: ignore[operator]
    return pieces


async def test_a_large_window_is_streamed_in_batches_not_built_whole(tmp_path: Path) -> None:
    """A 14-day window may hold millions of events: it was read whole into one table, then one
    Python dict per row (gigabytes in the server). It is sent a batch of rows at a time."""
    rows = BATCH_ROWS * 2 + 5

    def insert(connection: object) -> None:
        connection.execute(  # type: ignore[attr-defined]
            "INSERT INTO events (seq, payment_id, request_id, merchant_id, event_type, ts, step_index, "
            "processor_id, amount_cents, error_code, accepted, proto, decline_code) "
            "SELECT range + 1, 'pay_' || range, 'req_1', 'm_acme', 'PlanBuilt', "
            "TIMESTAMPTZ '2025-03-10 12:00:00+00', NULL, NULL, NULL, NULL, NULL, ''::BLOB, NULL "
            "FROM range(?)",
            [rows],
        )

    async with running(tmp_path) as app:
        await app.state.parts.writer.submit_and_wait(Write(None, apply=insert))  # type: ignore[attr-defined]
        window = "from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z"
        as_json = await _body_pieces(app, window)
        as_arrow = await _body_pieces(app, window + "&format=arrow")

    assert len(as_json) > 2 and len(as_arrow) > 2  # one piece per batch, and the ends
    events = orjson.loads(b"".join(as_json))["events"]
    assert [event["seq"] for event in events] == list(range(1, rows + 1))
    assert events[0]["timestamp"] == "2025-03-10T12:00:00Z"
    table = pyarrow.ipc.open_stream(b"".join(as_arrow)).read_all()
    assert table.schema == EVENTS.schema
    assert table.column("seq").to_pylist() == list(range(1, rows + 1))


class _SlowReader:
    """A batch reader whose second batch is read only once ``go`` is set; notes when it is closed
    and whether that was while a read was still going."""

    def __init__(self) -> None:
        self.reading, self.go = threading.Event(), threading.Event()
        self.reads = 0
        self.closed_while_reading: bool | None = None
        self._busy = False

    def read_next_batch(self) -> pa.RecordBatch:
        self.reads += 1
        if self.reads == 1:
            return pa.record_batch({"n": [1]})
        self._busy = True
        self.reading.set()
        self.go.wait(10)
        self._busy = False
        raise StopIteration

    def close(self) -> None:
        self.closed_while_reading = self._busy


class _Cursor:
    closed = False

    def close(self) -> None:
        self.closed = True


async def test_a_client_gone_mid_read_closes_the_cursor_only_once_the_read_is_done() -> None:
    # A client that goes away cancels the body while a worker thread reads the next batch from
    # the cursor: closing the reader and the cursor under that thread would pull them from a
    # thread still using them.
    reader, cursor = _SlowReader(), _Cursor()
    held = analytics_reads.Held(cursor, reader, lambda: None)  # type: ignore[arg-type]
    body = analytics_reads._stream(held, analytics_reads.json_chunks("rows"))
    assert await anext(body) == b'{"rows":[{"n":1}'
    sending = asyncio.ensure_future(anext(body))
    assert await asyncio.to_thread(reader.reading.wait, 10)

    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    await body.aclose()
    assert (reader.closed_while_reading, cursor.closed) == (None, False)  # not while it reads

    reader.go.set()
    for _ in range(200):
        if cursor.closed:
            break
        await asyncio.sleep(0.01)
    assert (reader.closed_while_reading, cursor.closed) == (False, True)


class _OneBatchReader:
    closed = False

    def __init__(self) -> None:
        self.batches = [pa.record_batch({"n": [1]})]

    def read_next_batch(self) -> pa.RecordBatch:
        if not self.batches:
            raise StopIteration
        return self.batches.pop()

    def close(self) -> None:
        self.closed = True


async def test_a_client_that_stops_reading_and_goes_away_closes_the_cursor_at_once() -> None:
    # The answer is cancelled while it waits to send a batch (outside the body's generator): the
    # generator, still referenced, used to keep its reader and cursor (DuckDB's sort of the whole
    # window) open until a full collection found it.
    reader, cursor = _OneBatchReader(), _Cursor()
    held = analytics_reads.Held(cursor, reader, lambda: None)  # type: ignore[arg-type]
    body = analytics_reads._stream(held, analytics_reads.json_chunks("rows"))
    response = analytics_reads.ClosingStream(body, held, media_type="application/json")
    sending_body = asyncio.Event()

    async def send(message: Mapping[str, object]) -> None:
        if message["type"] == "http.response.body":
            sending_body.set()
            await asyncio.Event().wait()  # the client reads no more: the send never completes

    async def receive() -> Mapping[str, object]:
        await sending_body.wait()
        return {"type": "http.disconnect"}

    await response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send)  # type: ignore[arg-type]
    assert (reader.closed, cursor.closed) == (True, True)
