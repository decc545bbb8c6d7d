"""The retrospective: contract violations set against merchant complaints (PRODUCT.md 9 and 10).

Pure functions over Polars frames with the columns of the analytics inputs (the service's
``GET /v1/analytics/violations`` and ``/complaints``, or ``payorch export``'s Parquet):

* :func:`map_complaints` names the contract each complaint is about. An explicit
  ``contract_id`` wins; then the violations recorded for the complaint's payment, then those of
  its request: the contract its category names when it is among them (the record confirms what
  the merchant reports), else the most severe, then the most frequent, then the first by id; then
  the complaint's category through the taxonomy (matched whatever its case, ``_``, ``.`` and
  ``-``: :func:`category_key`); else ``unmapped``. A minor violation (a field the parser
  corrected, a slow answer) says how a payment went, not what went wrong with it: it does not
  outrank a category that names another contract (a double charge on a payment whose amount was
  corrected is ``idempotency/key-reused``, not ``api/validation``); it maps a complaint whose
  category names no contract. Only the complaint's own
  merchant's violations count (a payment or request id of another merchant maps nothing), and
  only the violations passed in. The report passes all those recorded for the payments and
  requests its complaints name, whenever they were recorded (``ingest.store.reads
  .named_violations``), not just its window's: a complaint usually arrives after its payment, and
  its contract must not depend on where the window starts.
* :func:`retrospective` counts, per contract, its violations (the window's) and the complaints
  mapped to it, and flags the mismatches.

**The mismatch rule** (``reports.mismatch`` in the config): a contract is a mismatch when at
least ``min_reports`` complaints map to it and either it recorded no violation at all, or the
complaints are at least ``min_ratio`` of its violations. With the defaults (0.1 and 1): 932
violations against 8 complaints (under 1 %) is no mismatch; 41 against 17 (41 %) is; a single
complaint about a contract that recorded nothing is. Merchants noticing a large share of what
the system recorded, or something it did not record, means the contract watches the wrong
thing or too little of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from engine import complaints
from engine.complaints import CATEGORY_SEPARATORS, category_key
from engine.config import MismatchRule
from engine.contracts import ContractRegistry, Severity
from engine.types import ContractId

UNMAPPED = "unmapped"

# The taxonomy is the complaint intake's too (a category is filed as the taxonomy writes it): it
# lives with the complaint, under its names here as well.
DEFAULT_TAXONOMY = complaints.DEFAULT_TAXONOMY
taxonomy = complaints.taxonomy

#: How a complaint was mapped, strongest first.
EXPLICIT, BY_PAYMENT, BY_REQUEST, BY_CATEGORY = "explicit", "payment", "request", "category"

_SEVERITY_RANK = {Severity.CRITICAL.value: 0, Severity.MAJOR.value: 1, Severity.MINOR.value: 2}

#: The columns :func:`map_complaints` reads (the analytics inputs have more).
VIOLATION_COLUMNS = {
    "merchant_id": pl.String,
    "contract_id": pl.String,
    "severity": pl.String,
    "request_id": pl.String,
    "payment_id": pl.String,
}
COMPLAINT_COLUMNS = {
    "complaint_id": pl.String,
    "merchant_id": pl.String,
    "category": pl.String,
    "payment_id": pl.String,
    "request_id": pl.String,
    "contract_id": pl.String,
}


def _require(frame: pl.DataFrame, columns: Mapping[str, type[pl.DataType]], name: str) -> pl.DataFrame:
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{name} lack the columns {', '.join(missing)}")
    return frame.select(pl.col(column).cast(kind) for column, kind in columns.items())


#: A violation of a contract this severe or less is no evidence against a category that names
#: another contract (see the module text).
_MINOR_RANK = _SEVERITY_RANK[Severity.MINOR.value]
_ROW = "_row"


def _pointed_to(wanted: pl.DataFrame, violations: pl.DataFrame, key: str) -> pl.DataFrame:
    """Per complaint (``_row``) whose ``key`` (its payment or its request) recorded violations of
    its merchant, the contract they point to: its category's (``by_category``) when recorded,
    else the most severe, then most frequent, then first by id, a minor one only when the
    category names no contract."""
    counted = (
        violations.filter(pl.col(key).is_not_null() & pl.col("merchant_id").is_not_null())
        .group_by("merchant_id", key, "contract_id")
        .agg(
            pl.len().alias("times"),
            pl.col("severity")
            .first()
            .replace_strict(_SEVERITY_RANK, default=len(_SEVERITY_RANK))
            .alias("rank"),
        )
    )
    confirms = (pl.col("contract_id") == pl.col("by_category")).fill_null(value=False)
    evidence = confirms | pl.col("by_category").is_null() | (pl.col("rank") < _MINOR_RANK)
    return (
        wanted.select(_ROW, "merchant_id", key, "by_category")
        .join(counted, on=["merchant_id", key], how="inner")
        .filter(evidence)
        .sort(
            _ROW,
            confirms.not_(),
            "rank",
            "times",
            "contract_id",
            descending=[False, False, False, True, False],
        )
        .group_by(_ROW, maintain_order=True)
        .first()
        .select(_ROW, pl.col("contract_id").alias(f"by_{key}"))
    )


def map_complaints(
    complaints: pl.DataFrame, violations: pl.DataFrame, categories: Mapping[str, ContractId]
) -> pl.DataFrame:
    """``complaints`` with ``mapped_contract`` and ``mapped_by`` (see the module text);
    ``violations`` are those to map through (for a report: every one recorded for the complaints'
    payments and requests, not only the window's), ``categories`` the whole taxonomy
    (:func:`taxonomy`)."""
    wanted = _require(complaints, COMPLAINT_COLUMNS, "complaints")
    recorded = _require(violations, VIOLATION_COLUMNS, "violations")
    folded = {category_key(category): contract for category, contract in categories.items()}
    by_category = pl.DataFrame(
        {"category_key": list(folded), "by_category": list(folded.values())},
        schema={"category_key": pl.String, "by_category": pl.String},
    )
    keys = pl.col("category").str.to_lowercase().str.replace_all(CATEGORY_SEPARATORS, "")
    # The category comes first: which of a payment's violations a complaint is about depends on it.
    categorized = (
        wanted.with_row_index(_ROW)
        .with_columns(keys.alias("category_key"))
        .join(by_category, on="category_key", how="left", maintain_order="left")
    )
    joined = categorized.join(
        _pointed_to(categorized, recorded, "payment_id"), on=_ROW, how="left", maintain_order="left"
    ).join(_pointed_to(categorized, recorded, "request_id"), on=_ROW, how="left", maintain_order="left")
    ways = (
        (EXPLICIT, "contract_id"),
        (BY_PAYMENT, "by_payment_id"),
        (BY_REQUEST, "by_request_id"),
        (BY_CATEGORY, "by_category"),
    )
    mapped_by: pl.Expr = pl.lit(UNMAPPED)
    for way, column in reversed(ways):
        mapped_by = pl.when(pl.col(column).is_not_null()).then(pl.lit(way)).otherwise(mapped_by)
    return joined.select(
        *COMPLAINT_COLUMNS,
        pl.coalesce(*(column for _, column in ways), pl.lit(UNMAPPED)).alias("mapped_contract"),
        mapped_by.alias("mapped_by"),
    )


def retrospective(
    violations: pl.DataFrame,
    mapped: pl.DataFrame,
    rule: MismatchRule,
    registry: ContractRegistry,
) -> pl.DataFrame:
    """One row per contract that recorded violations or drew complaints: ``id``, ``count``,
    ``external_reports``, ``mismatch``, plus its ``severity`` and ``owner`` (null for an id the
    registry does not know); the most violated first. ``mapped`` is :func:`map_complaints`'s
    output; unmapped complaints are left out (:func:`unmapped_count` counts them)."""
    counts = (
        _require(violations, VIOLATION_COLUMNS, "violations")
        .group_by("contract_id")
        .agg(pl.len().cast(pl.Int64).alias("count"))
    )
    reports = (
        mapped.filter(pl.col("mapped_contract") != UNMAPPED)
        .group_by("mapped_contract")
        .agg(pl.len().cast(pl.Int64).alias("external_reports"))
        .rename({"mapped_contract": "contract_id"})
    )
    known = pl.DataFrame(
        {
            "contract_id": [contract.id for contract in registry],
            "severity": [contract.severity.value for contract in registry],
            "owner": [contract.owner for contract in registry],
        },
        schema={"contract_id": pl.String, "severity": pl.String, "owner": pl.String},
    )
    both = counts.join(reports, on="contract_id", how="full", coalesce=True).with_columns(
        pl.col("count").fill_null(0), pl.col("external_reports").fill_null(0)
    )
    # The share is divided out, not the threshold multiplied: 7 complaints against 25 violations
    # are 28 %, but 25 * 0.28 is 7.000000000000001 in floating point. A quotient of two counts
    # rounds to the same float as a ratio written with the same value.
    mismatch = (pl.col("external_reports") >= rule.min_reports) & (
        (pl.col("count") == 0) | (pl.col("external_reports") / pl.col("count") >= rule.min_ratio)
    )
    return (
        both.join(known, on="contract_id", how="left")
        .select(
            pl.col("contract_id").alias("id"),
            "count",
            "external_reports",
            mismatch.alias("mismatch"),
            "severity",
            "owner",
        )
        .sort(["count", "external_reports", "id"], descending=[True, True, False])
    )


def unmapped_count(mapped: pl.DataFrame) -> int:
    """How many complaints :func:`map_complaints` could not map to a contract."""
    return mapped.filter(pl.col("mapped_contract") == UNMAPPED).height
