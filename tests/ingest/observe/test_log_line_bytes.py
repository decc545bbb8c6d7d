"""The log writer's shortcuts (a header rendered once per event name and level and cut around the
ids, the event's JSON spliced after it) write, batch after batch, the very bytes that rendering
every line whole through the structlog chain gives."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import DomainEvent, PaymentCompleted, PaymentReceived
from engine.types import MerchantId, PaymentId, RequestId
from ingest.codec.event_json import event_fields, event_json
from ingest.observe.logs import _SPLICED, Entry, LineWriter, _ids, _splices
from tests.strategies import EVENT_STRATEGIES, events

TAGS = {"service.name": "payorch", "service.version": "1.2.3", "deployment.environment.name": "test"}

#: A few ids drawn again and again, so that a batch repeats a trace and a span (also a span id
#: under two traces), beside ids drawn anew and the null ones of a line outside a span.
_trace_ids = st.one_of(st.just(0), st.sampled_from([1, 0xAB, 2**128 - 1]), st.integers(1, 2**128 - 1))
_span_ids = st.one_of(st.just(0), st.sampled_from([1, 0xCD, 2**64 - 1]), st.integers(1, 2**64 - 1))


@st.composite
def _entries(draw: st.DrawFn) -> Entry:
    event: DomainEvent = draw(events)
    level = draw(st.sampled_from(["info", "info", "warning", "error"]))
    name = draw(st.sampled_from([event.event_type, event.event_type, "payment event"]))
    return (0.0, level, name, event, event.request_id, draw(_trace_ids), draw(_span_ids))


def _whole(writer: LineWriter, entry: Entry) -> bytes:
    """The line as the chain renders it whole, without any of the writer's shortcuts."""
    _when, level, name, event, _request, trace_id, span_id = entry
    assert isinstance(event, DomainEvent)
    header = _ids(name, level, trace_id, span_id)
    if type(event) in _SPLICED or _splices(event):
        return writer._render(level, header)[:-1] + b"," + event_json(event)[1:] + b"\n"
    header.update(event_fields(event))
    header["type"] = event.event_type
    return writer._render(level, header) + b"\n"


@settings(max_examples=50, deadline=None)
@given(batches=st.lists(st.lists(_entries(), min_size=1, max_size=60), min_size=1, max_size=3))
def test_batches_of_lines_are_byte_for_byte_what_rendering_each_line_whole_gives(
    batches: list[list[Entry]],
) -> None:
    out = io.BytesIO()
    writer = LineWriter(out, TAGS)

    for batch in batches:
        writer.write(batch)

    reference = LineWriter(io.BytesIO(), TAGS)
    assert out.getvalue() == b"".join(_whole(reference, entry) for batch in batches for entry in batch)


def test_each_line_of_a_batch_keeps_its_own_trace_and_span_ids() -> None:
    """The writer formats a trace id once a batch: lines of two traces, interleaved, one span id
    under both, each keep their own ids."""
    event = PaymentCompleted(
        payment_id=PaymentId("pay_1"),
        request_id=RequestId("req_1"),
        merchant_id=MerchantId("m_1"),
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        total_amount=100,
        total_processed=100,
    )
    ids = [(0xA1, 0xB1), (0xA2, 0xB1), (0xA1, 0xB2), (0xA2, 0xB2), (0xA1, 0xB1)]
    out = io.BytesIO()
    LineWriter(out, TAGS).write([(0.0, "info", "PaymentCompleted", event, "req_1", t, s) for t, s in ids])
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["trace_id"], line["span_id"]) for line in lines] == [
        (f"{trace_id:032x}", f"{span_id:016x}") for trace_id, span_id in ids
    ]


def test_a_writer_refills_one_document_a_kind_rather_than_building_one_a_line() -> None:
    """Building a dict for each line and freeing it cost about 850 instructions more than setting
    the values of one kept for the kind (seven lines a payment, on the drain's thread)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first, second = (
        PaymentCompleted(
            payment_id=PaymentId(f"pay_{n}"),
            request_id=RequestId(f"req_{n}"),
            merchant_id=MerchantId("m_1"),
            timestamp=at,
            total_amount=100 * n,
            total_processed=100 * n,
        )
        for n in (1, 2)
    )
    out = io.BytesIO()
    writer = LineWriter(out, TAGS)
    document = writer._documents[PaymentCompleted]

    assert document(first) is document(second)
    writer.write([(0.0, "info", "PaymentCompleted", event, None, 1, 2) for event in (first, second)])
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["payment_id"], line["total_amount"]) for line in lines] == [("pay_1", 100), ("pay_2", 200)]


_CARD_KEY = "order 4242424242424242"  # a key holding a card number: its line goes field by field, masked


@settings(max_examples=30, deadline=None)
@given(
    stored=st.fixed_dictionaries(dict(EVENT_STRATEGIES)),
    key=st.sampled_from([None, "k-1", "a-key-longer-than-a-card-number", _CARD_KEY]),
    zone=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
    ids=st.sampled_from([(0, 0), (0xAB, 0), (0, 0xCD), (2**128 - 1, 2**64 - 1)]),
)
def test_every_kind_is_written_as_rendered_whole_keys_masked_or_not_in_any_zone_with_or_without_ids(
    stored: dict[type[DomainEvent], DomainEvent],
    key: str | None,
    zone: timezone,
    ids: tuple[int, int],
) -> None:
    """A line of every event kind in one batch, each kind refilling its document, against the
    chain's whole rendering: PaymentReceived with no key, short and long keys and one holding a
    card number, every time in UTC and two other zones, lines with both ids, one or none."""
    batch: list[Entry] = []
    for event in stored.values():
        moved = dataclasses.replace(event, timestamp=event.timestamp.astimezone(zone))
        if isinstance(moved, PaymentReceived):
            moved = dataclasses.replace(moved, idempotency_key=key)
        batch += [(0.0, "info", moved.event_type, moved, moved.request_id, *ids)] * 2
    out = io.BytesIO()

    LineWriter(out, TAGS).write(batch)

    reference = LineWriter(io.BytesIO(), TAGS)
    assert out.getvalue() == b"".join(_whole(reference, entry) for entry in batch)
    if key == _CARD_KEY:
        assert b"4242424242424242" not in out.getvalue() and b"424242******4242" in out.getvalue()
