"""The retrospective report as a document, and its YAML and JSON forms (PRODUCT.md section 10).

The YAML has exactly the contract's shape, with extra keys after the required ones::

    window:
      from: 2026-11-12T00:00:00Z
      to: 2026-11-26T00:00:00Z
    violations:
      - id: router/timeout
        count: 932
        external_reports: 8
        mismatch: false
        severity: major
        owner: routing
    complaints: {received: 31, unmapped: 6}
    mismatch_rule: {min_ratio: 0.1, min_reports: 1}
    generated_at: 2026-11-26T00:00:05Z

Times are UTC with a ``Z``, written as YAML timestamps (plain scalars a YAML reader reads back as
times). The JSON form is the same document, times as RFC 3339 strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import yaml

from analytics.retrospective import map_complaints, retrospective, taxonomy, unmapped_count
from engine.config import MismatchRule
from engine.contracts import ContractRegistry
from engine.monitor import ReportWindow
from engine.types import ContractId


@dataclass(frozen=True, slots=True)
class Retrospective:
    """A window's contracts (:func:`~analytics.retrospective.retrospective`) and its complaints."""

    window: ReportWindow
    contracts: pl.DataFrame
    complaints: int
    unmapped: int
    rule: MismatchRule
    generated_at: datetime


def build(
    violations: pl.DataFrame,
    complaints: pl.DataFrame,
    *,
    named_violations: pl.DataFrame,
    window: ReportWindow,
    categories: Mapping[str, ContractId],
    rule: MismatchRule,
    registry: ContractRegistry,
    now: datetime,
) -> Retrospective:
    """The retrospective of ``window`` from the violations recorded in it (counted) and the
    complaints received in it (mapped). The complaints are mapped through ``named_violations``:
    every violation recorded for the payments and requests they name, whenever (their payment's
    violations are often older than the window; violations of other payments and requests do no
    harm). ``categories`` is the config's taxonomy (the defaults are added here)."""
    mapped = map_complaints(complaints, named_violations, taxonomy(categories))
    return Retrospective(
        window=window,
        contracts=retrospective(violations, mapped, rule, registry),
        complaints=mapped.height,
        unmapped=unmapped_count(mapped),
        rule=rule,
        generated_at=now,
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def document(report: Retrospective) -> dict[str, Any]:
    """The report as plain data: the contract's keys first, then the extra ones."""
    return {
        "window": {"from": _utc(report.window.start), "to": _utc(report.window.end)},
        "violations": [
            {key: value for key, value in row.items() if value is not None}
            for row in report.contracts.iter_rows(named=True)
        ],
        "complaints": {"received": report.complaints, "unmapped": report.unmapped},
        "mismatch_rule": {"min_ratio": report.rule.min_ratio, "min_reports": report.rule.min_reports},
        "generated_at": _utc(report.generated_at),
    }


class _Flow(dict[str, Any]):
    """A mapping written on one line (``{received: 31, unmapped: 6}``); not the window, whose
    times PyYAML would have to quote (and tag) inside braces."""


class _Dumper(yaml.SafeDumper):
    pass


def _timestamp(dumper: yaml.SafeDumper, moment: datetime) -> yaml.Node:
    text = moment.isoformat().replace("+00:00", "Z")
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", text)


def _flow(dumper: yaml.SafeDumper, mapping: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", mapping.items(), flow_style=True)


_Dumper.add_representer(datetime, _timestamp)
_Dumper.add_representer(_Flow, _flow)


def to_yaml(report: Retrospective) -> str:
    data = document(report)
    for key in ("complaints", "mismatch_rule"):
        data[key] = _Flow(data[key])
    dumped: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return dumped


def to_json(report: Retrospective) -> str:
    return orjson.dumps(document(report), option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode() + "\n"
