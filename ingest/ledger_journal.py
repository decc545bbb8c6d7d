"""The simulated processors' own books, kept in a file beside the service's data.

A real processor's records outlive the service that called it; the simulated ones do the same by
appending every ledger change to ``simulated-ledger.jsonl`` as one JSON line, written with a
single ``os.write`` on an ``O_APPEND`` descriptor before the charge is answered. A killed service
leaves every line it wrote (the kernel holds them), so tests and crash checks read what was really
charged from outside the process.

The file lives in the service's data folder, on its disk: a write the disk refuses (full,
read-only, failing) is the service's disk failing, not the simulated processor. The journal then
stops, says so once through ``on_failure`` (``payorch serve`` stops as for a refused commit), and
raises nothing into the charge: raised, it was a ``processor/panic`` of the processor, counted
against its circuit, while the service went on writing books it could no longer keep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import orjson

from engine.ledger import Ledger, LedgerEntry
from engine.types import PaymentId, ProcessorId
from ingest.errors import IngestError

FILE_NAME = "simulated-ledger.jsonl"


class FileLedgerJournal:
    """Appends ``{"change": "charge"|"refund", ...entry}`` lines to one file."""

    __slots__ = ("_fd", "on_failure", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if _torn(path):
            # A line cut short (a full disk, a kill mid-write) is ended first: the next line
            # would be read as its end, and both skipped.
            os.write(self._fd, b"\n")
        #: Told once, with one line naming the file and the disk's reason, when a write fails.
        self.on_failure: Callable[[str], None] | None = None

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
        data = line + b"\n"
        try:
            if os.write(self._fd, data) != len(data):  # the disk took part of it: full
                raise OSError(28, "No space left on device (the line was written in part)")
        except OSError as error:
            self.close()  # books with a line missing would be wrong from here on: none are kept
            if self.on_failure is not None:
                self.on_failure(
                    f"the simulated processors' ledger {self.path} could not be written ({error.strerror})"
                )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _torn(path: Path) -> bool:
    """Whether the file's last line has no newline."""
    with path.open("rb") as books:
        if books.seek(0, os.SEEK_END) == 0:
            return False
        books.seek(-1, os.SEEK_END)
        return books.read(1) != b"\n"


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
