from datetime import UTC, datetime

import pytest

from engine.contracts import Contract, ContractRegistry, ContractViolation, Severity, default_registry
from engine.errors import ConfigError, InvalidFieldError, UnknownContractError
from engine.types import ContractId, RequestId

NOW = datetime(2026, 11, 26, tzinfo=UTC)
REQUIRED = {
    "api/validation",
    "plan/coverage",
    "orchestrator/sum",
    "router/timeout",
    "router/retry-exhausted",
    "processor/panic",
    "processor/malformed",
    "idempotency/key-reused",
    "payment/latency-slo",
    "observer/dropped",
}


def test_the_registry_lists_every_contract_product_names() -> None:
    registry = default_registry()
    assert set(registry.ids()) >= REQUIRED
    for contract in registry:
        assert contract.severity in set(Severity)
        assert contract.owner
        assert contract.description


def test_a_violation_takes_severity_and_owner_from_the_registry() -> None:
    violation = default_registry().violation(
        "orchestrator/sum", request_id=RequestId("req_1"), message="sums differ", timestamp=NOW
    )
    assert violation.severity is Severity.CRITICAL
    assert violation.owner == "payments-core"
    assert violation.payment_id is None


def test_an_unknown_contract_id_is_refused() -> None:
    with pytest.raises(UnknownContractError, match="contract_id='router/slow'"):
        default_registry().violation("router/slow", request_id=RequestId("r"), message="m", timestamp=NOW)
    assert "router/slow" not in default_registry()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not toml [", "is not valid TOML"),
        ("x = 1", "contract"),
        ('[[contract]]\nid = "a/b"\nseverity = "major"', "missing"),
        (
            '[[contract]]\nid = "a/b"\nseverity = "huge"\nowner = "t"\ndescription = "d"',
            r"contract\[0\].severity='huge'",
        ),
        (
            '[[contract]]\nid = "A B"\nseverity = "major"\nowner = "t"\ndescription = "d"',
            r"contract\[0\].id='A B'",
        ),
        (
            '[[contract]]\nid = "a/b"\nseverity = "major"\nowner = "t"\ndescription = "d"\n' * 2,
            "listed twice",
        ),
    ],
)
def test_a_bad_registry_file_names_the_entry_and_field(text: str, match: str) -> None:
    with pytest.raises((ConfigError, InvalidFieldError), match=match):
        ContractRegistry.from_toml(text)


def test_violations_check_their_fields() -> None:
    with pytest.raises(InvalidFieldError, match="violation.severity='critical'"):
        ContractViolation(ContractId("a/b"), RequestId("r"), "critical", "m", "team", NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidFieldError, match="contract.owner='Payments Core'"):
        Contract(ContractId("a/b"), Severity.MAJOR, "Payments Core", "d")
