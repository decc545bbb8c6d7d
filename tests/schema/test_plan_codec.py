"""Payment plans survive domain -> proto -> bytes -> proto -> domain unchanged."""

from __future__ import annotations

from hypothesis import given
from payments.plan.v1 import plan_pb2

from engine.plan import PaymentPlan
from ingest.codec.plan import plan_from_proto, plan_to_proto
from tests.strategies import payment_plans


@given(payment_plans())
def test_plan_round_trips_through_bytes(plan: PaymentPlan) -> None:
    wire = plan_to_proto(plan).SerializeToString()
    assert plan_from_proto(plan_pb2.PaymentPlan.FromString(wire)) == plan


@given(payment_plans())
def test_step_cap_is_absent_exactly_when_the_domain_has_none(plan: PaymentPlan) -> None:
    message = plan_to_proto(plan)
    for step, wire_step in zip(plan.steps, message.steps, strict=True):
        assert wire_step.HasField("max_amount_cents") is (step.max_amount_cents is not None)
