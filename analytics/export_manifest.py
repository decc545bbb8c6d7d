"""The check of an export's manifest (``_payorch_export.json``, written by ``payorch export``).

The manifest says which ``export_version`` the export holds. This payorch reads
:data:`EXPORT_VERSION` and the exports before manifests (which have none: their files' columns
are checked as before). An export of a newer version is refused in one line naming the payorch
that wrote it, before a file is read: its columns would otherwise read as a damaged export's. A
manifest that is not one (not JSON, no ``format``, no version, no rows per input) is an export
damaged. The rows it counts per input are what a reader checks its files against: an export cut
short, or partly replaced by another, is then named as such rather than read as fewer rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from analytics.errors import UnreadableExportError

#: As ``ingest.store.export_manifest`` names them (the layers keep the two packages apart).
MANIFEST = "_payorch_export.json"
FORMAT = "payorch-export"
#: The newest export version this payorch reads.
EXPORT_VERSION = 1


def check_manifest(folder: Path, shown: Path) -> dict[str, int] | None:
    """The rows the manifest of the export in ``folder`` (named ``shown`` in messages) says each
    input holds, or ``None`` for an export without one (of a payorch before manifests). Raise
    :class:`~analytics.errors.UnreadableExportError` for a manifest of a version this payorch does
    not read, or one that is not a manifest."""
    path = folder / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None  # an export of a payorch before manifests
    except OSError as error:
        raise UnreadableExportError(f"cannot read {shown / MANIFEST}: {error.strerror}") from None
    document = _document(data, shown)
    written = document.get("export_version")
    if document.get("format") != FORMAT or not isinstance(written, int) or isinstance(written, bool):
        raise _damaged(shown, "no format 'payorch-export' with an integer export_version")
    if written < 1:
        raise _damaged(shown, f"export_version {written}")
    if written > EXPORT_VERSION:
        by = document.get("payorch_version")
        who = f"payorch {by}" if isinstance(by, str) and by else "a newer payorch"
        raise UnreadableExportError(
            f"{shown} was written by {who} (export version {written}); this payorch reads export "
            f"versions up to {EXPORT_VERSION}: read it with {who} or later, or export it again with this one"
        )
    return _rows(document, shown)


def _rows(document: dict[str, Any], shown: Path) -> dict[str, int]:
    """Each input's ``rows`` in the manifest ``document``: every version holds them."""
    inputs = document.get("inputs")
    if not isinstance(inputs, dict):
        raise _damaged(shown, "no inputs")
    rows: dict[str, int] = {}
    for name, written in inputs.items():
        count = written.get("rows") if isinstance(written, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise _damaged(shown, f"no count of rows for {name}")
        rows[name] = count
    return rows


def _document(data: bytes, shown: Path) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise _damaged(shown, f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise _damaged(shown, "not a JSON object")
    return document


def _damaged(shown: Path, why: str) -> UnreadableExportError:
    return UnreadableExportError(
        f"{shown / MANIFEST} is not a payorch export's manifest ({why}): "
        "export again, or copy the export again"
    )
