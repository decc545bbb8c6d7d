"""The complaint ids a store holds (ingest.store.complaint_ids): never a false negative, whatever
was stored before the start or added since (past a filter's capacity too), and rarely a false
positive (each one only a read)."""

from __future__ import annotations

from ingest.store.complaint_ids import MIN_CAPACITY, ComplaintIds


def test_every_id_stored_before_the_start_or_since_is_held_and_others_rarely_are() -> None:
    before = [f"zendesk/{n}" for n in range(1000)]
    ids = ComplaintIds(before)
    since = [f"cmp-{n}" for n in range(2 * MIN_CAPACITY + 10)]  # fills the first filter, then another
    for complaint_id in since:
        ids.add(complaint_id)
    assert all(complaint_id in ids for complaint_id in before + since)
    others = sum(f"never-{n}" in ids for n in range(10_000))
    assert others <= 10  # 1 in 10,000 each, and a few filters: expected about 3
