"""analytics.retrospective: mapping complaints to contracts, and the per-contract retrospective
(PRODUCT.md sections 9 and 10)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.retrospective import (
    DEFAULT_TAXONOMY,
    map_complaints,
    retrospective,
    taxonomy,
    unmapped_count,
)
from engine.config import MismatchRule
from engine.contracts import default_registry
from engine.types import ContractId
from tests.analytics.frames import COMPLAINT_SCHEMA, VIOLATION_SCHEMA

T0 = datetime(2026, 11, 12, tzinfo=UTC)

MINIMAL_VIOLATIONS: dict[str, pl.DataType] = {
    "merchant_id": pl.String(),
    "contract_id": pl.String(),
    "severity": pl.String(),
    "request_id": pl.String(),
    "payment_id": pl.String(),
}
MINIMAL_COMPLAINTS: dict[str, pl.DataType] = {
    "complaint_id": pl.String(),
    "merchant_id": pl.String(),
    "category": pl.String(),
    "payment_id": pl.String(),
    "request_id": pl.String(),
    "contract_id": pl.String(),
}
MAPPED_COLUMNS = [
    "complaint_id",
    "merchant_id",
    "category",
    "payment_id",
    "request_id",
    "contract_id",
    "mapped_contract",
    "mapped_by",
]


def violations(
    rows: Sequence[tuple[str, str | None, str | None]], merchant_id: str = "m_acme"
) -> pl.DataFrame:
    """A violations frame with every column the service returns; each row is
    ``(contract_id, request_id, payment_id)``, severity and owner from the shipped registry."""
    registry = default_registry()
    return pl.DataFrame(
        [
            {
                "seq": seq,
                "contract_id": contract_id,
                "severity": registry.get(contract_id).severity.value,
                "owner": registry.get(contract_id).owner,
                "message": f"violation {seq}",
                "request_id": request_id,
                "payment_id": payment_id,
                "merchant_id": merchant_id,
                "timestamp": T0 + timedelta(seconds=seq),
            }
            for seq, (contract_id, request_id, payment_id) in enumerate(rows, start=1)
        ],
        schema=VIOLATION_SCHEMA,
    )


def counted_violations(counts: dict[str, int]) -> pl.DataFrame:
    """``count`` violations of each contract, each of its own request, none tied to a payment."""
    return violations(
        [
            (contract_id, f"req_{contract_id}_{n}", None)
            for contract_id, count in counts.items()
            for n in range(count)
        ]
    )


def complaints(
    rows: Sequence[tuple[str, str | None, str | None, str | None, str | None]], merchant_id: str = "m_acme"
) -> pl.DataFrame:
    """A complaints frame with every column the service returns; each row is
    ``(complaint_id, category, payment_id, request_id, contract_id)``."""
    return pl.DataFrame(
        [
            {
                "complaint_id": complaint_id,
                "merchant_id": merchant_id,
                "received_at": T0 + timedelta(hours=n),
                "category": category,
                "description": "the customer says so",
                "payment_id": payment_id,
                "request_id": request_id,
                "contract_id": contract_id,
            }
            for n, (complaint_id, category, payment_id, request_id, contract_id) in enumerate(rows)
        ],
        schema=COMPLAINT_SCHEMA,
    )


def explicit_complaints(counts: dict[str, int]) -> pl.DataFrame:
    """``count`` complaints naming each contract explicitly."""
    return complaints(
        [
            (f"cmp_{contract_id}_{n}", None, None, None, contract_id)
            for contract_id, count in counts.items()
            for n in range(count)
        ]
    )


def mapping(mapped: pl.DataFrame) -> list[tuple[str, str, str]]:
    return [
        (row["complaint_id"], row["mapped_contract"], row["mapped_by"])
        for row in mapped.iter_rows(named=True)
    ]


def rows_by_id(frame: pl.DataFrame) -> dict[str, tuple[int, int, bool]]:
    return {
        row["id"]: (row["count"], row["external_reports"], row["mismatch"])
        for row in frame.iter_rows(named=True)
    }


def run(recorded: pl.DataFrame, received: pl.DataFrame, rule: MismatchRule | None = None) -> pl.DataFrame:
    mapped = map_complaints(received, recorded, taxonomy({}))
    return retrospective(recorded, mapped, rule or MismatchRule(), default_registry())


# --- map_complaints: precedence ------------------------------------------------------------------


def test_each_complaint_is_mapped_by_the_strongest_way_available_in_input_order() -> None:
    recorded = violations(
        [
            ("router/timeout", "req_1", "pay_1"),  # pay_1's only violation
            ("api/validation", "req_1", None),  # req_1 also has one with no payment
            ("plan/coverage", "req_2", None),
        ]
    )
    received = complaints(
        [
            # explicit beats payment, request and category
            ("z_explicit", "wrong_amount", "pay_1", "req_1", "processor/panic"),
            # payment beats request and category
            ("a_payment", "wrong_amount", "pay_1", "req_1", None),
            # the named payment recorded nothing: the request's violations
            ("m_request", "wrong_amount", "pay_quiet", "req_2", None),
            # payment and request recorded nothing: the category
            ("b_category", "wrong_amount", "pay_quiet", "req_quiet", None),
            # nothing known and an unknown category
            ("y_unknown_category", "rude_support", "pay_quiet", "req_quiet", None),
            # nothing at all
            ("c_nothing", None, None, None, None),
            # only a category
            ("x_category_only", "double_charge", None, None, None),
        ]
    )

    mapped = map_complaints(received, recorded, taxonomy({}))

    assert mapping(mapped) == [
        ("z_explicit", "processor/panic", "explicit"),
        ("a_payment", "router/timeout", "payment"),
        ("m_request", "plan/coverage", "request"),
        ("b_category", "orchestrator/sum", "category"),
        ("y_unknown_category", "unmapped", "unmapped"),
        ("c_nothing", "unmapped", "unmapped"),
        ("x_category_only", "idempotency/key-reused", "category"),
    ]
    assert unmapped_count(mapped) == 2


def test_the_output_keeps_the_mapping_columns_and_adds_two() -> None:
    received = complaints([("cmp_1", "timeout", "pay_1", "req_1", None)])

    mapped = map_complaints(received, violations([]), taxonomy({}))

    assert mapped.columns == MAPPED_COLUMNS
    assert mapped.row(0) == (
        "cmp_1",
        "m_acme",
        "timeout",
        "pay_1",
        "req_1",
        None,
        "router/timeout",
        "category",
    )


def test_another_merchants_payment_or_request_maps_nothing() -> None:
    # m_globex names m_acme's payment and request: their violations are not its evidence.
    recorded = violations([("orchestrator/sum", "req_1", "pay_1")], merchant_id="m_acme")
    received = complaints([("cmp_1", "timeout", "pay_1", "req_1", None)], merchant_id="m_globex")
    own = complaints([("cmp_2", "timeout", "pay_1", "req_1", None)], merchant_id="m_acme")

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [
        ("cmp_1", "router/timeout", "category")
    ]
    assert mapping(map_complaints(own, recorded, taxonomy({}))) == [("cmp_2", "orchestrator/sum", "payment")]


def test_the_payment_beats_its_request_even_when_the_request_broke_a_more_severe_contract() -> None:
    recorded = violations(
        [
            ("router/retry-exhausted", "req_1", "pay_1"),  # major, on the payment
            ("orchestrator/sum", "req_1", None),  # critical, on the request only
            ("orchestrator/sum", "req_1", None),
        ]
    )
    received = complaints([("cmp_1", "timeout", "pay_1", "req_1", None)])

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [
        ("cmp_1", "router/retry-exhausted", "payment")
    ]


def test_the_request_is_used_with_all_its_violations_when_the_complaint_names_no_payment() -> None:
    recorded = violations(
        [
            ("api/validation", "req_1", "pay_1"),
            ("orchestrator/sum", "req_1", None),
        ]
    )
    received = complaints([("cmp_1", "timeout", None, "req_1", None)])

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [
        ("cmp_1", "orchestrator/sum", "request")
    ]


def test_violations_of_other_payments_and_requests_do_not_leak_into_a_complaint() -> None:
    recorded = violations([("orchestrator/sum", "req_1", "pay_1")])
    received = complaints(
        [
            ("cmp_1", "timeout", "pay_2", "req_2", None),
            ("cmp_2", None, "pay_2", None, None),
        ]
    )

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [
        ("cmp_1", "router/timeout", "category"),
        ("cmp_2", "unmapped", "unmapped"),
    ]


def test_every_complaint_is_kept_once_even_when_its_payment_broke_many_contracts() -> None:
    recorded = violations(
        [
            ("router/timeout", "req_1", "pay_1"),
            ("router/retry-exhausted", "req_1", "pay_1"),
            ("processor/malformed", "req_1", "pay_1"),
        ]
    )
    received = complaints(
        [
            ("cmp_3", None, "pay_1", "req_1", None),
            ("cmp_1", None, "pay_1", "req_1", None),
            ("cmp_2", None, None, "req_1", None),
        ]
    )

    mapped = map_complaints(received, recorded, taxonomy({}))

    assert mapped.height == 3
    assert mapped["complaint_id"].to_list() == ["cmp_3", "cmp_1", "cmp_2"]
    assert mapped["mapped_by"].to_list() == ["payment", "payment", "request"]


# --- map_complaints: which of several contracts --------------------------------------------------

# The shipped severities these cases rely on (engine/contracts.toml).
SEVERITIES = {
    "orchestrator/sum": "critical",
    "orchestrator/compensation-failed": "critical",
    "processor/panic": "critical",
    "router/timeout": "major",
    "router/retry-exhausted": "major",
    "processor/malformed": "major",
    "api/validation": "minor",
    "payment/latency-slo": "minor",
}


def test_the_cases_below_use_the_shipped_severities() -> None:
    registry = default_registry()
    assert {key: registry.get(key).severity.value for key in SEVERITIES} == SEVERITIES


STRONGEST_CASES = [
    pytest.param(
        ["router/timeout"] * 5 + ["orchestrator/sum"],
        "orchestrator/sum",
        id="critical-beats-a-more-frequent-major",
    ),
    pytest.param(
        ["api/validation"] * 9 + ["router/timeout"],
        "router/timeout",
        id="major-beats-a-more-frequent-minor",
    ),
    pytest.param(
        ["payment/latency-slo"] * 3 + ["orchestrator/compensation-failed"] + ["router/timeout"] * 3,
        "orchestrator/compensation-failed",
        id="critical-beats-all",
    ),
    pytest.param(
        ["router/timeout", "router/retry-exhausted", "router/retry-exhausted"],
        "router/retry-exhausted",
        id="same-severity-most-frequent",
    ),
    pytest.param(
        ["router/timeout", "router/timeout", "processor/malformed", "processor/malformed"],
        "processor/malformed",
        id="same-severity-same-count-first-by-id",
    ),
    pytest.param(
        ["processor/panic", "orchestrator/sum", "orchestrator/compensation-failed"],
        "orchestrator/compensation-failed",
        id="three-criticals-once-each-first-by-id",
    ),
    pytest.param(
        ["payment/latency-slo", "api/validation"],
        "api/validation",
        id="two-minors-first-by-id",
    ),
    pytest.param(
        ["router/timeout", "processor/malformed", "router/timeout", "processor/malformed", "router/timeout"],
        "router/timeout",
        id="interleaved-most-frequent",
    ),
]


@pytest.mark.parametrize(("broken", "expected"), STRONGEST_CASES)
def test_a_payment_with_several_contracts_points_to_the_most_severe_then_most_frequent_then_first_id(
    broken: list[str], expected: str
) -> None:
    # Noise on another payment and request must not change the choice.
    recorded = violations(
        [(contract_id, f"req_{n}", "pay_1") for n, contract_id in enumerate(broken)]
        + [("orchestrator/sum", "req_other", "pay_other")] * 4
    )
    # No category: what the violations point to alone (a category weighs in: see the table below).
    received = complaints([("cmp_1", None, "pay_1", None, None)])

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [("cmp_1", expected, "payment")]


@pytest.mark.parametrize(("broken", "expected"), STRONGEST_CASES)
def test_a_request_with_several_contracts_points_to_the_most_severe_then_most_frequent_then_first_id(
    broken: list[str], expected: str
) -> None:
    recorded = violations(
        [(contract_id, "req_1", None) for contract_id in broken]
        + [("orchestrator/sum", "req_other", None)] * 4
    )
    received = complaints([("cmp_1", None, None, "req_1", None)])

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [("cmp_1", expected, "request")]


def test_the_choice_does_not_depend_on_the_order_of_the_violations() -> None:
    broken = ["router/timeout", "router/timeout", "processor/malformed", "processor/malformed"]
    received = complaints([("cmp_1", None, "pay_1", None, None)])

    for ordered in (broken, list(reversed(broken)), broken[1::2] + broken[::2]):
        recorded = violations([(contract_id, "req_1", "pay_1") for contract_id in ordered])
        assert mapping(map_complaints(received, recorded, taxonomy({}))) == [
            ("cmp_1", "processor/malformed", "payment")
        ]


# --- map_complaints: what the category says against what was recorded ---------------------------

# (the payment's violations, its request's alone, the category) and what the complaint maps to.
CATEGORY_CASES = [
    pytest.param(
        ["api/validation"],
        [],
        "double_charge",
        ("idempotency/key-reused", "category"),
        id="a-corrected-field-does-not-outrank-a-double-charge",
    ),
    pytest.param(
        ["api/validation", "api/validation"],
        [],
        "Wrong-Amount",
        ("orchestrator/sum", "category"),
        id="nor-a-wrong-amount-however-often-recorded",
    ),
    pytest.param(
        ["payment/latency-slo"],
        [],
        "timeout",
        ("router/timeout", "category"),
        id="a-slow-payment-does-not-outrank-a-timeout",
    ),
    pytest.param(
        ["api/validation"],
        [],
        "slow_payment",
        ("payment/latency-slo", "category"),
        id="a-minor-contract-does-not-outrank-another-minor-one-claimed",
    ),
    pytest.param(
        ["api/validation"],
        [],
        "request_rejected",
        ("api/validation", "payment"),
        id="a-minor-contract-the-category-claims-is-confirmed",
    ),
    pytest.param(
        ["router/timeout", "payment/latency-slo"],
        [],
        "slow_payment",
        ("payment/latency-slo", "payment"),
        id="the-claimed-contract-beats-a-more-severe-one",
    ),
    pytest.param(
        ["orchestrator/sum", "router/timeout", "orchestrator/sum"],
        [],
        "timeout",
        ("router/timeout", "payment"),
        id="the-claimed-contract-beats-a-critical-more-frequent-one",
    ),
    pytest.param(
        ["api/validation", "router/retry-exhausted"],
        [],
        "double_charge",
        ("router/retry-exhausted", "payment"),
        id="a-major-contract-recorded-outranks-the-category",
    ),
    pytest.param(
        ["api/validation", "payment/latency-slo"],
        [],
        "double_charge",
        ("idempotency/key-reused", "category"),
        id="only-minor-contracts-recorded",
    ),
    pytest.param(
        ["api/validation"],
        [],
        "rude_support",
        ("api/validation", "payment"),
        id="a-minor-contract-maps-a-category-of-no-contract",
    ),
    pytest.param(
        ["api/validation"],
        [],
        None,
        ("api/validation", "payment"),
        id="a-minor-contract-maps-a-complaint-without-category",
    ),
    pytest.param(
        ["api/validation"],
        ["router/timeout"],
        "double_charge",
        ("router/timeout", "request"),
        id="the-request-speaks-when-the-payments-minor-contract-does-not",
    ),
    pytest.param(
        [],
        ["api/validation"],
        "double_charge",
        ("idempotency/key-reused", "category"),
        id="a-requests-minor-contract-does-not-outrank-the-category-either",
    ),
    pytest.param(
        [],
        ["idempotency/key-reused", "processor/panic"],
        "double_charge",
        ("idempotency/key-reused", "request"),
        id="a-request-confirming-the-category",
    ),
]


@pytest.mark.parametrize(("paid", "requested", "category", "expected"), CATEGORY_CASES)
def test_a_complaint_maps_to_what_its_category_says_unless_its_record_says_more(
    paid: list[str], requested: list[str], category: str | None, expected: tuple[str, str]
) -> None:
    # Noise of another payment and request, and of another merchant's, must not change the choice.
    recorded = pl.concat(
        [
            violations(
                [(contract_id, "req_1", "pay_1") for contract_id in paid]
                + [(contract_id, "req_1", None) for contract_id in requested]
                + [("idempotency/key-reused", "req_other", "pay_other")] * 3
            ),
            violations([("orchestrator/sum", "req_1", "pay_1")], merchant_id="m_globex"),
        ]
    )
    received = complaints([("cmp_1", category, "pay_1", "req_1", None)])

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [("cmp_1", *expected)]


def test_the_category_decides_for_each_complaint_about_the_same_payment() -> None:
    recorded = violations([("api/validation", "req_1", "pay_1"), ("router/timeout", "req_1", "pay_1")])
    received = complaints(
        [
            ("cmp_1", "double_charge", "pay_1", None, None),
            ("cmp_2", "request_rejected", "pay_1", None, None),
            ("cmp_3", "slow_payment", "pay_1", None, None),
            ("cmp_4", None, "pay_1", None, "plan/coverage"),
        ]
    )

    assert mapping(map_complaints(received, recorded, taxonomy({}))) == [
        ("cmp_1", "router/timeout", "payment"),
        ("cmp_2", "api/validation", "payment"),
        ("cmp_3", "router/timeout", "payment"),
        ("cmp_4", "plan/coverage", "explicit"),
    ]


# --- taxonomy ------------------------------------------------------------------------------------


def test_the_default_taxonomy_covers_product_categories_with_registered_contracts() -> None:
    registry = default_registry()
    assert dict(DEFAULT_TAXONOMY) == {
        "timeout": "router/timeout",
        "slow_payment": "payment/latency-slo",
        "double_charge": "idempotency/key-reused",
        "partial_charge": "orchestrator/compensation-failed",
        "wrong_amount": "orchestrator/sum",
        "declined_unexpectedly": "router/retry-exhausted",
        "payment_not_covered": "plan/coverage",
        "request_rejected": "api/validation",
    }
    assert all(contract_id in registry for contract_id in DEFAULT_TAXONOMY.values())


def test_taxonomy_without_configuration_is_a_copy_of_the_defaults() -> None:
    whole = taxonomy({})

    assert whole == dict(DEFAULT_TAXONOMY)
    whole["timeout"] = ContractId("processor/panic")
    assert DEFAULT_TAXONOMY["timeout"] == "router/timeout"


def test_configured_categories_add_to_and_override_the_defaults() -> None:
    configured = {
        "timeout": ContractId("processor/panic"),
        "card_leaked": ContractId("observer/dropped"),
    }

    whole = taxonomy(configured)

    assert whole == {
        **dict(DEFAULT_TAXONOMY),
        "timeout": "processor/panic",
        "card_leaked": "observer/dropped",
    }
    assert len(whole) == len(DEFAULT_TAXONOMY) + 1
    assert DEFAULT_TAXONOMY["timeout"] == "router/timeout"
    assert "card_leaked" not in DEFAULT_TAXONOMY


def test_map_complaints_uses_exactly_the_taxonomy_it_is_given() -> None:
    received = complaints(
        [
            ("cmp_1", "timeout", None, None, None),
            ("cmp_2", "card_leaked", None, None, None),
            ("cmp_3", "wrong_amount", None, None, None),
        ]
    )
    configured = taxonomy(
        {"timeout": ContractId("processor/panic"), "card_leaked": ContractId("observer/dropped")}
    )

    assert mapping(map_complaints(received, violations([]), configured)) == [
        ("cmp_1", "processor/panic", "category"),
        ("cmp_2", "observer/dropped", "category"),
        ("cmp_3", "orchestrator/sum", "category"),
    ]
    # Given only one category, the others are unmapped (the defaults are taxonomy()'s job).
    assert mapping(
        map_complaints(received, violations([]), {"card_leaked": ContractId("observer/dropped")})
    ) == [
        ("cmp_1", "unmapped", "unmapped"),
        ("cmp_2", "observer/dropped", "category"),
        ("cmp_3", "unmapped", "unmapped"),
    ]


def test_a_category_maps_whatever_its_case() -> None:
    received = complaints(
        [("cmp_1", "Timeout", None, None, None), ("cmp_2", "DOUBLE_CHARGE", None, None, None)]
    )
    configured = {
        "timeout": ContractId("router/timeout"),
        "Double_Charge": ContractId("idempotency/key-reused"),
    }

    assert mapping(map_complaints(received, violations([]), configured)) == [
        ("cmp_1", "router/timeout", "category"),
        ("cmp_2", "idempotency/key-reused", "category"),
    ]


# --- the mismatch rule ---------------------------------------------------------------------------


def test_the_default_rule_is_ten_percent_and_one_report() -> None:
    assert (MismatchRule().min_ratio, MismatchRule().min_reports) == (0.1, 1)


def test_products_example_under_the_default_rule() -> None:
    recorded = counted_violations({"router/timeout": 932, "plan/coverage": 41})
    received = complaints(
        [(f"cmp_t{n}", "timeout", None, None, None) for n in range(8)]
        + [(f"cmp_c{n}", "payment_not_covered", None, None, None) for n in range(17)]
    )

    result = run(recorded, received)

    assert result.select("id", "count", "external_reports", "mismatch").rows() == [
        ("router/timeout", 932, 8, False),
        ("plan/coverage", 41, 17, True),
    ]


def test_complaints_about_a_contract_that_recorded_nothing_are_a_mismatch() -> None:
    result = run(counted_violations({"router/timeout": 3}), explicit_complaints({"processor/panic": 1}))

    assert rows_by_id(result) == {
        "router/timeout": (3, 0, False),
        "processor/panic": (0, 1, True),
    }


def test_violations_nobody_complained_about_are_no_mismatch() -> None:
    result = run(counted_violations({"router/timeout": 1, "api/validation": 500}), complaints([]))

    assert rows_by_id(result) == {
        "api/validation": (500, 0, False),
        "router/timeout": (1, 0, False),
    }


@pytest.mark.parametrize(
    ("count", "reports", "mismatch"),
    [
        (10, 1, True),  # 1 == 10 * 0.1: at the threshold
        (11, 1, False),  # 1 < 1.1
        (30, 3, True),  # 3 == 30 * 0.1
        (31, 3, False),
        (60, 6, True),
        (1000, 100, True),
        (1000, 99, False),
        (1, 1, True),
        (0, 1, True),
    ],
)
def test_the_default_rule_at_its_boundary(count: int, reports: int, mismatch: bool) -> None:
    recorded = counted_violations({"router/timeout": count})

    result = run(recorded, explicit_complaints({"router/timeout": reports}))

    assert rows_by_id(result) == {"router/timeout": (count, reports, mismatch)}


@pytest.mark.parametrize(
    ("min_ratio", "count", "reports"),
    [(0.28, 25, 7), (0.14, 50, 7), (0.07, 100, 7), (0.035, 200, 7), (0.275, 200, 55)],
)
def test_complaints_exactly_at_a_configured_ratio_are_a_mismatch(
    min_ratio: float, count: int, reports: int
) -> None:
    # reports / count == min_ratio exactly, though count * min_ratio is a hair above reports in
    # floating point (25 * 0.28 == 7.000000000000001).
    assert Fraction(reports, count) == Fraction(str(min_ratio))
    recorded = counted_violations({"router/timeout": count})
    rule = MismatchRule(min_ratio=min_ratio)

    result = run(recorded, explicit_complaints({"router/timeout": reports}), rule)

    assert rows_by_id(result) == {"router/timeout": (count, reports, True)}


# Each contract: (violations, complaints) and whether it is a mismatch under the default rule and
# under min_ratio 0.5, min_reports 3.
RULE_CASES = {
    "router/timeout": (6, 3, True, True),  # 3 == 6 * 0.5 and 3 == min_reports: at both thresholds
    "router/retry-exhausted": (7, 3, True, False),  # 3 < 7 * 0.5
    "plan/coverage": (4, 2, True, False),  # half of them, but fewer than 3 reports
    "processor/panic": (0, 2, True, False),  # recorded nothing, but fewer than 3 reports
    "processor/malformed": (0, 3, True, True),  # recorded nothing, 3 reports
    "api/validation": (100, 50, True, True),
    "payment/latency-slo": (100, 49, True, False),
    "observer/dropped": (932, 8, False, False),
}


@pytest.mark.parametrize(
    ("rule", "which"),
    [
        pytest.param(MismatchRule(), 2, id="default"),
        pytest.param(MismatchRule(min_ratio=0.5, min_reports=3), 3, id="half-and-three"),
    ],
)
def test_a_configured_rule_moves_the_thresholds(rule: MismatchRule, which: int) -> None:
    recorded = counted_violations({key: case[0] for key, case in RULE_CASES.items()})
    received = explicit_complaints({key: case[1] for key, case in RULE_CASES.items()})

    result = run(recorded, received, rule)

    assert rows_by_id(result) == {key: (case[0], case[1], case[which]) for key, case in RULE_CASES.items()}


def test_a_zero_ratio_makes_any_complained_about_contract_a_mismatch() -> None:
    recorded = counted_violations({"router/timeout": 932, "api/validation": 5})

    result = run(recorded, explicit_complaints({"router/timeout": 1}), MismatchRule(min_ratio=0.0))

    assert rows_by_id(result) == {"router/timeout": (932, 1, True), "api/validation": (5, 0, False)}


# --- retrospective rows --------------------------------------------------------------------------


def test_rows_are_the_most_violated_first_then_the_most_complained_about_then_by_id() -> None:
    recorded = counted_violations(
        {
            "router/timeout": 5,
            "plan/coverage": 5,
            "api/validation": 5,
            "payment/latency-slo": 9,
            "processor/malformed": 1,
        }
    )
    received = explicit_complaints(
        {
            "router/timeout": 2,
            "plan/coverage": 2,
            "processor/panic": 4,
            "orchestrator/sum": 4,
            "processor/malformed": 1,
        }
    )

    result = run(recorded, received)

    assert result.select("id", "count", "external_reports").rows() == [
        ("payment/latency-slo", 9, 0),
        ("plan/coverage", 5, 2),
        ("router/timeout", 5, 2),
        ("api/validation", 5, 0),
        ("processor/malformed", 1, 1),
        ("orchestrator/sum", 0, 4),
        ("processor/panic", 0, 4),
    ]


def test_rows_carry_severity_and_owner_from_the_registry() -> None:
    registry = default_registry()
    recorded = counted_violations({"router/timeout": 2, "api/validation": 1})
    received = explicit_complaints({"orchestrator/sum": 1})

    result = run(recorded, received)

    assert result.columns == ["id", "count", "external_reports", "mismatch", "severity", "owner"]
    assert result.select("id", "severity", "owner").rows() == [
        ("router/timeout", "major", "routing"),
        ("api/validation", "minor", "api-platform"),
        ("orchestrator/sum", "critical", "payments-core"),
    ]
    for row in result.iter_rows(named=True):
        contract = registry.get(row["id"])
        assert (row["severity"], row["owner"]) == (contract.severity.value, contract.owner)


def test_the_registry_not_the_violation_row_gives_a_rows_severity_and_owner() -> None:
    recorded = violations([("router/timeout", "req_1", None)]).with_columns(
        pl.lit("minor").alias("severity"), pl.lit("someone-else").alias("owner")
    )

    result = run(recorded, complaints([]))

    assert result.select("id", "severity", "owner").rows() == [("router/timeout", "major", "routing")]


def test_an_explicit_contract_the_registry_does_not_know_is_a_row_without_severity_or_owner() -> None:
    recorded = counted_violations({"router/timeout": 2})
    received = explicit_complaints({"fraud/chargeback": 1})

    result = run(recorded, received)

    assert result.rows(named=True) == [
        {
            "id": "router/timeout",
            "count": 2,
            "external_reports": 0,
            "mismatch": False,
            "severity": "major",
            "owner": "routing",
        },
        {
            "id": "fraud/chargeback",
            "count": 0,
            "external_reports": 1,
            "mismatch": True,
            "severity": None,
            "owner": None,
        },
    ]


def test_unmapped_complaints_are_counted_but_are_no_row() -> None:
    recorded = counted_violations({"router/timeout": 10})
    received = complaints(
        [
            ("cmp_1", "timeout", None, None, None),
            ("cmp_2", "rude_support", None, None, None),
            ("cmp_3", None, "pay_unknown", "req_unknown", None),
        ]
    )
    mapped = map_complaints(received, recorded, taxonomy({}))

    result = retrospective(recorded, mapped, MismatchRule(), default_registry())

    assert unmapped_count(mapped) == 2
    assert "unmapped" not in result["id"].to_list()
    assert result.select("id", "count", "external_reports", "mismatch").rows() == [
        ("router/timeout", 10, 1, True)
    ]


def test_complaints_mapped_every_way_all_count_for_their_contract() -> None:
    recorded = violations(
        [("router/timeout", "req_1", "pay_1")] * 3 + [("router/timeout", "req_2", None)] * 2
    )
    received = complaints(
        [
            ("cmp_1", None, None, None, "router/timeout"),
            ("cmp_2", None, "pay_1", None, None),
            ("cmp_3", None, None, "req_2", None),
            ("cmp_4", "timeout", None, None, None),
        ]
    )

    mapped = map_complaints(received, recorded, taxonomy({}))
    result = retrospective(recorded, mapped, MismatchRule(), default_registry())

    assert mapped["mapped_by"].to_list() == ["explicit", "payment", "request", "category"]
    assert result.select("id", "count", "external_reports", "mismatch").rows() == [
        ("router/timeout", 5, 4, True)
    ]


def test_the_retrospective_columns_have_stable_types() -> None:
    result = run(counted_violations({"router/timeout": 1}), explicit_complaints({"fraud/x": 1}))

    assert result.schema == pl.Schema(
        {
            "id": pl.String(),
            "count": pl.Int64(),
            "external_reports": pl.Int64(),
            "mismatch": pl.Boolean(),
            "severity": pl.String(),
            "owner": pl.String(),
        }
    )


# --- empty and incomplete inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("violation_schema", "complaint_schema"),
    [
        pytest.param(MINIMAL_VIOLATIONS, MINIMAL_COMPLAINTS, id="minimal-columns"),
        pytest.param(VIOLATION_SCHEMA, COMPLAINT_SCHEMA, id="service-columns"),
    ],
)
def test_no_violations_and_no_complaints_give_an_empty_retrospective(
    violation_schema: dict[str, pl.DataType], complaint_schema: dict[str, pl.DataType]
) -> None:
    recorded = pl.DataFrame(schema=violation_schema)
    received = pl.DataFrame(schema=complaint_schema)

    mapped = map_complaints(received, recorded, taxonomy({}))
    result = retrospective(recorded, mapped, MismatchRule(), default_registry())

    assert mapped.columns == MAPPED_COLUMNS
    assert mapped.height == 0
    assert unmapped_count(mapped) == 0
    assert result.height == 0
    assert result.columns == ["id", "count", "external_reports", "mismatch", "severity", "owner"]


def test_complaints_without_violations_map_by_category_and_explicit_id_only() -> None:
    recorded = pl.DataFrame(schema=MINIMAL_VIOLATIONS)
    received = complaints(
        [
            ("cmp_1", "timeout", "pay_1", "req_1", None),
            ("cmp_2", None, "pay_1", "req_1", "plan/coverage"),
            ("cmp_3", None, "pay_1", "req_1", None),
        ]
    )

    mapped = map_complaints(received, recorded, taxonomy({}))
    result = retrospective(recorded, mapped, MismatchRule(), default_registry())

    assert mapping(mapped) == [
        ("cmp_1", "router/timeout", "category"),
        ("cmp_2", "plan/coverage", "explicit"),
        ("cmp_3", "unmapped", "unmapped"),
    ]
    assert result.select("id", "count", "external_reports", "mismatch").rows() == [
        ("plan/coverage", 0, 1, True),
        ("router/timeout", 0, 1, True),
    ]


def test_violations_without_complaints_are_rows_with_no_reports() -> None:
    recorded = violations([("router/timeout", "req_1", "pay_1"), ("api/validation", "req_2", None)])
    received = pl.DataFrame(schema=COMPLAINT_SCHEMA)

    result = run(recorded, received)

    assert result.select("id", "count", "external_reports", "mismatch").rows() == [
        ("api/validation", 1, 0, False),
        ("router/timeout", 1, 0, False),
    ]


def test_optional_columns_that_are_all_null_are_accepted() -> None:
    # Built from plain rows with no payment, request or contract id at all: polars types those
    # columns Null, as a CSV import with empty optional columns does.
    received = pl.DataFrame(
        {
            "complaint_id": ["cmp_1", "cmp_2"],
            "merchant_id": ["m_acme", "m_acme"],
            "category": ["timeout", None],
            "payment_id": [None, None],
            "request_id": [None, None],
            "contract_id": [None, None],
        }
    )
    recorded = pl.DataFrame(
        {
            "merchant_id": ["m_acme"],
            "contract_id": ["router/timeout"],
            "severity": ["major"],
            "request_id": ["req_1"],
            "payment_id": [None],
        }
    )
    assert received.schema["payment_id"] == pl.Null()

    mapped = map_complaints(received, recorded, taxonomy({}))

    assert mapping(mapped) == [("cmp_1", "router/timeout", "category"), ("cmp_2", "unmapped", "unmapped")]
    assert run(recorded, received).select("id", "count", "external_reports", "mismatch").rows() == [
        ("router/timeout", 1, 1, True)
    ]


def test_complaints_missing_columns_are_refused_naming_them() -> None:
    received = pl.DataFrame(schema=MINIMAL_COMPLAINTS).drop("request_id", "contract_id")

    with pytest.raises(ValueError, match=r"^complaints lack the columns contract_id, request_id$"):
        map_complaints(received, pl.DataFrame(schema=MINIMAL_VIOLATIONS), taxonomy({}))


def test_violations_missing_columns_are_refused_naming_them() -> None:
    recorded = pl.DataFrame(schema=VIOLATION_SCHEMA).drop("severity")

    with pytest.raises(ValueError, match=r"^violations lack the columns severity$"):
        map_complaints(pl.DataFrame(schema=MINIMAL_COMPLAINTS), recorded, taxonomy({}))

    mapped = map_complaints(
        pl.DataFrame(schema=MINIMAL_COMPLAINTS), pl.DataFrame(schema=MINIMAL_VIOLATIONS), taxonomy({})
    )
    with pytest.raises(ValueError, match=r"^violations lack the columns payment_id, severity$"):
        retrospective(recorded.drop("payment_id"), mapped, MismatchRule(), default_registry())


# --- at scale, and against a plain-Python reading of the rules -----------------------------------


def test_row_order_is_the_input_order_for_many_complaints_mapped_every_way() -> None:
    recorded = violations(
        [("router/timeout", f"req_{n}", f"pay_{n}") for n in range(0, 3000, 3)]
        + [("plan/coverage", f"req_{n}", None) for n in range(1, 3000, 3)]
    )
    ids = [f"cmp_{(n * 7919) % 3000:04d}" for n in range(3000)]  # a permutation, not sorted
    received = complaints(
        [(ids[n], "wrong_amount" if n % 2 else "nonsense", f"pay_{n}", f"req_{n}", None) for n in range(3000)]
    )

    mapped = map_complaints(received, recorded, taxonomy({}))

    assert mapped["complaint_id"].to_list() == ids
    assert mapped["mapped_by"].to_list()[:6] == [
        "payment",
        "request",
        "unmapped",
        "payment",
        "request",
        "category",
    ]
    assert mapped["mapped_by"].value_counts().sort("mapped_by").rows() == [
        ("category", 500),
        ("payment", 1000),
        ("request", 1000),
        ("unmapped", 500),
    ]


_RANK = {"critical": 0, "major": 1, "minor": 2}
_KNOWN = ["orchestrator/sum", "processor/panic", "router/timeout", "processor/malformed", "api/validation"]
_CATEGORIES = ["timeout", "wrong_amount", "double_charge", "nonsense"]

_violation_rows = st.lists(
    st.tuples(
        st.sampled_from(_KNOWN),
        st.sampled_from(["req_0", "req_1", "req_2", "req_3"]),
        st.sampled_from([None, "pay_0", "pay_1", "pay_2"]),
    ),
    max_size=25,
)
_complaint_rows = st.lists(
    st.tuples(
        st.sampled_from(_CATEGORIES),
        st.sampled_from([None, "pay_0", "pay_1", "pay_2", "pay_9"]),
        st.sampled_from([None, "req_0", "req_1", "req_9"]),
        st.sampled_from([None, None, None, "plan/coverage", "router/timeout", "fraud/chargeback"]),
    ),
    max_size=25,
)


def _expected_mapping(
    recorded: list[tuple[str, str, str | None]],
    received: list[tuple[str, str | None, str | None, str | None]],
) -> list[tuple[str, str]]:
    registry = default_registry()
    categories = taxonomy({})

    def strongest(contract_ids: list[str], claimed: str | None) -> str | None:
        if claimed in contract_ids:
            return claimed
        # A minor contract is evidence only when the category claims none.
        evidence = [c for c in contract_ids if claimed is None or registry.get(c).severity.value != "minor"]
        if not evidence:
            return None
        return min(
            set(evidence),
            key=lambda c: (_RANK[registry.get(c).severity.value], -evidence.count(c), c),
        )

    out = []
    for category, payment_id, request_id, contract_id in received:
        claimed = categories.get(category)
        paid = [c for c, _, p in recorded if payment_id is not None and p == payment_id]
        by_payment = strongest(paid, claimed)
        by_request = strongest(
            [c for c, r, _ in recorded if request_id is not None and r == request_id], claimed
        )
        if contract_id is not None:
            out.append((contract_id, "explicit"))
        elif by_payment is not None:
            out.append((by_payment, "payment"))
        elif by_request is not None:
            out.append((by_request, "request"))
        elif category in categories:
            out.append((categories[category], "category"))
        else:
            out.append(("unmapped", "unmapped"))
    return out


@settings(max_examples=150)
@given(
    recorded=_violation_rows,
    received=_complaint_rows,
    min_ratio=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 1.5]),
    min_reports=st.integers(min_value=1, max_value=3),
)
def test_mapping_and_retrospective_agree_with_a_plain_reading_of_the_rules(
    recorded: list[tuple[str, str, str | None]],
    received: list[tuple[str, str | None, str | None, str | None]],
    min_ratio: float,
    min_reports: int,
) -> None:
    registry = default_registry()
    violation_frame = violations(recorded)
    complaint_frame = complaints([(f"cmp_{n}", *row) for n, row in enumerate(received)])
    rule = MismatchRule(min_ratio=min_ratio, min_reports=min_reports)

    mapped = map_complaints(complaint_frame, violation_frame, taxonomy({}))
    result = retrospective(violation_frame, mapped, rule, registry)

    expected = _expected_mapping(recorded, received)
    assert mapped.select("mapped_contract", "mapped_by").rows() == expected
    assert unmapped_count(mapped) == sum(way == "unmapped" for _, way in expected)

    counts = Counter(c for c, _, _ in recorded)
    reports = Counter(c for c, way in expected if way != "unmapped")
    ratio = Fraction(str(min_ratio))
    rows = [
        (
            c,
            counts[c],
            reports[c],
            reports[c] >= min_reports and (counts[c] == 0 or reports[c] >= counts[c] * ratio),
            registry.get(c).severity.value if c in registry else None,
            registry.get(c).owner if c in registry else None,
        )
        for c in set(counts) | set(reports)
    ]
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    assert result.rows() == rows


def test_a_category_maps_whatever_its_separators() -> None:
    received = complaints(
        [
            ("cmp_1", "double-charge", None, None, None),
            ("cmp_2", "Double.Charge", None, None, None),
            ("cmp_3", "slow.payment", None, None, None),
            ("cmp_4", "doublecharges", None, None, None),
        ]
    )
    configured = {"slow-payment": ContractId("payment/latency-slo")}

    assert mapping(map_complaints(received, violations([]), taxonomy(configured))) == [
        ("cmp_1", "idempotency/key-reused", "category"),
        ("cmp_2", "idempotency/key-reused", "category"),
        ("cmp_3", "payment/latency-slo", "category"),
        ("cmp_4", "unmapped", "unmapped"),
    ]


def test_a_configured_category_wins_over_a_default_spelled_otherwise() -> None:
    received = complaints([("cmp_1", "timeout", None, None, None)])

    mapped = map_complaints(received, violations([]), taxonomy({"Time-Out": ContractId("observer/dropped")}))

    assert mapping(mapped) == [("cmp_1", "observer/dropped", "category")]
