"""Bad input to any domain constructor is a DomainError naming the field, never a bare error."""

import ast
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import config, contracts, events, plan, results
from engine.context import CoreRequestContext
from engine.error_codes import ErrorCode
from engine.errors import DomainError
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency, Money
from engine.types import MerchantId, ProcessorId
from engine.validation import IssueSeverity, ValidationIssue

ENGINE = Path(__file__).resolve().parents[2] / "engine"
NOW = datetime(2026, 11, 26, tzinfo=UTC)
USD = Currency("USD")
ISSUE = ValidationIssue("currency", "defaulted", "m", IssueSeverity.WARNING)
STEP = plan.PaymentStep(0, PaymentMethod.CARD, 100, (ProcessorId("stripe_sim"),))
RESULT = results.Result(0, PaymentMethod.CARD, ProcessorId("stripe_sim"), True, 100, 1, 1)
RULE = config.RoutingRule(PaymentMethod.CARD, (ProcessorId("stripe_sim"),))
MERCHANT = config.MerchantConfig(MerchantId("m_acme"), ("sk_1",), USD, (RULE,))
PROCESSOR = config.ProcessorConfig(ProcessorId("stripe_sim"), config.ProcessorKind.SIMULATED)
IDS = {"payment_id": "pay_1", "request_id": "req_1", "merchant_id": "m_acme", "timestamp": NOW}
STEP_IDS = {**IDS, "step_index": 0, "processor_id": "stripe_sim"}

#: One valid set of arguments per domain type; the fuzz test replaces fields with junk.
VALID: dict[type[Any], dict[str, Any]] = {
    Money: {"minor": 100, "currency": USD},
    Currency: {"code": "USD"},
    ValidationIssue: {
        "field": "amount",
        "code": "c",
        "message": "m",
        "severity": IssueSeverity.WARNING,
        "raw": "r",
    },
    CoreRequestContext: {
        "merchant_id": "m_acme",
        "request_id": "req_1",
        "payment_id": "pay_1",
        "amount_cents": 100,
        "currency": USD,
        "payment_method": PaymentMethod.CARD,
        "idempotency_key": "k",
        "metadata": {"a": "b"},
        "validation_errors": (ISSUE,),
    },
    plan.PaymentStep: {
        "index": 0,
        "method": PaymentMethod.CARD,
        "amount_cents": 100,
        "processor_ids": ("stripe_sim",),
        "max_amount_cents": 200,
    },
    plan.PaymentPlan: {
        "payment_id": "pay_1",
        "request_id": "req_1",
        "merchant_id": "m_acme",
        "total_amount_cents": 100,
        "currency": USD,
        "steps": (STEP,),
        "partial_policy": PartialPolicy.ALLOW_PARTIAL,
    },
    results.Result: {
        "step_index": 0,
        "method": PaymentMethod.CARD,
        "processor_id": "stripe_sim",
        "success": True,
        "amount_processed": 100,
        "latency_ms": 1,
        "attempts": 1,
        "error_code": None,
        "compensated": False,
    },
    results.CompositeResult: {
        "payment_id": "pay_1",
        "request_id": "req_1",
        "merchant_id": "m_acme",
        "status": results.PaymentStatus.SUCCEEDED,
        "currency": USD,
        "total_amount": 100,
        "step_results": (RESULT,),
        "final_error": None,
        "validation_errors": (ISSUE,),
    },
    events.PaymentReceived: {
        **IDS,
        "accepted": True,
        "amount_cents": 1,
        "currency": USD,
        "validation_issues": (),
    },
    events.PlannedStep: {
        "index": 0,
        "method": PaymentMethod.CARD,
        "amount_cents": 1,
        "processor_ids": ("a",),
    },
    events.PlanBuilt: {
        **IDS,
        "total_amount_cents": 1,
        "currency": USD,
        "steps": (),
        "coverage_shortfall_cents": 1,
        "partial_policy": PartialPolicy.ALLOW_PARTIAL,
    },
    events.StepAttempted: {
        **STEP_IDS,
        "attempt": 1,
        "method": PaymentMethod.CARD,
        "amount_cents": 1,
        "idempotency_key": "pay_1:step:0",
    },
    events.StepSucceeded: {**STEP_IDS, "latency_ms": 1, "amount": 1, "attempt": 1},
    events.StepFailed: {
        **STEP_IDS,
        "error_code": ErrorCode.TIMEOUT,
        "retryable": True,
        "latency_ms": 1,
        "attempt": 1,
    },
    events.CompensationIssued: {**STEP_IDS, "amount": 1, "succeeded": True, "error_code": None},
    events.PaymentCompleted: {**IDS, "total_amount": 1, "total_processed": 1},
    events.PaymentFailed: {**IDS, "total_amount": 1, "final_error": ErrorCode.DECLINED, "total_processed": 0},
    contracts.Contract: {
        "id": "a/b",
        "severity": contracts.Severity.MAJOR,
        "owner": "team",
        "description": "d",
    },
    contracts.ContractViolation: {
        "contract_id": "a/b",
        "request_id": "r",
        "severity": contracts.Severity.MAJOR,
        "message": "m",
        "owner": "team",
        "timestamp": NOW,
        "payment_id": "p",
        "merchant_id": "m",
    },
    config.RetryPolicy: {"max_attempts": 3, "base_delay_ms": 20, "max_delay_ms": 200},
    config.ComplaintLimits: {"per_minute": 600, "per_day": 10_000},
    config.RoutingRule: {"method": PaymentMethod.CARD, "processors": ("a",), "max_amount_cents": 5},
    config.MerchantConfig: {
        "merchant_id": "m_acme",
        "api_keys": ("sk_1",),
        "default_currency": USD,
        "routing": (RULE,),
        "partial_policy": PartialPolicy.ALL_OR_NOTHING,
        "max_amount_cents": 10,
        "timeout_ms": 10,
        "retry": config.RetryPolicy(),
        "latency_slo_ms": 100,
    },
    config.LatencyProfile: {"p50_ms": 1.0, "p99_ms": 2.0},
    config.FaultRates: {
        "declined": 0.1,
        "timeout": 0.1,
        "network_failure": 0.1,
        "panic": 0.1,
        "malformed": 0.1,
    },
    config.ProcessorConfig: {
        "id": "stripe_sim",
        "kind": config.ProcessorKind.STRIPE,
        "seed": 1,
        "latency": config.LatencyProfile(),
        "fault_rates": config.FaultRates(),
        "api_key_env": "STRIPE_API_KEY",
        "api_base": "http://127.0.0.1:1",
    },
    config.EscalationConfig: {"webhook_url": "http://127.0.0.1:9000/hooks", "max_attempts": 5},
    config.MismatchRule: {"min_ratio": 0.1, "min_reports": 1},
    config.ReportConfig: {"every_days": 14, "mismatch": config.MismatchRule()},
    config.StoreConfig: {
        "max_rows": 5000,
        "max_wait_ms": 0,
        "admit_limit": 20_000,
        "memory_limit_mb": 0,
        "idempotency_hot_s": 600,
        "admin_reads": 2,
        "admin_read_idle_s": 30,
        "admin_read_max_s": 300,
        "fair_share_percent": 50,
        "memory_limit": None,
    },
    config.PlatformConfig: {
        "merchants": (MERCHANT,),
        "processors": (PROCESSOR,),
        "admin_api_keys": ("adm_1",),
        "complaint_taxonomy": {"timeout": "router/timeout"},
        "escalations": config.EscalationConfig(),
        "reports": config.ReportConfig(),
        "store": config.StoreConfig(),
    },
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=5),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.dictionaries(
        st.one_of(st.text(max_size=3), st.integers()),
        st.one_of(st.integers(), st.text(max_size=3)),
        max_size=3,
    ),
    st.datetimes(),
    st.sampled_from(
        [USD, PaymentMethod.CARD, ErrorCode.UNKNOWN, ISSUE, STEP, RESULT, RULE, MERCHANT, object()]
    ),
)


def test_every_domain_type_is_covered_by_the_fuzz_table() -> None:
    modules = (config, contracts, events, plan, results)
    public = {
        obj
        for module in modules
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
    }
    public -= {events.DomainEvent}
    assert public <= set(VALID), sorted(cls.__name__ for cls in public - set(VALID))
    for cls, kwargs in VALID.items():
        cls(**kwargs)  # the table itself holds valid values


@pytest.mark.parametrize("cls", list(VALID), ids=lambda cls: cls.__name__)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_junk_in_any_field_is_a_domain_error_naming_that_field(cls: type[Any], data: st.DataObject) -> None:
    kwargs = dict(VALID[cls])
    field = data.draw(st.sampled_from(sorted(kwargs)), label="field")
    kwargs[field] = data.draw(junk, label="value")
    try:
        cls(**kwargs)
    except DomainError as error:
        assert error.reason
        assert str(error)
    # any other exception fails the test: it would reach a caller as a bare error


def test_the_engine_never_raises_bare_builtin_errors() -> None:
    forbidden = {"Exception", "ValueError", "KeyError", "TypeError", "RuntimeError", "AssertionError"}
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id in forbidden:
                    offenders.append(f"{path.name}:{node.lineno} raises {target.id}")
    assert offenders == []
