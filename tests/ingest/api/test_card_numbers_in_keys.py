"""An idempotency key that holds a card number: kept masked with a keyed tag, in answers, events
and the database; repeats still replay, keys that only mask alike stay apart, and the tag's
secret outlives a restart."""

from __future__ import annotations

import errno
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingest.api.idempotency import SECRET_FILE, KeyKeeper, body_fingerprint, load_or_create_secret
from ingest.errors import IngestError
from ingest.parsing import mask_card_numbers
from ingest.store.schema import FILE_NAME
from tests.ingest.api.test_app import ACME, JSON, Answer, body_of, call
from tests.ingest.parsing.support import check_digit
from tests.ingest.store.test_durable_api import charges, running
from tests.ingest.store.test_writer import as_version

PAN = "4242424242424242"


def same_mask_other_number() -> str:
    """Another Luhn-valid number with PAN's first six and last four digits."""
    for middle in range(1, 10**6):
        partial = f"424242{middle:06d}424"
        if check_digit(partial) == "2":
            return partial + "2"
    raise AssertionError("no such number")


OTHER = same_mask_other_number()


def test_a_key_without_a_card_number_is_kept_as_given() -> None:
    keeper = KeyKeeper(b"s" * 32)
    for key in ("order-1001", "4fd3c1a2-9b1e-4c55-8d3a-7e2f0b6c9a11", "12345678901"):
        assert keeper.kept(key) == (key, None)


def test_a_key_with_a_card_number_is_kept_masked_and_tagged() -> None:
    keeper = KeyKeeper(b"s" * 32)
    kept, note = keeper.kept(f"order {PAN}")
    again, _ = keeper.kept(f"order {PAN}")
    other, _ = keeper.kept(f"order {OTHER}")
    elsewhere, _ = KeyKeeper(b"t" * 32).kept(f"order {PAN}")

    masked, _, tag = kept.partition("#")
    assert masked == "order 424242******4242"
    assert len(tag) == 16 and int(tag, 16) >= 0
    assert PAN not in kept
    assert again == kept  # a repeat is kept the same way: it replays
    assert other != kept and other.startswith("order 424242******4242#")  # masked alike, kept apart
    assert elsewhere != kept  # the tag needs the secret
    assert note is not None
    assert (note.field, note.code, note.severity.value, note.raw) == (
        "idempotency_key",
        "card_number_masked",
        "warning",
        kept,
    )


def test_a_key_kept_masked_before_the_rule_narrowed_is_kept_masked_still() -> None:
    # A timestamp in milliseconds passing Luhn is no card number any more (metadata keeps it), but
    # a key holding one was stored masked: its repeat must be kept the same way to find it, or it
    # would charge again.
    keeper = KeyKeeper(b"s" * 32)
    key = "order-1764221251127"

    kept, note = keeper.kept(key)

    assert mask_card_numbers(key) == key
    assert kept.startswith("order-176422***1127#") and note is not None
    assert keeper.kept(key)[0] == kept
    assert keeper.identifier(key).startswith("order-176422xxx1127.")


def test_a_long_key_stays_within_255_characters() -> None:
    kept, _ = KeyKeeper(b"s" * 32).kept("x" * 239 + PAN)
    assert len(kept) == 255
    assert PAN not in kept


def test_the_secret_is_made_once_for_the_owner_only(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    second = load_or_create_secret(tmp_path)

    assert first == second and len(first) == 32
    assert stat.S_IMODE(os.stat(tmp_path / SECRET_FILE).st_mode) == 0o600
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(IngestError, match="is not a key secret"):
        load_or_create_secret(tmp_path)


def test_starts_at_once_all_take_the_one_secret_on_disk(tmp_path: Path) -> None:
    """Two ``payorch serve`` at once on a new folder: one failed ("cannot write the key secret ...
    No such file or directory"), or served with a secret another's rename then replaced on disk,
    so that after a restart its keys holding a card number no longer replayed (charged again)."""
    starts = 8
    for attempt in range(10):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        together = threading.Barrier(starts)

        def start(folder: Path = folder, together: threading.Barrier = together) -> bytes | str:
            together.wait()
            try:
                return load_or_create_secret(folder)
            except IngestError as error:
                return str(error)

        with ThreadPoolExecutor(starts) as pool:
            taken = list(pool.map(lambda _: start(), range(starts)))
        on_disk = (folder / SECRET_FILE).read_bytes()
        assert taken == [on_disk] * starts
        assert [path.name for path in folder.iterdir()] == [SECRET_FILE]  # no partial file left


def test_a_secret_there_first_is_never_replaced(tmp_path: Path) -> None:
    """Another start's secret lands between this start's look and its write: this one takes it."""
    theirs = b"t" * 32

    def another_start_first(partial: str, path: Path) -> None:
        (tmp_path / "theirs").write_bytes(theirs)
        os.link(tmp_path / "theirs", path)
        os.link(partial, path)

    assert load_or_create_secret(tmp_path, link=another_start_first) == theirs
    assert (tmp_path / SECRET_FILE).read_bytes() == theirs
    assert sorted(path.name for path in tmp_path.iterdir()) == [SECRET_FILE, "theirs"]


def test_the_secret_is_made_once_without_hard_links(tmp_path: Path) -> None:
    """A file system without hard links (FAT, some network mounts) still gets its secret, once."""

    def refused(partial: str, path: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", partial)

    first = load_or_create_secret(tmp_path, link=refused)
    assert load_or_create_secret(tmp_path, link=refused) == first == (tmp_path / SECRET_FILE).read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / SECRET_FILE).st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == [SECRET_FILE]


async def pay_with_key(app: object, key: str, body: bytes = b'{"amount": 1250}') -> Answer:
    return await call(
        app, "POST", "/v1/payments", [ACME, JSON, (b"idempotency-key", key.encode())], body_of(body)
    )


async def test_answers_events_and_the_database_hold_the_number_only_masked(tmp_path: Path) -> None:
    key, other_key = f"card {PAN}", f"card {OTHER}"
    async with running(tmp_path) as app:
        first = await pay_with_key(app, key)
        replay = await pay_with_key(app, key)
        other = await pay_with_key(app, other_key)
        refused = await pay_with_key(app, f"refused {PAN}", body=b'{"amount": "lots"}')
        shown = await call(app, "GET", f"/v1/payments/{first.json()['payment_id']}", [ACME], body_of(b""))

    issues: list[dict[str, Any]] = first.json()["validation_errors"]  # type: ignore[assignment]
    notes = [issue for issue in issues if issue["code"] == "card_number_masked"]
    assert len(notes) == 1 and notes[0]["raw"].startswith("card 424242******4242#")
    assert replay.headers["idempotent-replayed"] == "true" and replay.body == first.body
    assert other.status == 200 and other.json()["payment_id"] != first.json()["payment_id"]
    assert refused.status == 422
    errors: list[dict[str, Any]] = refused.json()["errors"]  # type: ignore[assignment]
    assert "card_number_masked" in {error["code"] for error in errors}
    events: list[dict[str, Any]] = shown.json()["events"]  # type: ignore[assignment]
    received = events[0]
    assert received["type"] == "PaymentReceived" and received["idempotency_key"] == notes[0]["raw"]
    for answer in (first, other, refused, shown):
        assert PAN not in answer.body.decode() and OTHER not in answer.body.decode()

    with duckdb.connect(str(tmp_path / FILE_NAME), read_only=True) as connection:
        for table in ("events", "payments", "idempotency_keys", "violations"):
            columns = [row[0] for row in connection.execute(f"DESCRIBE {table}").fetchall()]
            text = " || ' ' || ".join(f"coalesce(CAST({column} AS VARCHAR), '')" for column in columns)
            found = connection.execute(
                f"SELECT count(*) FROM {table} WHERE contains({text}, ?) OR contains({text}, ?)",  # noqa: S608
                [PAN, OTHER],
            ).fetchone()
            assert found == (0,), table


async def test_a_repeat_after_a_restart_still_replays(tmp_path: Path) -> None:
    key = f"card {PAN}"
    async with running(tmp_path) as app:
        first = await pay_with_key(app, key)
    async with running(tmp_path) as app:
        again = await pay_with_key(app, key)

    assert first.status == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.body == first.body


def _answered(connection: duckdb.DuckDBPyConnection, key: str, fingerprint: str, body: bytes) -> None:
    """An answered row of m_acme's ``key``, as a start reads it."""
    connection.execute(
        "INSERT INTO idempotency_keys VALUES "
        "(1, 'm_acme', ?, 'answered', ?, now(), 200, ?, 'application/json')",
        [key, fingerprint, body],
    )


def _stored_keys(data_dir: Path) -> list[str]:
    with duckdb.connect(str(data_dir / FILE_NAME), read_only=True) as connection:
        return [str(row[0]) for row in connection.execute("SELECT key FROM idempotency_keys").fetchall()]


#: What a payorch before the upgrade answered for a key, as stored.
STORED = b'{"payment_id": "pay_before", "status": "succeeded"}'


async def _repeat_after_upgrade(tmp_path: Path, version: int, key: str) -> Answer:
    """The repeat, after the upgrade, of ``key`` that a payorch of schema ``version`` answered
    (:data:`STORED`) and kept as given."""
    body = b'{"amount": 1250}'
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, version)
        _answered(connection, key, body_fingerprint(body, JSON[1].decode()), STORED)
    async with running(tmp_path) as app:
        return await pay_with_key(app, key, body)


async def test_a_key_a_payorch_of_schema_version_1_kept_unmasked_still_replays_after_the_upgrade(
    tmp_path: Path,
) -> None:
    # Version 1 kept keys as given, before they were kept masked.
    again = await _repeat_after_upgrade(tmp_path, 1, f"card {PAN}")

    assert again.status == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.body == STORED
    assert charges(tmp_path) == []  # a repeat never charges again
    keys = _stored_keys(tmp_path)
    assert len(keys) == 1 and keys[0].startswith("card 424242******4242#")


async def test_a_key_kept_with_its_tag_is_never_renamed_however_its_tag_reads(tmp_path: Path) -> None:
    # A tag is 16 hex digits: some hold a card number's worth of digits in a row. A key already
    # kept (renamed by an earlier start, or kept by a new database's first minutes) stays as it
    # is, else each start would mask its tag anew and its repeats would never find it.
    kept = "card 424242******4242#4539578763621486"
    async with running(tmp_path):
        pass  # a new database: every migration applied now
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        _answered(connection, kept, "fp", b"{}")
    async with running(tmp_path):
        pass
    assert _stored_keys(tmp_path) == [kept]


async def test_a_key_of_schema_version_1_ending_as_a_tag_is_still_masked_at_the_upgrade(
    tmp_path: Path,
) -> None:
    # Only a key kept already ends in # and 16 hex digits, but for a merchant's own key: a card
    # number before such an end was left as given in the database, for ever.
    again = await _repeat_after_upgrade(tmp_path, 1, f"{PAN}#0123456789abcdef")

    assert again.headers["idempotent-replayed"] == "true"
    assert charges(tmp_path) == []
    keys = _stored_keys(tmp_path)
    assert len(keys) == 1 and keys[0].startswith("424242******4242#"), keys


async def test_a_dotted_card_number_key_a_payorch_of_schema_version_6_kept_still_replays(
    tmp_path: Path,
) -> None:
    # Version 6 masked no card number written with dots: it kept such a key as given.
    again = await _repeat_after_upgrade(tmp_path, 6, "card 4242.4242.4242.4242")

    assert again.headers["idempotent-replayed"] == "true"
    assert again.body == STORED
    assert charges(tmp_path) == []  # a repeat never charges again
    keys = _stored_keys(tmp_path)
    assert len(keys) == 1 and keys[0].startswith("card 424242******4242#"), keys
