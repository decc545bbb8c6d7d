"""The JSON bytes payorch keeps (a payment's result document, kept for replays and reads) take the
memory of their length, not that of the buffer orjson wrote them in."""

from __future__ import annotations

import tracemalloc

import orjson

from ingest.api.encoding import dumps

#: About the size of a two-step payment's result document.
DOCUMENT = {
    "payment_id": "pay_" + "0" * 24,
    "status": "succeeded",
    "step_results": [{"reference": "sim_card_" + "f" * 16, "note": "x" * 300} for _ in range(2)],
}
KEPT = 200


def _bytes_held_each(encode: object) -> float:
    assert callable(encode)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [encode(DOCUMENT) for _ in range(KEPT)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(document == orjson.dumps(DOCUMENT) for document in kept)
    return held / KEPT


def test_a_kept_document_holds_about_its_own_length() -> None:
    length = len(orjson.dumps(DOCUMENT))
    assert 700 < length < 1000
    # The list's own slot and the bytes object's header are the rest.
    assert _bytes_held_each(dumps) < length + 100


def test_orjson_alone_holds_a_whole_buffer_for_each_document() -> None:
    """Why dumps copies: if orjson ever gives bytes of their own length, the copy can go."""
    assert _bytes_held_each(orjson.dumps) > 3000
