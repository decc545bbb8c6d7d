"""Which category of the taxonomy a complaint's category names (engine.complaints)."""

from __future__ import annotations

import pytest

from engine.complaints import DEFAULT_TAXONOMY, taxonomy_category


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        ("double_charge", "double_charge"),
        ("Double-Charge", "double_charge"),
        ("double charge", "double_charge"),
        ("TIMEOUTS", "timeout"),
        ("wrong amounts", "wrong_amount"),
        ("mystery", None),
        ("s", None),  # nothing left once the plural's ending is dropped
        ("timeoutss", None),  # one plural ending, not every trailing s
    ],
)
def test_a_category_names_the_taxonomys_whatever_its_spelling(given: str, taken: str | None) -> None:
    assert taxonomy_category(given, DEFAULT_TAXONOMY) == taken


def test_a_configured_spelling_of_a_category_is_the_one_taken() -> None:
    assert taxonomy_category("timeouts", [*DEFAULT_TAXONOMY, "Timeout"]) == "Timeout"
