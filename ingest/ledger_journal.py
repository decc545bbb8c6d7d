"""The simulated processors' own books, kept in a file beside the service's data.

A real processor's records outlive the service that called it; the simulated ones do the same by
appending every ledger change to ``simulated-ledger.jsonl`` as one JSON line, written with a
single ``os.write`` on an ``O_APPEND`` descriptor before the charge is answered. A killed service
leaves every line it wrote (the kernel holds them), so tests and crash checks read what was really
charged from outside the process.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from engine.ledger import Ledger, LedgerEntry
from engine.types import PaymentId, ProcessorId
from ingest.errors import IngestError

FILE_NAME = "simulated-ledger.jsonl"


class FileLedgerJournal:
    """Appends ``{"change": "charge"|"refund", ...entry}`` lines to one file."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, change: str, entry: LedgerEntry) -> None:
        if self._fd is None:
            return
        line = orjson.dumps(
            {
                "change": change,
                "processor_id": entry.processor_id,
                "idempotency_key": entry.idempotency_key,
                "payment_id": entry.payment_id,
                "step_index": entry.step_index,
                "amount_cents": entry.amount_cents,
                "currency": entry.currency,
                "reference": entry.reference,
                "refunded_cents": entry.refunded_cents,
            }
        )
        os.write(self._fd, line + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_journal(path: Path) -> list[dict[str, object]]:
    """Every change in the file, in order; a torn last line (a kill mid-write) is skipped."""
    if not path.exists():
        return []
    changes: list[dict[str, object]] = []
    for line in path.read_bytes().splitlines():
        try:
            changes.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return changes


def restore_ledger(path: Path, ledger: Ledger) -> int:
    """Give ``ledger`` back what the journal at ``path`` records (at start); returns the changes."""
    changes = read_journal(path)
    for change in changes:
        try:
            entry = LedgerEntry(
                processor_id=ProcessorId(str(change["processor_id"])),
                idempotency_key=str(change["idempotency_key"]),
                payment_id=PaymentId(str(change["payment_id"])),
                step_index=int(str(change["step_index"])),
                amount_cents=int(str(change["amount_cents"])),
                currency=str(change["currency"]),
                reference=str(change["reference"]),
                refunded=change["change"] == "refund",
                refunded_cents=int(str(change.get("refunded_cents", 0))),
            )
        except (KeyError, ValueError) as error:
            raise IngestError(f"{path}: a ledger line cannot be read back ({error})") from None
        ledger.restore(entry)
    return len(changes)
