"""Admin reads beside payments: the analytics reads run in the process that takes the payments,
so what they cost must not come out of the event loop's time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Message

from engine.config import StoreConfig
from ingest.api.admin_reads import PIECE_BYTES, Pace, default_limit
from ingest.api.analytics_reads import ARROW_STREAM, BATCH_ROWS, json_chunks, json_rows
from ingest.store.reads import EVENTS, ReportTables, Window, window_reader
from ingest.store.writer import Write, Writer
from tests.ingest.store.test_analytics_api import ACME, ADMIN, client
from tests.ingest.store.test_durable_api import pay, running

_MOMENTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@given(
    st.lists(
        st.tuples(
            st.none() | _MOMENTS,
            st.none() | st.text(),
            st.none() | st.integers(-(2**63), 2**63 - 1),
            st.none() | st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_json_rows_are_what_orjson_makes_of_the_rows(rows: list[tuple[object, ...]]) -> None:
    columns = list(zip(*rows, strict=True))
    batch = pa.record_batch(
        [
            pa.array(columns[0], pa.timestamp("us", tz="UTC")),
            pa.array(columns[1], pa.string()),
            pa.array(columns[2], pa.int64()),
            pa.array(columns[3], pa.bool_()),
        ],
        names=["at", "text", "number", "flag"],
    )

    assert json_rows(batch) == orjson.dumps(batch.to_pylist(), option=orjson.OPT_UTC_Z)


def _events(rows: int) -> pa.RecordBatch:
    """``rows`` events shaped as the events read gives them: a payment's every column filled."""
    start = datetime(2026, 11, 12, tzinfo=UTC)
    values = {
        "seq": pa.array(range(rows), pa.int64()),
        "payment_id": [f"pay_{n:024x}" for n in range(rows)],
        "request_id": [f"req_{n:024x}" for n in range(rows)],
        "timestamp": [start + timedelta(microseconds=7 * n) for n in range(rows)],
        "latency_ms": pa.array(range(rows), pa.int64()),
    }
    columns = [
        pa.array(values[field.name], field.type)
        if field.name in values
        else pa.array(["x"] * rows, field.type)
        if pa.types.is_string(field.type)
        else pa.nulls(rows, field.type)
        for field in EVENTS.schema
    ]
    return pa.record_batch(columns, schema=EVENTS.schema)


async def test_a_large_batch_encodes_as_json_in_order_from_a_worker_thread() -> None:
    """A large batch (120,000 rows, written by Polars in pieces) encodes whole and in order.

    The reason for Polars, that it lets the interpreter's lock go while it writes, so that the
    event loop answering payments does not stand still behind a dashboard's read (one Python dict
    per row held it 0.45 s of a 0.75 s batch; a dashboard reading 500,000 events as JSON took the
    payments' median from 82 to 525 ms), is a speed figure: it was measured, not asserted here."""
    batch = _events(120_000)
    encode = json_chunks("events")
    body = await asyncio.to_thread(encode, batch) + encode(None)

    events = orjson.loads(body)["events"]
    assert [event["seq"] for event in events] == list(range(120_000))
    assert events[1]["timestamp"] == "2026-11-12T00:00:00.000007Z"


def _scope(path: str, query: str = "", spec_version: str = "2.3") -> dict[str, object]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", ADMIN["Authorization"].encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


class _StalledClient:
    """A client that reads the answer's first piece of body, then stops reading until ``leave``
    (then it goes away)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.reading = asyncio.Event()
        self._gone = asyncio.Event()

    async def send(self, message: Mapping[str, object]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]  # type: ignore[assignment]
        elif message["type"] == "http.response.body":
            self.reading.set()
            await asyncio.Event().wait()  # the send never completes: the client reads no more

    async def receive(self) -> Mapping[str, object]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    def leave(self) -> None:
        self._gone.set()


def _renderer(tables: ReportTables, window: Window, output: str) -> bytes:
    return b"window: {}\n"


async def test_reads_past_the_limit_are_503_with_retry_after_until_a_place_frees(tmp_path: Path) -> None:
    """Four dashboards polling a 14-day window took payments' median from 80-92 ms to 200-353 ms,
    the service using every core it could get: now at most `admin_reads` such reads run at once."""
    async with running(tmp_path, admin_reads=2, report_renderer=_renderer) as app, client(app) as http:
        await pay(app)
        gate = app.state.parts.admin_reads  # type: ignore[attr-defined]
        stalled = [_StalledClient(), _StalledClient()]
        answering = [
            asyncio.ensure_future(app(_scope(f"/v1/analytics/{name}"), reader.receive, reader.send))  # type: ignore[operator]
            for name, reader in zip(("events", "complaints"), stalled, strict=True)
        ]
        for reader in stalled:
            await asyncio.wait_for(reader.reading.wait(), 10)
        refused = [
            await http.get("/v1/analytics/violations", headers=ADMIN),
            await http.get("/v1/analytics/events", params={"format": "arrow"}, headers=ADMIN),
            await http.get("/v1/reports/retrospective", headers=ADMIN),
        ]
        payment = await pay(app)  # payments are not admin reads
        merchant = await http.get("/v1/analytics/events", headers=ACME)

        stalled[0].leave()  # one client goes away mid-stream: its place is free again
        await asyncio.wait_for(answering[0], 10)
        read = await http.get("/v1/analytics/events", headers=ADMIN)
        report = await http.get("/v1/reports/retrospective", headers=ADMIN)
        stalled[1].leave()
        await asyncio.wait_for(answering[1], 10)
        running_after = gate.running

    assert [reader.status for reader in stalled] == [200, 200]
    for answer in refused:
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["code"] == "service_unavailable"
        assert "2 admin reads of a time window are running" in answer.json()["detail"]
    assert payment.status == 200
    assert merchant.status_code == 403  # the key first: a merchant learns nothing of admin reads
    assert read.status_code == 200 and len(read.json()["events"]) == 14
    assert report.status_code == 200
    assert running_after == 0


class _SlowClient:
    """A client that takes each piece of the answer ``delay_s`` after it is sent, and never goes."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        await asyncio.sleep(self.delay_s)

    async def receive(self) -> Mapping[str, object]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    @property
    def whole(self) -> bool:
        return any(m["type"] == "http.response.body" and not m.get("more_body") for m in self.sent)


async def test_a_client_that_stops_reading_is_cut_short_after_the_idle_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that opened a read and stopped reading, connected still, held its place for as
    long as it stayed: every other admin read was 503 meanwhile. Now it loses its place once it
    has taken nothing for ``store.admin_read_idle_s``; its answer ends without its last chunk."""
    async with running(tmp_path, admin_reads=1, admin_read_idle_s=0.2) as app, client(app) as http:
        await pay(app)
        gate = app.state.parts.admin_reads  # type: ignore[attr-defined]
        stalled = _StalledClient()
        answering = asyncio.ensure_future(app(_scope("/v1/analytics/events"), stalled.receive, stalled.send))  # type: ignore[operator]
        await asyncio.wait_for(stalled.reading.wait(), 10)
        refused = await http.get("/v1/analytics/events", headers=ADMIN)
        await asyncio.wait_for(answering, 10)  # cut: the app has let go, the client still there
        running_after_cut = gate.running
        read = await http.get("/v1/analytics/events", params={"format": "arrow"}, headers=ADMIN)

    assert stalled.status == 200
    assert refused.status_code == 503  # while it held the only place
    assert running_after_cut == 0
    assert read.status_code == 200
    cut = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert cut == [
        "admin read /v1/analytics/events cut short: its client took none of the answer for 0.2 s "
        "(store.admin_read_idle_s); its place is free"
    ]


async def test_a_client_too_slow_for_the_whole_answer_is_cut_short_after_the_total_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client taking a piece every little while is never idle, yet can hold its place for hours
    over a large window: the answer is cut ``store.admin_read_max_s`` after the read began."""
    async with running(tmp_path, admin_read_idle_s=5, admin_read_max_s=1) as app:
        await pay(app)
        gate = app.state.parts.admin_reads  # type: ignore[attr-defined]
        slow = _SlowClient(delay_s=0.5)  # four sends: 2 s for the whole answer
        await asyncio.wait_for(app(_scope("/v1/analytics/events"), slow.receive, slow.send), 10)  # type: ignore[operator]
        running_after_cut = gate.running
        patient = _SlowClient(delay_s=0)
        await asyncio.wait_for(app(_scope("/v1/analytics/events"), patient.receive, patient.send), 10)  # type: ignore[operator]

    assert slow.sent[0]["status"] == 200
    assert not slow.whole  # cut: no last chunk, so the client cannot take it for the whole body
    assert running_after_cut == 0
    assert patient.whole
    body = b"".join(bytes(m.get("body", b"")) for m in patient.sent[1:])
    assert len(orjson.loads(body)["events"]) == 7
    assert any("within 1 s (store.admin_read_max_s)" in r.getMessage() for r in caplog.records)


async def test_an_answer_is_handed_on_in_pieces_each_given_the_idle_limit() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    paced = Pace(idle_s=1, max_s=1).paced(send)
    body = bytes(range(256)) * (PIECE_BYTES // 256 * 2 + 1)
    await paced({"type": "http.response.body", "body": body, "more_body": True})
    await paced({"type": "http.response.body", "body": b"", "more_body": False})

    assert [len(m["body"]) for m in sent] == [PIECE_BYTES, PIECE_BYTES, 256, 0]
    assert [m["more_body"] for m in sent] == [True, True, True, False]
    assert b"".join(bytes(m["body"]) for m in sent[:3]) == body


class _HeldRenderer:
    """A renderer that renders once told to, in the worker thread it is called in."""

    def __init__(self) -> None:
        self.rendering, self.go = threading.Event(), threading.Event()

    def __call__(self, tables: ReportTables, window: Window, output: str) -> bytes:
        self.rendering.set()
        assert self.go.wait(30)
        return b"window: {}\n"


async def test_a_cancelled_report_holds_its_place_until_its_thread_is_done(tmp_path: Path) -> None:
    """A report cancelled while its worker thread rendered (the server stopping, a caller's
    timeout) gave its place back at once, the thread still at work: a new read began beside it,
    more than ``admin_reads`` ran. Its place is now given back when the thread is done."""
    renderer = _HeldRenderer()
    async with running(tmp_path, admin_reads=1, report_renderer=renderer) as app, client(app) as http:
        gate = app.state.parts.admin_reads  # type: ignore[attr-defined]
        report = asyncio.ensure_future(http.get("/v1/reports/retrospective", headers=ADMIN))
        assert await asyncio.to_thread(renderer.rendering.wait, 10)
        report.cancel()
        with pytest.raises(asyncio.CancelledError):
            await report
        running_while_rendering = gate.running
        beside = await http.get("/v1/analytics/events", headers=ADMIN)
        renderer.go.set()
        for _ in range(500):
            if gate.running == 0:
                break
            await asyncio.sleep(0.01)
        after = await http.get("/v1/analytics/events", headers=ADMIN)

    assert running_while_rendering == 1
    assert beside.status_code == 503
    assert after.status_code == 200


async def test_the_config_file_sets_the_admin_reads_run_at_once(tmp_path: Path) -> None:
    """``payorch serve`` passes no ``Settings.admin_reads``: the config's ``store.admin_reads`` is
    the limit, else half the cores; an embedding program's setting wins over both."""
    limits = []
    for folder, store, embedded in (
        ("config", StoreConfig(admin_reads=3), None),
        ("default", None, None),
        ("embedded", StoreConfig(admin_reads=3), 5),
    ):
        async with running(tmp_path / folder, store, admin_reads=embedded) as app:
            limits.append(app.state.parts.admin_reads.limit)  # type: ignore[attr-defined]

    assert limits == [3, default_limit(), 5]


async def test_a_client_gone_before_the_body_began_frees_its_place(tmp_path: Path) -> None:
    """A client gone while its window was sorted leaves a body that never starts: what it would
    have read with (the cursor, the sort, its place) was kept by a generator that never ran."""
    async with running(tmp_path, admin_reads=1) as app, client(app) as http:
        await pay(app)
        gate = app.state.parts.admin_reads  # type: ignore[attr-defined]
        sent: list[Mapping[str, object]] = []

        async def gone() -> Mapping[str, object]:
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, object]) -> None:
            sent.append(message)
            await asyncio.sleep(0)  # the disconnect is seen meanwhile: the body is never begun

        for _ in range(3):
            await app(_scope("/v1/analytics/events"), gone, send)  # type: ignore[operator]
            assert gate.running == 0, [message["type"] for message in sent]
        read = await http.get("/v1/analytics/events", headers=ADMIN)

    assert not any(message["type"] == "http.response.body" and message.get("body") for message in sent)
    assert read.status_code == 200 and len(read.json()["events"]) == 7


def _duckdb_mb(writer: Writer) -> float:
    query = "SELECT sum(memory_usage_bytes) / 1e6 FROM duckdb_memory()"
    found: list[tuple[float]] = writer.read_now(lambda connection: connection.sql(query).fetchall())
    return found[0][0]


async def test_closing_a_window_reader_lets_duckdbs_sort_go_whoever_still_holds_it(tmp_path: Path) -> None:
    """A reader wrapped around DuckDB's kept the sort of the whole window (200 MB for 520,000
    events) until the wrapper was collected: an answer cut short by its client (gone before or
    while the body was sent) is held in a reference cycle, so until a full collection."""
    rows = 300_000

    def insert(connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute(
            "INSERT INTO events (seq, payment_id, request_id, merchant_id, event_type, ts, accepted, proto) "
            "SELECT range + 1, 'pay_' || range, 'req_' || range, 'm_acme', 'PlanBuilt', "
            "TIMESTAMPTZ '2025-03-10 12:00:00+00' + to_microseconds(range), true, ''::BLOB FROM range(?)",
            [rows],
        )

    async with running(tmp_path) as app:
        writer: Writer = app.state.parts.writer  # type: ignore[attr-defined]
        await writer.submit_and_wait(Write(None, apply=insert))
        before = _duckdb_mb(writer)
        cursor = writer.cursor()
        window = Window(datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC))
        reader = window_reader(cursor, EVENTS, window, BATCH_ROWS)
        assert reader.read_next_batch().num_rows == BATCH_ROWS
        reading = _duckdb_mb(writer)
        reader.close()
        cursor.close()
        closed = _duckdb_mb(writer)
        del reader  # held until here, as a cycle holds it

    assert reading - before > 20, (before, reading)  # the sort of the window
    assert closed - before < (reading - before) / 4, (before, reading, closed)


class _CountingRenderer:
    """A renderer that counts the reports it makes."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, tables: ReportTables, window: Window, output: str) -> bytes:
        self.made += 1
        return b"window: {}\n"


async def test_a_head_of_an_admin_read_reads_nothing(tmp_path: Path) -> None:
    """A HEAD of an analytics table or of the report was the GET with its body thrown away: it
    sorted the window, took an admin read's place and encoded (or rendered) it all. It now
    answers the headers alone, with every place taken, after the same checks as the GET."""
    renderer = _CountingRenderer()
    async with running(tmp_path, admin_reads=1, report_renderer=renderer) as app, client(app) as http:
        await pay(app)
        leave = app.state.parts.admin_reads.enter()  # type: ignore[attr-defined]  # every place taken
        heads = {
            (path, output): await http.head(path, params={"format": output}, headers=ADMIN)
            for path, outputs in (
                ("/v1/analytics/events", ("json", "arrow")),
                ("/v1/analytics/violations", ("json", "arrow")),
                ("/v1/analytics/complaints", ("json", "arrow")),
                ("/v1/reports/retrospective", ("yaml", "json")),
            )
            for output in outputs
        }
        get = await http.get("/v1/analytics/events", headers=ADMIN)
        merchant = await http.head("/v1/analytics/events", headers=ACME)
        backwards = await http.head("/v1/analytics/events?from=2026-11-02&to=2026-11-01", headers=ADMIN)
        leave()

    media_types = {"json": "application/json", "arrow": ARROW_STREAM, "yaml": "application/yaml"}
    for (path, output), head in heads.items():
        assert head.status_code == 200, (path, output, head.status_code)
        assert head.headers["content-type"].startswith(media_types[output])
        assert head.content == b""
        assert "content-length" not in head.headers  # the body's length is not known unmade
    assert renderer.made == 0
    assert get.status_code == 503  # a GET would have read: no place for it
    assert (merchant.status_code, backwards.status_code) == (403, 422)
