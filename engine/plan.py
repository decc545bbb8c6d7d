"""The ``PaymentPlan`` aggregate: the ordered steps that together pay one request."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InvalidAmountError, InvalidFieldError, PlanInvariantError
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency, Money, check_minor_units
from engine.types import (
    MerchantId,
    PaymentId,
    ProcessorId,
    RequestId,
    check_count,
    check_identifier,
    check_sequence,
)


@dataclass(frozen=True, slots=True)
class PaymentStep:
    """One leg of a plan: ``amount_cents`` of the total, paid by ``method``.

    ``processor_ids`` is the fallback chain, tried in order. ``max_amount_cents`` is the most
    this leg may ever take (``None``: no limit). Invariant: ``0 < amount_cents <= max``.
    """

    index: int
    method: PaymentMethod
    amount_cents: int
    processor_ids: tuple[ProcessorId, ...]
    max_amount_cents: int | None = None

    def __post_init__(self) -> None:
        check_count("step.index", self.index)
        if not isinstance(self.method, PaymentMethod):
            raise InvalidFieldError("step.method", self.method, "must be a PaymentMethod")
        check_minor_units("step.amount_cents", self.amount_cents)
        if self.amount_cents == 0:
            raise InvalidAmountError("step.amount_cents", self.amount_cents, "must be positive")
        if self.max_amount_cents is not None:
            check_minor_units("step.max_amount_cents", self.max_amount_cents)
            if self.amount_cents > self.max_amount_cents:
                raise PlanInvariantError(
                    "step.amount_cents",
                    self.amount_cents,
                    f"exceeds the step's max_amount_cents {self.max_amount_cents}",
                )
        processors = check_sequence("step.processor_ids", self.processor_ids)
        if not processors:
            raise PlanInvariantError("step.processor_ids", processors, "must name at least one processor")
        for processor in processors:
            check_identifier("step.processor_ids", processor)
        if len(set(processors)) != len(processors):
            raise PlanInvariantError("step.processor_ids", processors, "must not repeat a processor")
        object.__setattr__(self, "processor_ids", processors)

    @property
    def processor_id(self) -> ProcessorId:
        """The preferred processor: the first of the fallback chain."""
        return self.processor_ids[0]


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """The steps that pay ``total_amount_cents``, in execution order.

    Invariants: step ``i`` has index ``i``; every step is within its maximum; the steps never
    add up to more than the total. When they add up to less, the plan records the
    ``coverage_shortfall_cents`` and must not be executed.
    """

    payment_id: PaymentId
    request_id: RequestId
    merchant_id: MerchantId
    total_amount_cents: int
    currency: Currency
    steps: tuple[PaymentStep, ...]
    partial_policy: PartialPolicy = PartialPolicy.ALL_OR_NOTHING

    def __post_init__(self) -> None:
        check_identifier("plan.payment_id", self.payment_id)
        check_identifier("plan.request_id", self.request_id)
        check_identifier("plan.merchant_id", self.merchant_id)
        check_minor_units("plan.total_amount_cents", self.total_amount_cents)
        if self.total_amount_cents == 0:
            raise InvalidAmountError("plan.total_amount_cents", 0, "must be positive")
        if not isinstance(self.currency, Currency):
            raise InvalidFieldError("plan.currency", self.currency, "must be a Currency")
        if not isinstance(self.partial_policy, PartialPolicy):
            raise InvalidFieldError("plan.partial_policy", self.partial_policy, "must be a PartialPolicy")
        steps = check_sequence("plan.steps", self.steps)
        for position, step in enumerate(steps):
            if not isinstance(step, PaymentStep):
                raise PlanInvariantError("plan.steps", step, "must hold PaymentSteps")
            if step.index != position:
                raise PlanInvariantError(
                    f"plan.steps[{position}].index", step.index, f"must be {position}: steps run in order"
                )
        planned = sum(step.amount_cents for step in steps)
        if planned > self.total_amount_cents:
            raise PlanInvariantError(
                "plan.steps",
                planned,
                f"add up to more than the total {self.total_amount_cents}",
            )
        object.__setattr__(self, "steps", steps)

    @property
    def total(self) -> Money:
        return Money(self.total_amount_cents, self.currency)

    @property
    def planned_amount_cents(self) -> int:
        planned = 0  # a loop: every payment asks, and sum() over a generator costs a frame more
        for step in self.steps:
            planned += step.amount_cents
        return planned

    @property
    def coverage_shortfall_cents(self) -> int:
        """What the steps leave uncovered; zero for an executable plan."""
        return self.total_amount_cents - self.planned_amount_cents

    @property
    def fully_covered(self) -> bool:
        return self.coverage_shortfall_cents == 0

    def idempotency_key(self, step_index: int) -> str:
        """The processor idempotency key of a step: stable across retries at one processor."""
        check_count("step_index", step_index, maximum=len(self.steps) - 1)
        return processor_idempotency_key(self.payment_id, step_index)


def processor_idempotency_key(payment_id: PaymentId, step_index: int) -> str:
    """Derived from the payment and the step only, so every retry reuses it."""
    check_identifier("payment_id", payment_id)
    check_count("step_index", step_index)
    return step_idempotency_key(payment_id, step_index)


def step_idempotency_key(payment_id: PaymentId, step_index: int) -> str:
    """:func:`processor_idempotency_key` of ids already checked (a context's payment id, a plan
    step's index), as the router derives one for every step, without checking them again."""
    return f"{payment_id}:step:{step_index}"
