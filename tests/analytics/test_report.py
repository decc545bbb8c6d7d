"""analytics.report: the retrospective as a document, and its YAML and JSON forms (PRODUCT.md 10)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
import yaml

from analytics.report import Retrospective, build, document, to_json, to_yaml
from analytics.retrospective import map_complaints, retrospective, taxonomy
from engine.config import MismatchRule
from engine.contracts import default_registry
from engine.monitor import ReportWindow
from engine.types import ContractId
from tests.analytics.frames import COMPLAINT_SCHEMA, VIOLATION_SCHEMA

START = datetime(2026, 11, 12, tzinfo=UTC)
END = datetime(2026, 11, 26, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 0, 0, 5, tzinfo=UTC)
WINDOW = ReportWindow(START, END)
FIRST_KEYS = ["id", "count", "external_reports", "mismatch"]


# PRODUCT.md section 10's example, verbatim.
PRODUCT_EXAMPLE = """\
window: {from: 2026-11-12T00:00:00Z, to: 2026-11-26T00:00:00Z}
violations:
  - id: router/timeout
    count: 932
    external_reports: 8
    mismatch: false
  - id: plan/coverage
    count: 41
    external_reports: 17
    mismatch: true
"""


def violations(counts: dict[str, int]) -> pl.DataFrame:
    """``count`` violations of each contract, with every column the service returns."""
    registry = default_registry()
    rows = [
        {
            "seq": 0,
            "contract_id": contract_id,
            "severity": registry.get(contract_id).severity.value,
            "owner": registry.get(contract_id).owner,
            "message": "broken",
            "request_id": f"req_{contract_id}_{n}",
            "payment_id": None,
            "merchant_id": "m_acme",
            "timestamp": START + timedelta(minutes=n),
        }
        for contract_id, count in counts.items()
        for n in range(count)
    ]
    return pl.DataFrame(rows, schema=VIOLATION_SCHEMA).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("seq")
    )


def complaints(rows: Sequence[tuple[str | None, str | None]]) -> pl.DataFrame:
    """One complaint per ``(category, contract_id)``, with every column the service returns."""
    return pl.DataFrame(
        [
            {
                "complaint_id": f"cmp_{n}",
                "merchant_id": "m_acme",
                "received_at": START + timedelta(hours=n),
                "category": category,
                "description": "the customer says so",
                "payment_id": None,
                "request_id": None,
                "contract_id": contract_id,
            }
            for n, (category, contract_id) in enumerate(rows)
        ],
        schema=COMPLAINT_SCHEMA,
    )


def product_example(
    *, window: ReportWindow = WINDOW, now: datetime = NOW, rule: MismatchRule | None = None
) -> Retrospective:
    """PRODUCT.md's example: 932 timeouts and 8 complaints, 41 coverage gaps and 17 complaints,
    plus 6 complaints nothing maps (31 received in all)."""
    received = complaints(
        [("timeout", None)] * 8 + [("payment_not_covered", None)] * 17 + [("rude_support", None)] * 6
    )
    recorded = violations({"router/timeout": 932, "plan/coverage": 41})
    return build(
        recorded,
        received,
        named_violations=recorded,
        window=window,
        categories={},
        rule=rule or MismatchRule(),
        registry=default_registry(),
        now=now,
    )


def empty_report() -> Retrospective:
    return build(
        pl.DataFrame(schema=VIOLATION_SCHEMA),
        pl.DataFrame(schema=COMPLAINT_SCHEMA),
        named_violations=pl.DataFrame(schema=VIOLATION_SCHEMA),
        window=WINDOW,
        categories={},
        rule=MismatchRule(),
        registry=default_registry(),
        now=NOW,
    )


EXPECTED_VIOLATIONS: list[dict[str, Any]] = [
    {
        "id": "router/timeout",
        "count": 932,
        "external_reports": 8,
        "mismatch": False,
        "severity": "major",
        "owner": "routing",
    },
    {
        "id": "plan/coverage",
        "count": 41,
        "external_reports": 17,
        "mismatch": True,
        "severity": "major",
        "owner": "payments-core",
    },
]


# --- build ---------------------------------------------------------------------------------------


def test_build_counts_contracts_and_complaints_for_the_window() -> None:
    report = product_example()

    assert report.window == WINDOW
    assert report.generated_at == NOW
    assert report.rule == MismatchRule()
    assert (report.complaints, report.unmapped) == (31, 6)
    assert report.contracts.rows(named=True) == EXPECTED_VIOLATIONS


def test_build_is_map_complaints_then_retrospective() -> None:
    recorded = violations({"router/timeout": 3, "api/validation": 2})
    received = complaints([("timeout", None), (None, "processor/panic"), ("nonsense", None)])
    rule = MismatchRule(min_ratio=0.5, min_reports=1)

    report = build(
        recorded,
        received,
        named_violations=recorded,
        window=WINDOW,
        categories={},
        rule=rule,
        registry=default_registry(),
        now=NOW,
    )

    mapped = map_complaints(received, recorded, taxonomy({}))
    assert report.contracts.equals(retrospective(recorded, mapped, rule, default_registry()))
    assert report.contracts.select("id", "count", "external_reports", "mismatch").rows() == [
        ("router/timeout", 3, 1, False),  # 1 < 3 * 0.5
        ("api/validation", 2, 0, False),
        ("processor/panic", 0, 1, True),
    ]
    assert (report.complaints, report.unmapped) == (3, 1)


def test_build_adds_the_default_taxonomy_to_the_configured_categories() -> None:
    received = complaints([("timeout", None), ("wrong_amount", None), ("card_leaked", None)])

    report = build(
        violations({}),
        received,
        named_violations=violations({}),
        window=WINDOW,
        categories={"timeout": ContractId("processor/panic"), "card_leaked": ContractId("observer/dropped")},
        rule=MismatchRule(),
        registry=default_registry(),
        now=NOW,
    )

    assert report.contracts.select("id", "external_reports").rows() == [
        ("observer/dropped", 1),
        ("orchestrator/sum", 1),  # a default category still maps
        ("processor/panic", 1),  # the configured one overrides the default router/timeout
    ]
    assert report.unmapped == 0


def test_build_of_nothing_is_an_empty_report() -> None:
    report = empty_report()

    assert report.contracts.height == 0
    assert (report.complaints, report.unmapped) == (0, 0)


# --- mapping through violations recorded before the window ---------------------------------------


def recorded_at(rows: Sequence[tuple[str, str, str, datetime]]) -> pl.DataFrame:
    """Violations of ``(merchant_id, contract_id, payment_id, when)``, each of its own request."""
    registry = default_registry()
    return pl.DataFrame(
        [
            {
                "seq": seq,
                "contract_id": contract_id,
                "severity": registry.get(contract_id).severity.value,
                "owner": registry.get(contract_id).owner,
                "message": "broken",
                "request_id": f"req_{seq}",
                "payment_id": payment_id,
                "merchant_id": merchant_id,
                "timestamp": when,
            }
            for seq, (merchant_id, contract_id, payment_id, when) in enumerate(rows, start=1)
        ],
        schema=VIOLATION_SCHEMA,
    )


def complaints_about(rows: Sequence[tuple[str, str, str, str]], received: datetime) -> pl.DataFrame:
    """Complaints of ``(complaint_id, merchant_id, payment_id, category)``, all received at
    ``received``."""
    return pl.DataFrame(
        [
            {
                "complaint_id": complaint_id,
                "merchant_id": merchant_id,
                "received_at": received,
                "category": category,
                "description": "the checkout hung",
                "payment_id": payment_id,
                "request_id": None,
                "contract_id": None,
            }
            for complaint_id, merchant_id, payment_id, category in rows
        ],
        schema=COMPLAINT_SCHEMA,
    )


def in_window(recorded: pl.DataFrame, window: ReportWindow) -> pl.DataFrame:
    return recorded.filter(pl.col("timestamp").is_between(window.start, window.end, closed="left"))


#: pay_x broke api/validation at 17:09 (m_acme's); m_globex has a payment of the same id, which
#: broke orchestrator/sum (critical: it would win if merchants were mixed up); pay_w is only
#: m_globex's. Another m_acme payment broke api/validation at 17:20.
PAYMENT_VIOLATED = datetime(2026, 11, 26, 17, 9, tzinfo=UTC)
HISTORY = recorded_at(
    [
        ("m_acme", "api/validation", "pay_x", PAYMENT_VIOLATED),
        ("m_globex", "orchestrator/sum", "pay_x", PAYMENT_VIOLATED),
        ("m_globex", "orchestrator/sum", "pay_w", PAYMENT_VIOLATED),
        ("m_acme", "api/validation", "pay_y", datetime(2026, 11, 26, 17, 20, tzinfo=UTC)),
    ]
)
#: c6 about pay_x, in a category that names no contract (its payment's minor violation is all it
#: maps by), c8 a timeout of pay_w (which m_acme never had), received at 17:18.
LATE_COMPLAINTS = complaints_about(
    [("c6", "m_acme", "pay_x", "other"), ("c8", "m_acme", "pay_w", "timeout")],
    datetime(2026, 11, 26, 17, 18, tzinfo=UTC),
)


LATE_END = datetime(2026, 11, 27, tzinfo=UTC)


def late_report(window: ReportWindow) -> Retrospective:
    return build(
        in_window(HISTORY, window),
        LATE_COMPLAINTS,
        named_violations=HISTORY,  # what the store reads for the complaints' payments
        window=window,
        categories={},
        rule=MismatchRule(),
        registry=default_registry(),
        now=NOW,
    )


def test_a_complaint_maps_through_its_payments_violation_recorded_before_the_window() -> None:
    window = ReportWindow(datetime(2026, 11, 26, 17, 15, tzinfo=UTC), LATE_END)

    report = late_report(window)

    # c6 is about api/validation (its payment's violation at 17:09, before the window), else it
    # would be unmapped; c8's payment is another merchant's, so its category counts. Only
    # the window's violations are counted: pay_y's, none of the named ones before 17:15.
    assert report.contracts.select("id", "count", "external_reports", "owner").rows() == [
        ("api/validation", 1, 1, "api-platform"),
        ("router/timeout", 0, 1, "routing"),
    ]
    assert (report.complaints, report.unmapped) == (2, 0)


def test_where_the_window_starts_does_not_change_a_complaints_contract() -> None:
    starts = [
        datetime(2026, 11, 12, tzinfo=UTC),
        PAYMENT_VIOLATED,
        datetime(2026, 11, 26, 17, 15, tzinfo=UTC),
    ]

    reports = [late_report(ReportWindow(start, LATE_END)) for start in starts]

    for report in reports:
        reported = report.contracts.filter(pl.col("external_reports") > 0)
        assert reported.select("id", "external_reports").rows() == [
            ("api/validation", 1),
            ("router/timeout", 1),
        ], report.window
    # The window decides what is counted (m_globex's violations too), not what is mapped.
    assert [report.contracts.select("id", "count").rows() for report in reports] == [
        [("api/validation", 2), ("orchestrator/sum", 2), ("router/timeout", 0)],
        [("api/validation", 2), ("orchestrator/sum", 2), ("router/timeout", 0)],
        [("api/validation", 1), ("router/timeout", 0)],
    ]


# --- document ------------------------------------------------------------------------------------


def test_the_document_has_the_contracts_keys_in_order() -> None:
    data = document(product_example())

    assert list(data) == ["window", "violations", "complaints", "mismatch_rule", "generated_at"]
    assert data == {
        "window": {"from": START, "to": END},
        "violations": EXPECTED_VIOLATIONS,
        "complaints": {"received": 31, "unmapped": 6},
        "mismatch_rule": {"min_ratio": 0.1, "min_reports": 1},
        "generated_at": NOW,
    }
    assert [list(entry)[:4] for entry in data["violations"]] == [FIRST_KEYS, FIRST_KEYS]


def test_the_document_gives_times_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    window = ReportWindow(
        datetime(2026, 11, 12, 2, tzinfo=plus_two), datetime(2026, 11, 26, 2, tzinfo=plus_two)
    )

    data = document(product_example(window=window, now=datetime(2026, 11, 26, 2, 0, 5, tzinfo=plus_two)))

    assert data["window"] == {"from": START, "to": END}
    for moment in (data["window"]["from"], data["window"]["to"], data["generated_at"]):
        assert moment.tzinfo is UTC
    assert data["generated_at"] == NOW


def test_a_contract_the_registry_does_not_know_has_only_the_required_keys() -> None:
    report = build(
        violations({}),
        complaints([(None, "fraud/chargeback")]),
        named_violations=violations({}),
        window=WINDOW,
        categories={},
        rule=MismatchRule(),
        registry=default_registry(),
        now=NOW,
    )

    assert document(report)["violations"] == [
        {"id": "fraud/chargeback", "count": 0, "external_reports": 1, "mismatch": True}
    ]


# --- YAML ----------------------------------------------------------------------------------------


def test_the_yaml_reads_back_as_the_document() -> None:
    text = to_yaml(product_example())

    data = yaml.safe_load(text)

    assert list(data) == ["window", "violations", "complaints", "mismatch_rule", "generated_at"]
    assert data["window"] == {"from": WINDOW.start, "to": WINDOW.end}
    assert list(data["window"]) == ["from", "to"]
    for moment in (data["window"]["from"], data["window"]["to"], data["generated_at"]):
        assert isinstance(moment, datetime)
        assert moment.utcoffset() == timedelta(0)
    assert data["violations"] == EXPECTED_VIOLATIONS
    assert [list(entry)[:4] for entry in data["violations"]] == [FIRST_KEYS, FIRST_KEYS]
    assert data["complaints"] == {"received": 31, "unmapped": 6}
    assert data["mismatch_rule"] == {"min_ratio": 0.1, "min_reports": 1}
    assert data["generated_at"] == NOW


def test_the_yaml_writes_times_as_plain_utc_timestamps() -> None:
    text = to_yaml(product_example())

    lines = text.splitlines()
    assert lines[:3] == ["window:", "  from: 2026-11-12T00:00:00Z", "  to: 2026-11-26T00:00:00Z"]
    assert "generated_at: 2026-11-26T00:00:05Z" in lines
    assert "!!" not in text
    assert "'" not in text
    assert '"' not in text


def test_the_yaml_writes_the_small_mappings_on_one_line() -> None:
    lines = to_yaml(product_example()).splitlines()

    assert "complaints: {received: 31, unmapped: 6}" in lines
    assert "mismatch_rule: {min_ratio: 0.1, min_reports: 1}" in lines


def test_the_yaml_reproduces_products_example() -> None:
    expected = yaml.safe_load(PRODUCT_EXAMPLE)

    data = yaml.safe_load(to_yaml(product_example()))

    assert data["window"] == expected["window"]
    assert [{key: entry[key] for key in list(entry)[:4]} for entry in data["violations"]] == expected[
        "violations"
    ]


def test_the_yaml_converts_other_zones_to_utc() -> None:
    minus_five = timezone(timedelta(hours=-5))
    window = ReportWindow(
        datetime(2026, 11, 11, 19, tzinfo=minus_five), datetime(2026, 11, 25, 19, tzinfo=minus_five)
    )

    text = to_yaml(product_example(window=window, now=datetime(2026, 11, 25, 19, 0, 5, tzinfo=minus_five)))

    assert text.splitlines()[:3] == ["window:", "  from: 2026-11-12T00:00:00Z", "  to: 2026-11-26T00:00:00Z"]
    assert yaml.safe_load(text)["window"] == {"from": START, "to": END}


def test_the_yaml_keeps_fractions_of_a_second() -> None:
    now = datetime(2026, 11, 26, 0, 0, 5, 123456, tzinfo=UTC)

    text = to_yaml(product_example(now=now))

    assert "generated_at: 2026-11-26T00:00:05.123456Z" in text.splitlines()
    assert yaml.safe_load(text)["generated_at"] == now


def test_the_yaml_of_a_configured_rule() -> None:
    data = yaml.safe_load(to_yaml(product_example(rule=MismatchRule(min_ratio=0.5, min_reports=3))))

    assert data["mismatch_rule"] == {"min_ratio": 0.5, "min_reports": 3}
    assert [(entry["id"], entry["mismatch"]) for entry in data["violations"]] == [
        ("router/timeout", False),
        ("plan/coverage", False),  # 17 < 41 * 0.5
    ]


def test_the_yaml_of_an_empty_report() -> None:
    text = to_yaml(empty_report())

    assert yaml.safe_load(text) == {
        "window": {"from": START, "to": END},
        "violations": [],
        "complaints": {"received": 0, "unmapped": 0},
        "mismatch_rule": {"min_ratio": 0.1, "min_reports": 1},
        "generated_at": NOW,
    }
    assert "violations: []" in text.splitlines()


# --- JSON ----------------------------------------------------------------------------------------


def test_the_json_is_the_same_document_with_times_as_strings() -> None:
    text = to_json(product_example())

    data = json.loads(text)

    assert data == {
        "window": {"from": "2026-11-12T00:00:00Z", "to": "2026-11-26T00:00:00Z"},
        "violations": EXPECTED_VIOLATIONS,
        "complaints": {"received": 31, "unmapped": 6},
        "mismatch_rule": {"min_ratio": 0.1, "min_reports": 1},
        "generated_at": "2026-11-26T00:00:05Z",
    }
    assert list(data) == ["window", "violations", "complaints", "mismatch_rule", "generated_at"]
    assert [list(entry)[:4] for entry in data["violations"]] == [FIRST_KEYS, FIRST_KEYS]
    assert text.endswith("}\n")


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(product_example(), id="example"),
        pytest.param(
            product_example(
                window=ReportWindow(
                    datetime(2026, 11, 12, 9, tzinfo=timezone(timedelta(hours=9))),
                    datetime(2026, 11, 26, 9, tzinfo=timezone(timedelta(hours=9))),
                ),
                now=datetime(2026, 11, 26, 0, 0, 5, 250000, tzinfo=UTC),
            ),
            id="other-zone-and-fraction",
        ),
        pytest.param(empty_report(), id="empty"),
    ],
)
def test_the_json_and_the_yaml_say_the_same(report: Retrospective) -> None:
    from_yaml = yaml.safe_load(to_yaml(report))
    from_json = json.loads(to_json(report))

    for data in (from_yaml["window"], from_json["window"]):
        assert list(data) == ["from", "to"]
    assert from_json["window"] == {
        key: moment.isoformat().replace("+00:00", "Z") for key, moment in from_yaml["window"].items()
    }
    assert datetime.fromisoformat(from_json["generated_at"]) == from_yaml["generated_at"]
    assert from_json["generated_at"].endswith("Z")
    for key in ("violations", "complaints", "mismatch_rule"):
        assert from_json[key] == from_yaml[key]
