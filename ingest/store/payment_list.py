"""``GET /v1/payments`` over DuckDB: a merchant's payments, newest first, a page at a time.

The list is of every payment received, its ``PaymentReceived`` event the row it is found by: a
payment still running (or cut short by a crash) has no row in ``payments`` yet, and is listed
all the same, as its events so far show it (status ``processing``). Its place is that event's
time, then its id (:class:`~ingest.records.PaymentPlace`).

Measured on 500,000 payments (3M events, one thread): a page of 101 newest first, of every
merchant or of one, with or without a window or a cursor, 5-11 ms. DuckDB's top-N hands its
bound down to the scan, which then reads the one row group of events that can still beat it
(1 of 25); the page's results (the newest row of each, ``payments``' rule) and events are then
read by their ids, within the seq range the page's events lie in, 3 ms. A ``status`` filter
must know the status of every payment before the page is cut: it joins ``payments`` whole
(140-220 ms at that size; the window's ``from`` does not bound a result's row, which a clock
set back may date before it), so it is the one costly form.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from ingest.codec.event_json import event_json
from ingest.codec.events import event_from_bytes
from ingest.codec.result_json import PROCESSING, JsonObject, running_to_json
from ingest.records import PaymentPlace, PaymentQuery, StoredPayment

_RECEIVED = "event_type = 'PaymentReceived'"
#: The events that end a payment, as their JSON documents name them.
_ENDING = frozenset({"PaymentCompleted", "PaymentFailed"})


def event_document(proto: bytes) -> JsonObject:
    """A stored event's ``proto`` envelope as the JSON document a payment's ``events`` hold."""
    document: JsonObject = orjson.loads(event_json(event_from_bytes(proto)))
    return document


def running_payment(
    connection: duckdb.DuckDBPyConnection, payment_id: str, first_seq: int
) -> StoredPayment | None:
    """``payment_id`` as the list shows a payment with no result yet (:func:`running_to_json`),
    from its events so far, which begin at ``first_seq`` (its ``PaymentReceived``'s); ``None``
    when none is committed yet, or when they end it (its result, committed with its last event,
    is then there to read instead)."""
    rows = connection.execute(
        "SELECT proto FROM events WHERE seq >= ? AND payment_id = ? ORDER BY seq", [first_seq, payment_id]
    ).fetchall()
    events = [event_document(bytes(row[0])) for row in rows]
    if not events or events[0].get("type") != "PaymentReceived":
        return None
    if any(event.get("type") in _ENDING for event in events):
        return None
    document = running_to_json(events)
    return StoredPayment(str(document["merchant_id"]), document)


def running_merchant(connection: duckdb.DuckDBPyConnection, payment_id: str, first_seq: int) -> str | None:
    """The merchant of ``payment_id``, a payment with no result yet, from its ``PaymentReceived``
    (at ``first_seq``); ``None`` when it is not committed yet."""
    rows = connection.execute(
        "SELECT merchant_id FROM events WHERE seq = ? AND payment_id = ?", [first_seq, payment_id]
    ).fetchall()
    return str(rows[0][0]) if rows else None


def payment_place(
    connection: duckdb.DuckDBPyConnection, payment_id: str, merchant_id: str | None
) -> PaymentPlace | None:
    """Where ``payment_id`` (``merchant_id``'s, when given) stands in the list: a payment with a
    result is found through the ``payments_by_id`` index and its events' first seq; one without,
    by a scan of the received events."""
    rows = connection.execute(
        "SELECT first_seq FROM payments WHERE payment_id = ? AND first_seq IS NOT NULL", [payment_id]
    ).fetchall()
    seq = f"AND seq = {int(rows[0][0])}" if rows else ""
    found = connection.execute(
        f"SELECT ts FROM events WHERE {_RECEIVED} {seq} AND payment_id = $id "  # noqa: S608 - an int
        "AND ($merchant IS NULL OR merchant_id = $merchant)",
        {"id": payment_id, "merchant": merchant_id},
    ).fetchall()
    return PaymentPlace(found[0][0], payment_id) if found else None


def payments_page(connection: duckdb.DuckDBPyConnection, query: PaymentQuery) -> list[StoredPayment]:
    """The page ``query`` names (see the module text), each payment as ``GET /v1/payments/{id}``
    shows it, or as :func:`running_to_json` makes it when it has no result yet."""
    places = _places(connection, query)
    if not places:
        return []
    ids = [str(row[0]) for row in places]
    results: dict[str, tuple[Any, ...]] = {
        str(row[0]): row
        for row in connection.execute(
            "SELECT payment_id, arg_max(merchant_id, updated_at), arg_max(document, updated_at), "
            "arg_max_null(last_seq, updated_at) FROM payments WHERE list_contains($ids, payment_id) "
            "GROUP BY payment_id",
            {"ids": ids},
        ).fetchall()
    }
    # A payment's events begin at its PaymentReceived; they end at its result's last seq, or are
    # still coming (no result, or a result whose range was not known).
    ends: list[int | None] = [results[payment_id][3] if payment_id in results else None for payment_id in ids]
    known = [end for end in ends if end is not None]
    last = max(known) if len(known) == len(ends) else None
    events: dict[str, list[JsonObject]] = {payment_id: [] for payment_id in ids}
    for payment_id, proto in connection.execute(
        "SELECT payment_id, proto FROM events WHERE seq >= $first AND ($last IS NULL OR seq <= $last) "
        "AND list_contains($ids, payment_id) ORDER BY seq",
        {"first": min(row[2] for row in places), "last": last, "ids": ids},
    ).fetchall():
        events[str(payment_id)].append(event_document(bytes(proto)))
    page: list[StoredPayment] = []
    for payment_id in ids:
        result = results.get(payment_id)
        if result is None:
            document = running_to_json(events[payment_id])
            page.append(StoredPayment(str(document["merchant_id"]), document))
            continue
        document = orjson.loads(result[2])
        document["events"] = events[payment_id]
        page.append(StoredPayment(str(result[1]), document))
    return page


def _places(connection: duckdb.DuckDBPyConnection, query: PaymentQuery) -> list[tuple[Any, ...]]:
    """``(payment_id, received at, its PaymentReceived's seq)`` of the page, newest first."""
    conditions = [f"r.{_RECEIVED}"]
    parameters: dict[str, object] = {}
    for condition, name, value in (
        ("r.merchant_id = $merchant", "merchant", query.merchant_id),
        ("r.ts >= $since", "since", query.since),
        ("r.ts < $until", "until", query.until),
    ):
        if value is not None:
            conditions.append(condition)
            parameters[name] = value
    if query.after is not None:
        # VARCHARs compare by their bytes, as Python's str by code point (UTF-8 keeps that
        # order), so both stores list alike.
        conditions.append("(r.ts < $after_at OR r.ts = $after_at AND r.payment_id < $after_id)")
        parameters |= {"after_at": query.after.received_at, "after_id": query.after.payment_id}
    joined = ""
    if query.status is not None:
        mine = "WHERE merchant_id = $merchant" if query.merchant_id is not None else ""
        joined = (
            "LEFT JOIN (SELECT payment_id, arg_max(status, updated_at) AS status "  # noqa: S608 - constant
            f"FROM payments {mine} GROUP BY payment_id) AS p ON p.payment_id = r.payment_id"
        )
        conditions.append(f"coalesce(p.status, '{PROCESSING}') = $status")
        parameters["status"] = query.status
    rows: list[tuple[Any, ...]] = connection.execute(
        f"SELECT r.payment_id, r.ts, r.seq FROM events AS r {joined} "  # noqa: S608 - conditions are constants
        f"WHERE {' AND '.join(conditions)} ORDER BY r.ts DESC, r.payment_id DESC LIMIT {int(query.limit)}",
        parameters,
    ).fetchall()
    return rows
