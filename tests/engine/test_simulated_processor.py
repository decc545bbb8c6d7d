"""The simulated processor: deterministic per seed and key, faithful to its fault rates and test cards,
idempotent per key, and never charging twice what the ledger holds."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import FaultRates, LatencyProfile, ProcessorConfig, ProcessorKind
from engine.error_codes import ErrorCode
from engine.errors import ConfigError
from engine.ledger import Ledger
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.processor import ChargeRequest, Processor, ProcessorResponse, RefundRequest, Settlement
from engine.processors import SimulatedPanic, SimulatedProcessor
from engine.processors.simulated import HANG_SECONDS, KEY_TTL_S
from engine.types import PaymentId, ProcessorId
from tests.engine.fakes import ManualClock

USD = Currency("USD")
EUR = Currency("EUR")
NO_LATENCY = LatencyProfile(0.0, 0.0)


class FakeSleeper:
    """Records every requested sleep and returns at once, except that a hang never ends."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds >= HANG_SECONDS:
            await asyncio.Event().wait()


class Hung(Exception):  # noqa: N818 - a test signal, not an error
    """Raised by :class:`HangRaisingSleeper` where the processor would hang."""


class HangRaisingSleeper(FakeSleeper):
    """Like :class:`FakeSleeper`, but a hang ends at once by raising :class:`Hung`."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds >= HANG_SECONDS:
            raise Hung


def make(
    *,
    seed: int = 7,
    faults: FaultRates | None = None,
    latency: LatencyProfile = NO_LATENCY,
    ledger: Ledger | None = None,
    sleeper: FakeSleeper | None = None,
    processor_id: str = "sim_a",
    clock: ManualClock | None = None,
) -> SimulatedProcessor:
    config = ProcessorConfig(
        ProcessorId(processor_id),
        ProcessorKind.SIMULATED,
        seed=seed,
        latency=latency,
        fault_rates=faults or FaultRates(),
    )
    ledger = ledger if ledger is not None else Ledger()
    return SimulatedProcessor(config, ledger, sleeper if sleeper is not None else FakeSleeper(), clock)


def request(
    key: str = "pay_1:0",
    *,
    amount: int = 1000,
    currency: Currency = USD,
    method: PaymentMethod = PaymentMethod.CARD,
    card: str | None = None,
    step: int = 0,
) -> ChargeRequest:
    metadata = {} if card is None else {"card_number": card}
    payment = PaymentId(key.split(":", maxsplit=1)[0])
    return ChargeRequest(payment, step, key, amount, currency, method, metadata)


def refund(key: str = "pay_1:0", amount: int = 1000) -> RefundRequest:
    return RefundRequest(PaymentId(key.split(":", maxsplit=1)[0]), 0, key, amount, USD)


async def outcome(processor: SimulatedProcessor, charge: ChargeRequest) -> str:
    """One charge as a comparable string (the processor must use a HangRaisingSleeper)."""
    try:
        answer: object = await processor.charge(charge)
    except SimulatedPanic:
        return "panic"
    except Hung:
        return "timeout"
    if not isinstance(answer, ProcessorResponse):
        return "malformed"
    if answer.success:
        return f"success {answer.reference} {answer.latency_ms}"
    return f"{answer.error_code} {answer.decline_code} {answer.latency_ms}"


CHAOS = FaultRates(declined=0.2, timeout=0.1, network_failure=0.1, panic=0.05, malformed=0.05)
LATENCY = LatencyProfile(80.0, 400.0)


def test_the_simulated_processor_is_a_processor() -> None:
    processor: Processor = make()
    assert processor.processor_id == "sim_a"


def test_only_a_simulated_config_builds_one() -> None:
    config = ProcessorConfig(ProcessorId("live"), ProcessorKind.STRIPE, api_key_env="STRIPE_API_KEY")
    with pytest.raises(ConfigError):
        SimulatedProcessor(config, Ledger(), FakeSleeper())


async def test_the_same_seed_gives_the_same_outcomes_whatever_the_order_or_concurrency() -> None:
    keys = [f"pay_{i}:0" for i in range(300)]
    forward = make(faults=CHAOS, latency=LATENCY, sleeper=HangRaisingSleeper())
    backward = make(faults=CHAOS, latency=LATENCY, sleeper=HangRaisingSleeper())
    together = make(faults=CHAOS, latency=LATENCY, sleeper=HangRaisingSleeper())
    # Two attempts per key: the second is a replay or a fresh draw, depending on the first.
    first = {key: await outcome(forward, request(key)) for key in keys}
    second = {key: await outcome(forward, request(key)) for key in keys}
    assert {key: await outcome(backward, request(key)) for key in reversed(keys)} == first
    assert {key: await outcome(backward, request(key)) for key in reversed(keys)} == second
    answers = await asyncio.gather(*(outcome(together, request(key)) for key in keys))
    assert dict(zip(keys, answers, strict=True)) == first
    kinds = Counter(answer.split()[0] for answer in first.values())
    assert set(kinds) == {"success", "declined", "timeout", "network_failure", "panic", "malformed"}


async def test_a_different_seed_gives_a_different_sequence() -> None:
    keys = [f"pay_{i}:0" for i in range(200)]
    one = make(seed=1, faults=CHAOS, latency=LATENCY, sleeper=HangRaisingSleeper())
    two = make(seed=2, faults=CHAOS, latency=LATENCY, sleeper=HangRaisingSleeper())
    first = [await outcome(one, request(key)) for key in keys]
    other = [await outcome(two, request(key)) for key in keys]
    assert first != other
    assert sum(a != b for a, b in zip(first, other, strict=True)) > len(keys) // 2


TEST_CARDS = [
    ("4242424242424242", None, None),
    ("4000000000000002", ErrorCode.DECLINED, "generic_decline"),
    ("4000000000009995", ErrorCode.DECLINED, "insufficient_funds"),
    ("4000000000009987", ErrorCode.DECLINED, "lost_card"),
    ("4000000000009979", ErrorCode.DECLINED, "stolen_card"),
    ("4000000000000069", ErrorCode.INVALID_CARD, "expired_card"),
    ("4000000000000127", ErrorCode.INVALID_CARD, "incorrect_cvc"),
    ("4242424242424241", ErrorCode.INVALID_CARD, "incorrect_number"),
    ("4000000000000119", ErrorCode.PROCESSING_ERROR, "processing_error"),
]


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize(("number", "code", "decline_code"), TEST_CARDS, ids=[c[0] for c in TEST_CARDS])
async def test_a_test_card_decides_the_outcome_before_the_fault_rates(
    number: str, code: ErrorCode | None, decline_code: str | None, masked: bool
) -> None:
    card = f"{number[:6]}******{number[-4:]}" if masked else number
    ledger = Ledger()
    processor = make(faults=FaultRates(network_failure=1.0), ledger=ledger)
    answer = await processor.charge(request(card=card))
    replay = await processor.charge(request(card=card))
    assert answer.error_code is code
    assert answer.decline_code == decline_code
    assert replay.error_code is code
    if code is None:
        assert answer.success
        assert answer.amount_cents == 1000
        assert replay.reference == answer.reference
        assert [e.reference for e in ledger.entries()] == [answer.reference]
    else:
        assert ledger.entries() == []
    assert processor.charge_attempts == 2


async def test_a_processing_error_card_is_not_cached_and_keeps_failing() -> None:
    processor = make()
    answers = [await processor.charge(request(card="4000000000000119")) for _ in range(3)]
    assert [a.error_code for a in answers] == [ErrorCode.PROCESSING_ERROR] * 3
    # Not cached: the same key with a good card is a new attempt that succeeds.
    assert (await processor.charge(request(card="4242424242424242"))).success


@pytest.mark.parametrize("card", ["5555555555554444", "not a card", "", "4000 0000 0000 9995"])
async def test_unknown_card_numbers_succeed_and_spaces_are_ignored(card: str) -> None:
    answer = await make(faults=FaultRates(declined=1.0)).charge(request(card=card))
    if card == "4000 0000 0000 9995":
        assert answer.decline_code == "insufficient_funds"
    else:
        assert answer.success


async def test_a_card_number_on_another_method_is_ignored() -> None:
    processor = make(faults=FaultRates(declined=1.0))
    answer = await processor.charge(request(method=PaymentMethod.APPLE_PAY, card="4242424242424242"))
    assert answer.error_code is ErrorCode.DECLINED
    assert answer.decline_code == "generic_decline"


async def test_fault_rates_come_out_at_their_frequencies() -> None:
    faults = FaultRates(declined=0.3, timeout=0.1, network_failure=0.1, panic=0.05, malformed=0.05)
    processor = make(seed=2026, faults=faults, sleeper=HangRaisingSleeper())
    n = 4000
    kinds = Counter([(await outcome(processor, request(f"pay_{i}:0"))).split()[0] for i in range(n)])
    expected = {
        "declined": 0.3,
        "timeout": 0.1,
        "network_failure": 0.1,
        "panic": 0.05,
        "malformed": 0.05,
        "success": 0.4,
    }
    assert set(kinds) == set(expected)
    for kind, rate in expected.items():
        assert kinds[kind] / n == pytest.approx(rate, abs=0.025), kind


async def test_about_half_of_the_timeouts_really_charged() -> None:
    ledger = Ledger()
    processor = make(seed=11, faults=FaultRates(timeout=1.0), ledger=ledger, sleeper=HangRaisingSleeper())
    n = 2000
    for i in range(n):
        assert await outcome(processor, request(f"pay_{i}:0")) == "timeout"
    assert len(ledger.entries()) / n == pytest.approx(0.5, abs=0.04)


async def test_a_success_replays_with_its_reference_and_charges_once() -> None:
    ledger = Ledger()
    processor = make(ledger=ledger)
    first = await processor.charge(request())
    again = await processor.charge(request())
    assert first.success
    assert again == first
    assert first.reference is not None
    assert first.reference.startswith("sim_sim_a_")
    assert len(ledger.entries()) == 1
    assert ledger.held_cents(PaymentId("pay_1")) == 1000
    assert processor.charge_attempts == 2


async def test_a_decline_replays_and_charges_nothing() -> None:
    ledger = Ledger()
    processor = make(faults=FaultRates(declined=1.0), ledger=ledger)
    answers = [await processor.charge(request()) for _ in range(3)]
    assert all(a.error_code is ErrorCode.DECLINED and a.decline_code == "generic_decline" for a in answers)
    assert ledger.entries() == []


async def test_transient_failures_are_not_cached() -> None:
    for seed in range(100):
        ledger = Ledger()
        processor = make(seed=seed, faults=FaultRates(network_failure=0.7), ledger=ledger)
        first = await processor.charge(request())
        if first.error_code is ErrorCode.NETWORK_FAILURE:
            break
    else:
        pytest.fail("no seed below 100 fails the first attempt at a 70% failure rate")
    seen: list[ErrorCode | None] = [first.error_code]
    for _ in range(60):
        answer = await processor.charge(request())
        seen.append(answer.error_code)
        if answer.success:
            break
    assert seen[-1] is None  # a later attempt with the same key is fresh, and succeeded
    assert set(seen[:-1]) == {ErrorCode.NETWORK_FAILURE}
    assert len(ledger.entries()) == 1
    assert (await processor.charge(request())).success  # and now it is cached


async def _timeouts_until(processor: SimulatedProcessor, settlement: Settlement) -> str:
    """Charge fresh keys, each hanging until a short timeout, until one settles as asked."""
    for i in range(40):
        key = f"pay_{i}:0"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await processor.charge(request(key))
        if (await processor.status(key)).settlement is settlement:
            return key
    pytest.fail(f"no timeout settled as {settlement}")


async def test_a_timeout_that_went_through_settles_as_charged_and_replays_without_charging() -> None:
    ledger = Ledger()
    sleeper = FakeSleeper()
    processor = make(faults=FaultRates(timeout=1.0), ledger=ledger, sleeper=sleeper)
    key = await _timeouts_until(processor, Settlement.CHARGED)
    assert HANG_SECONDS in sleeper.sleeps
    status = await processor.status(key)
    entry = ledger.lookup(ProcessorId("sim_a"), key)
    assert entry is not None
    assert (status.amount_cents, status.reference) == (1000, entry.reference)
    retry = await processor.charge(request(key))  # would hang again if it were a new attempt
    assert retry.success
    assert retry.reference == entry.reference
    assert [e.idempotency_key for e in ledger.entries()] == [key]


async def test_a_timeout_that_did_not_go_through_settles_as_not_charged() -> None:
    ledger = Ledger()
    processor = make(faults=FaultRates(timeout=1.0), ledger=ledger)
    key = await _timeouts_until(processor, Settlement.NOT_CHARGED)
    assert ledger.lookup(ProcessorId("sim_a"), key) is None
    answer = await processor.status(key)
    assert (answer.amount_cents, answer.reference) == (0, None)


async def test_a_panic_raises_a_runtime_error_and_charges_nothing() -> None:
    ledger = Ledger()
    processor = make(faults=FaultRates(panic=1.0), ledger=ledger)
    with pytest.raises(RuntimeError, match="simulated processor panic"):
        await processor.charge(request())
    assert ledger.entries() == []


async def test_a_malformed_answer_is_not_a_processor_response_and_charges_nothing() -> None:
    ledger = Ledger()
    processor = make(faults=FaultRates(malformed=1.0), ledger=ledger)
    answers: list[object] = [await processor.charge(request()) for _ in range(2)]
    assert answers == [{"status": "???"}] * 2  # not cached: the repeat is malformed again
    assert not any(isinstance(answer, ProcessorResponse) for answer in answers)
    assert ledger.entries() == []


@pytest.mark.parametrize(("amount", "currency"), [(999, USD), (1000, EUR)])
async def test_a_reused_key_with_another_amount_or_currency_fails_unknown_without_charging(
    amount: int, currency: Currency
) -> None:
    ledger = Ledger()
    processor = make(ledger=ledger)
    assert (await processor.charge(request())).success
    mismatch = await processor.charge(request(amount=amount, currency=currency))
    assert mismatch.error_code is ErrorCode.UNKNOWN
    assert [(e.amount_cents, e.currency) for e in ledger.entries()] == [(1000, "USD")]


async def test_a_refund_refunds_once_and_status_follows_the_ledger() -> None:
    ledger = Ledger()
    processor = make(ledger=ledger)
    charged = await processor.charge(request())
    status = await processor.status("pay_1:0")
    assert (status.settlement, status.amount_cents, status.reference) == (
        Settlement.CHARGED,
        1000,
        charged.reference,
    )
    first = await processor.void_or_refund(refund())
    second = await processor.void_or_refund(refund())
    assert (first.success, first.amount_cents, first.reference) == (True, 1000, charged.reference)
    assert (second.success, second.amount_cents) == (True, 0)
    assert (await processor.status("pay_1:0")).settlement is Settlement.REFUNDED
    assert ledger.held_cents(PaymentId("pay_1")) == 0
    assert await processor.charge(request()) == charged  # a replay, not a new charge
    assert len(ledger.entries()) == 1
    assert processor.charge_attempts == 2


async def test_refunding_a_key_never_charged_succeeds_with_nothing_refunded() -> None:
    processor = make()
    answer = await processor.void_or_refund(refund("pay_9:0"))
    assert (answer.success, answer.amount_cents, answer.reference) == (True, 0, None)
    assert (await processor.status("pay_9:0")).settlement is Settlement.NOT_CHARGED


async def test_latency_is_log_normal_with_the_configured_median_and_99th_percentile() -> None:
    sleeper = FakeSleeper()
    processor = make(latency=LatencyProfile(80.0, 400.0), sleeper=sleeper)
    latencies = [(await processor.charge(request(f"pay_{i}:0"))).latency_ms for i in range(20_000)]
    cuts = statistics.quantiles(latencies, n=100)
    assert statistics.median(latencies) == pytest.approx(80, rel=0.08)
    assert cuts[98] == pytest.approx(400, rel=0.15)
    assert sleeper.sleeps == [ms / 1000 for ms in latencies if ms > 0]


async def test_latency_applies_to_refunds_and_status_too() -> None:
    sleeper = FakeSleeper()
    processor = make(latency=LatencyProfile(50.0, 50.0), sleeper=sleeper)
    assert (await processor.charge(request())).latency_ms == 50
    assert (await processor.void_or_refund(refund())).latency_ms == 50
    assert (await processor.status("pay_1:0")).latency_ms == 50
    assert sleeper.sleeps == [0.05, 0.05, 0.05]


async def test_zero_latency_never_calls_the_sleeper() -> None:
    sleeper = FakeSleeper()
    processor = make(faults=FaultRates(declined=0.3, network_failure=0.3), sleeper=sleeper)
    for i in range(200):
        answer = await processor.charge(request(f"pay_{i}:0"))
        assert answer.latency_ms == 0
        await processor.void_or_refund(refund(f"pay_{i}:0"))
        await processor.status(f"pay_{i}:0")
    assert sleeper.sleeps == []


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["charge", "refund"]),
            st.integers(min_value=0, max_value=1),  # which processor
            st.integers(min_value=0, max_value=4),  # which step (its key is the same at both)
            st.booleans(),  # charge with a mismatched amount
        ),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=2**32),
)
def test_no_sequence_of_charges_and_refunds_holds_two_open_charges_for_one_key(
    ops: list[tuple[str, int, int, bool]], seed: int
) -> None:
    async def run() -> None:
        ledger = Ledger()
        processors = [
            make(seed=seed, faults=CHAOS, ledger=ledger, sleeper=HangRaisingSleeper(), processor_id=name)
            for name in ("sim_a", "sim_b")
        ]
        payment = PaymentId("pay_1")
        first_amount: dict[tuple[str, int], int] = {}
        for op, which, step, mismatched in ops:
            processor, key = processors[which], f"pay_1:{step}"
            if op == "charge":
                amount = 100 + step + int(mismatched)
                first_amount.setdefault((processor.processor_id, step), amount)
                await outcome(processor, request(key, step=step, amount=amount))
            else:
                await processor.void_or_refund(refund(key, amount=100 + step))
            for s in range(5):
                open_charges = ledger.charges_for_step(payment, s)
                per_processor = Counter(entry.processor_id for entry in open_charges)
                assert all(count == 1 for count in per_processor.values())
                # Only the first request for a key can charge: a mismatched repeat never does.
                assert all(e.amount_cents == first_amount[e.processor_id, s] for e in open_charges)
            held = sum(e.amount_cents - e.refunded_cents for e in ledger.entries())
            assert ledger.held_cents(payment) == held

    asyncio.run(run())


class InstantSleeper(FakeSleeper):
    """Returns at once even for a hang, as if the caller had no timeout of its own."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def test_a_hang_nobody_cancels_ends_in_a_timeout_answer_after_an_hour() -> None:
    sleeper = InstantSleeper()
    answer = await make(faults=FaultRates(timeout=1.0), sleeper=sleeper).charge(request())
    assert answer.error_code is ErrorCode.TIMEOUT
    assert answer.latency_ms == HANG_SECONDS * 1000
    assert sleeper.sleeps == [HANG_SECONDS]


async def test_failed_attempts_are_forgotten_a_day_after_their_key_was_first_seen() -> None:
    # Each attempt's key, its first request and its call counts used to stay for as long as the
    # process ran: memory grew with every attempt, those that charged nothing included.
    clock = ManualClock()
    processor = make(faults=FaultRates(network_failure=0.5, panic=0.25, malformed=0.25), clock=clock)
    per_day = 500
    for day in range(6):
        for number in range(per_day):
            key = f"pay_{day}x{number}:0"
            with contextlib.suppress(SimulatedPanic):
                await processor.charge(request(key))
            await processor.status(key)
        # This day's keys, and at most a few of the day before's (in parts no key of today hit).
        assert per_day <= processor.keys_remembered < 2 * per_day
        clock.advance(KEY_TTL_S)


async def test_a_key_is_new_again_a_day_after_it_was_first_seen() -> None:
    clock = ManualClock()
    processor = make(clock=clock)
    declined = await processor.charge(request("pay_1:0", amount=1000, card="4000000000000002"))
    assert declined.error_code is ErrorCode.DECLINED
    # Within the day the key is bound to its first request, as at Stripe.
    other = await processor.charge(request("pay_1:0", amount=2000, card="4242424242424242"))
    assert other.error_code is ErrorCode.UNKNOWN
    clock.advance(KEY_TTL_S)
    fresh = await processor.charge(request("pay_1:0", amount=2000, card="4242424242424242"))
    assert fresh.success
    assert fresh.amount_cents == 2000
    assert processor.keys_remembered == 1


async def test_a_forgotten_key_draws_as_it_would_on_a_fresh_processor() -> None:
    # Faults only (nothing is ever charged, so the ledger holds nothing to replay): after a day a
    # key's call counts and remembered decline are gone, and its draws start again.
    never_charges = FaultRates(declined=0.4, network_failure=0.3, panic=0.15, malformed=0.15)
    clock = ManualClock()
    used = make(faults=never_charges, latency=LATENCY, clock=clock)
    keys = [f"pay_{number}:0" for number in range(50)]
    for key in keys:
        for _ in range(3):
            await outcome(used, request(key))
        await used.status(key)
    clock.advance(KEY_TTL_S)
    fresh = make(faults=never_charges, latency=LATENCY)
    assert [await outcome(used, request(key)) for key in keys] == [
        await outcome(fresh, request(key)) for key in keys
    ]
