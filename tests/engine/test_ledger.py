"""The shared ledger: one charge per (processor, key), refunds once, double charges visible."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import DomainError
from engine.ledger import DoubleChargeError, Ledger, LedgerEntry
from engine.types import PaymentId, ProcessorId

A = ProcessorId("sim_a")
B = ProcessorId("sim_b")
PAY = PaymentId("pay_1")


def charge(
    ledger: Ledger,
    processor: ProcessorId = A,
    key: str = "pay_1:0",
    *,
    payment: PaymentId = PAY,
    step: int = 0,
    amount: int = 1000,
) -> LedgerEntry:
    return ledger.record_charge(
        processor,
        key,
        payment_id=payment,
        step_index=step,
        amount_cents=amount,
        currency="USD",
        reference=f"ref_{processor}_{key}",
    )


def test_a_charge_is_recorded_and_looked_up() -> None:
    ledger = Ledger()
    entry = charge(ledger)
    assert ledger.lookup(A, "pay_1:0") == entry
    assert entry.amount_cents == 1000
    assert entry.currency == "USD"
    assert entry.reference == "ref_sim_a_pay_1:0"
    assert not entry.refunded
    assert entry.refunded_cents == 0
    assert ledger.lookup(B, "pay_1:0") is None
    assert ledger.lookup(A, "other") is None
    assert ledger.held_cents(PAY) == 1000
    assert ledger.entries() == [entry]
    assert len(ledger.entries()) == 1


def test_charging_the_same_key_twice_at_one_processor_is_a_double_charge_error() -> None:
    ledger = Ledger()
    charge(ledger)
    with pytest.raises(DoubleChargeError) as caught:
        charge(ledger)
    assert isinstance(caught.value, DomainError)
    assert len(ledger.entries()) == 1
    ledger.record_refund(A, "pay_1:0")
    with pytest.raises(DoubleChargeError):
        charge(ledger)  # a refunded key is still used: a processor replays, never recharges


def test_the_same_key_at_two_processors_is_two_charges_and_a_double_charged_step() -> None:
    ledger = Ledger()
    charge(ledger, A)
    assert ledger.double_charged_steps() == []
    charge(ledger, B)
    assert ledger.double_charged_steps() == [(PAY, 0)]
    assert [e.processor_id for e in ledger.charges_for_step(PAY, 0)] == [A, B]
    assert ledger.held_cents(PAY) == 2000
    assert ledger.record_refund(B, "pay_1:0") == 1000
    assert ledger.double_charged_steps() == []
    assert [e.processor_id for e in ledger.charges_for_step(PAY, 0)] == [A]
    assert ledger.held_cents(PAY) == 1000


def test_charges_of_other_steps_and_payments_are_kept_apart() -> None:
    ledger = Ledger()
    charge(ledger, A, "pay_1:0", step=0)
    charge(ledger, A, "pay_1:1", step=1, amount=500)
    charge(ledger, B, "pay_2:0", payment=PaymentId("pay_2"), amount=70)
    assert ledger.double_charged_steps() == []
    assert len(ledger.charges_for_step(PAY, 1)) == 1
    assert ledger.charges_for_step(PAY, 7) == []
    assert ledger.held_cents(PAY) == 1500
    assert ledger.held_cents(PaymentId("pay_2")) == 70
    assert ledger.held_cents(PaymentId("pay_none")) == 0


def test_a_refund_refunds_once() -> None:
    ledger = Ledger()
    charge(ledger)
    assert ledger.record_refund(A, "pay_1:0") == 1000
    assert ledger.record_refund(A, "pay_1:0") == 0
    entry = ledger.lookup(A, "pay_1:0")
    assert entry is not None
    assert entry.refunded
    assert entry.refunded_cents == 1000
    assert entry.held_cents == 0
    assert ledger.held_cents(PAY) == 0
    assert ledger.charges_for_step(PAY, 0) == []


def test_refunding_a_key_never_charged_refunds_nothing() -> None:
    ledger = Ledger()
    assert ledger.record_refund(A, "never") == 0
    assert ledger.entries() == []


def test_a_capped_refund_refunds_up_to_the_cap_once() -> None:
    ledger = Ledger()
    charge(ledger)
    assert ledger.record_refund(A, "pay_1:0", up_to=0) == 0
    assert ledger.charges_for_step(PAY, 0) != []
    assert ledger.record_refund(A, "pay_1:0", up_to=400) == 400
    assert ledger.record_refund(A, "pay_1:0", up_to=400) == 0
    assert ledger.held_cents(PAY) == 600
    assert ledger.charges_for_step(PAY, 0) == []
    assert ledger.record_refund(B, "pay_1:0", up_to=5000) == 0


def test_bad_amounts_are_domain_errors() -> None:
    ledger = Ledger()
    with pytest.raises(DomainError):
        charge(ledger, amount=-1)
    assert ledger.entries() == []


@pytest.mark.parametrize(
    ("amount", "step", "field"),
    [
        (True, 0, "ledger.amount_cents"),
        (10.0, 0, "ledger.amount_cents"),
        (2**63, 0, "ledger.amount_cents"),
        (1000, -1, "ledger.step_index"),
        (1000, False, "ledger.step_index"),
        (1000, 2**32, "ledger.step_index"),
    ],
)
def test_a_charge_of_a_value_out_of_range_names_the_field_and_records_nothing(
    amount: object, step: object, field: str
) -> None:
    # A charge tests its values inline before calling the checks: the edges stay refused.
    ledger = Ledger()
    with pytest.raises(DomainError, match=field):
        charge(ledger, amount=amount, step=step)  # type: ignore[arg-type]
    assert (ledger.entries(), ledger.held_cents(PAY), ledger.charges_for_step(PAY, 0)) == ([], 0, [])
    assert charge(ledger, amount=0, step=2**32 - 1).amount_cents == 0  # the largest and smallest allowed


@dataclass
class _Model:
    amount: int
    payment: PaymentId
    step: int
    refunded_cents: int = 0
    refunded: bool = False


operations = st.lists(
    st.tuples(
        st.sampled_from(["charge", "refund"]),
        st.sampled_from([A, B]),
        st.integers(min_value=0, max_value=5),  # key index: payment = index // 3, step = index % 3
        st.integers(min_value=0, max_value=3000),  # amount to charge, or refund cap (0: none)
    ),
    max_size=60,
)


@given(operations)
def test_the_ledger_agrees_with_a_model_and_holds_one_charge_per_processor_and_key(
    ops: list[tuple[str, ProcessorId, int, int]],
) -> None:
    ledger = Ledger()
    model: dict[tuple[ProcessorId, str], _Model] = {}
    for op, processor, index, amount in ops:
        key = f"k{index}"
        payment, step = PaymentId(f"pay_{index // 3}"), index % 3
        held = model.get((processor, key))
        if op == "charge":
            if held is not None:
                with pytest.raises(DoubleChargeError):
                    charge(ledger, processor, key, payment=payment, step=step, amount=amount + 1)
            else:
                charge(ledger, processor, key, payment=payment, step=step, amount=amount + 1)
                model[processor, key] = _Model(amount + 1, payment, step)
        else:
            cap = amount or None
            expected = 0
            if held is not None and not held.refunded:
                expected = held.amount if cap is None else min(held.amount, cap)
                held.refunded, held.refunded_cents = True, expected
            assert ledger.record_refund(processor, key, up_to=cap) == expected
        # Invariants, after every operation.
        assert len(ledger.entries()) == len(model)
        assert len({(e.processor_id, e.idempotency_key) for e in ledger.entries()}) == len(model)
        open_per_step: dict[tuple[PaymentId, int], int] = {}
        for m in model.values():
            if not m.refunded:
                open_per_step[m.payment, m.step] = open_per_step.get((m.payment, m.step), 0) + 1
        for (pay, stp), count in open_per_step.items():
            assert len(ledger.charges_for_step(pay, stp)) == count
        assert sorted(ledger.double_charged_steps()) == sorted(s for s, n in open_per_step.items() if n > 1)
        for pay in {m.payment for m in model.values()}:
            expected_held = sum(m.amount - m.refunded_cents for m in model.values() if m.payment == pay)
            assert ledger.held_cents(pay) == expected_held
        for entry in ledger.entries():
            assert 0 <= entry.refunded_cents <= entry.amount_cents
