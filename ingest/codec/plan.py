"""``PaymentPlan`` <-> ``payments.plan.v1.PaymentPlan``."""

from __future__ import annotations

from payments.plan.v1 import plan_pb2

from engine.plan import PaymentPlan, PaymentStep
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.codec.enums import PARTIAL_POLICIES, PAYMENT_METHODS
from ingest.codec.wire import currency_from_proto, encoding


def plan_to_proto(plan: PaymentPlan) -> plan_pb2.PaymentPlan:
    with encoding("plan"):
        return plan_pb2.PaymentPlan(
            payment_id=plan.payment_id,
            request_id=plan.request_id,
            merchant_id=plan.merchant_id,
            total_amount_cents=plan.total_amount_cents,
            currency=plan.currency.code,
            steps=[step_to_proto(step) for step in plan.steps],
            partial_policy=PARTIAL_POLICIES.to_wire(plan.partial_policy),
        )


def step_to_proto(step: PaymentStep) -> plan_pb2.PaymentStep:
    with encoding("step"):
        return plan_pb2.PaymentStep(
            index=step.index,
            method=PAYMENT_METHODS.to_wire(step.method),
            amount_cents=step.amount_cents,
            processor_ids=step.processor_ids,
            max_amount_cents=step.max_amount_cents,
        )


def plan_from_proto(message: plan_pb2.PaymentPlan) -> PaymentPlan:
    """The domain plan; every invariant of :class:`PaymentPlan` is checked again."""
    return PaymentPlan(
        payment_id=PaymentId(message.payment_id),
        request_id=RequestId(message.request_id),
        merchant_id=MerchantId(message.merchant_id),
        total_amount_cents=message.total_amount_cents,
        currency=currency_from_proto("plan.currency", message.currency),
        steps=tuple(step_from_proto(step) for step in message.steps),
        partial_policy=PARTIAL_POLICIES.from_wire("plan.partial_policy", message.partial_policy),
    )


def step_from_proto(message: plan_pb2.PaymentStep) -> PaymentStep:
    return PaymentStep(
        index=message.index,
        method=PAYMENT_METHODS.from_wire("step.method", message.method),
        amount_cents=message.amount_cents,
        processor_ids=tuple(ProcessorId(processor) for processor in message.processor_ids),
        max_amount_cents=message.max_amount_cents if message.HasField("max_amount_cents") else None,
    )
