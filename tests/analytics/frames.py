"""The analytics inputs' columns as Polars types, taken from the service's own read schemas
(``ingest.store.reads``): what the report reads from the API, a data folder or an export."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from ingest.store import reads


def _polars(schema: pa.Schema) -> dict[str, pl.DataType]:
    frame = pl.from_arrow(schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return dict(frame.schema)


VIOLATION_SCHEMA = _polars(reads.VIOLATIONS.schema)
COMPLAINT_SCHEMA = _polars(reads.COMPLAINTS.schema)
