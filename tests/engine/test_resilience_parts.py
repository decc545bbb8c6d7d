import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.backoff import backoff_seconds
from engine.circuit_breaker import BreakerPolicy, CircuitBreaker, CircuitBreakers, CircuitState
from engine.config import RetryPolicy
from engine.error_codes import ErrorCode
from engine.errors import ConfigError
from engine.events import DomainEvent, StepAttempted
from engine.guard import STOPWATCH, Stopwatch, guarded_charge, guarded_refund, guarded_status
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.processor import ChargeRequest, ProcessorResponse, RefundRequest, Settlement, StatusAnswer
from engine.types import PaymentId, ProcessorId
from tests.engine.fakes import TIMEOUT_UNCHARGED, FixedRandom, InMemorySink, ManualClock, ScriptedProcessor
from tests.engine.harness import rig

REQUEST = ChargeRequest(PaymentId("pay_1"), 0, "pay_1:step:0", 500, Currency("USD"), PaymentMethod.CARD)
REFUND = RefundRequest(PaymentId("pay_1"), 0, "pay_1:step:0", 500, Currency("USD"))


@given(
    retry=st.integers(min_value=1, max_value=60),
    base=st.integers(min_value=0, max_value=1000),
    spread=st.integers(min_value=0, max_value=10_000),
    draw=st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(
    retry: int, base: int, spread: int, draw: float
) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_ms=base, max_delay_ms=base + spread)
    delay = backoff_seconds(retry, policy, FixedRandom(draw))
    ceiling = min(policy.max_delay_ms, base * 2 ** min(retry - 1, 30)) / 1000
    assert 0 <= delay <= ceiling
    assert delay == pytest.approx(draw * ceiling)


def state(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state


def test_a_breaker_opens_after_consecutive_faults_and_probes_once_after_the_cool_down() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, cool_down_s=5))
    for _ in range(2):
        breaker.record_failure(0)
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure(0)
    assert state(breaker) is CircuitState.CLOSED  # a success in between resets the count
    breaker.record_failure(1)
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow(5.9)
    assert breaker.allow(6)
    assert state(breaker) is CircuitState.HALF_OPEN
    assert not breaker.allow(6)  # one probe at a time
    breaker.record_failure(6.5)
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow(11)
    assert breaker.allow(11.5)
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allow(11.5)


def test_an_answer_to_an_attempt_sent_before_the_circuit_opened_leaves_it_open() -> None:
    # Under load, attempts let through while the circuit was closed answer after it opened: a
    # success or a decline among them is no probe, and does not cut the cool-down short.
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2, cool_down_s=5))
    breaker.record_failure(0)
    breaker.record_failure(1)
    breaker.record_success()
    breaker.record_neutral()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow(5.9)
    assert breaker.allow(6)  # the probe
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED


def test_faults_are_consecutive_in_the_order_their_attempts_were_sent() -> None:
    # Four charges sent at once: the last one sent is answered first and succeeds, then the three
    # before it time out together. They were not consecutive faults: a charge sent after them
    # worked. Three faults sent after it are, and open the circuit.
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, cool_down_s=5))
    early = [breaker.sent() for _ in range(3)]
    late = breaker.sent()
    breaker.record_success(late)
    for number in early:
        breaker.record_failure(1, number)
    assert state(breaker) is CircuitState.CLOSED
    for number in [breaker.sent() for _ in range(3)]:
        breaker.record_failure(2, number)
    assert state(breaker) is CircuitState.OPEN


def test_a_sane_answer_clears_only_the_faults_of_attempts_sent_before_it() -> None:
    # Sent: a fault, a decline, two faults. Once the decline is answered, the first fault is
    # behind a sane answer; the two after it, and one more, make three in a row.
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, cool_down_s=5))
    first, declined, third, fourth = (breaker.sent() for _ in range(4))
    breaker.record_failure(0, first)
    breaker.record_failure(0, third)
    breaker.record_neutral(declined)  # answered: the fault sent before it no longer counts
    breaker.record_failure(0, fourth)
    assert state(breaker) is CircuitState.CLOSED
    breaker.record_failure(0, breaker.sent())
    assert state(breaker) is CircuitState.OPEN  # third, fourth and this one


class CircuitLog:
    """A watcher that keeps every change it hears."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, CircuitState]] = []

    def circuit_changed(self, processor_id: ProcessorId, state: CircuitState) -> None:
        self.changes.append((processor_id, state))


def test_a_watcher_hears_each_change_of_a_circuit_and_nothing_else() -> None:
    log = CircuitLog()
    breakers = CircuitBreakers(BreakerPolicy(failure_threshold=2, cool_down_s=5), watcher=log)
    breaker = breakers[ProcessorId("stripe_sim")]
    breaker.record_success()
    breaker.record_neutral()
    breaker.record_failure(0)
    assert log.changes == []  # a healthy (or not yet failing enough) processor costs the watcher nothing
    breaker.record_failure(1)
    breaker.record_failure(2)  # already open: no change
    assert not breaker.allow(6.9)  # still cooling down
    assert breaker.allow(7)
    assert not breaker.allow(7)  # the probe is out: still half-open
    breaker.record_failure(7.5)
    assert breaker.allow(12.5)
    breaker.record_success()
    breaker.record_success()
    breakers[ProcessorId("adyen_sim")].record_failure(13)
    stripe = "stripe_sim"
    assert log.changes == [
        (stripe, CircuitState.OPEN),
        (stripe, CircuitState.HALF_OPEN),
        (stripe, CircuitState.OPEN),
        (stripe, CircuitState.HALF_OPEN),
        (stripe, CircuitState.CLOSED),
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "breaker.failure_threshold"),
        ({"cool_down_s": -1}, "breaker.cool_down_s"),
        # A threshold never reached, a circuit that probes at every attempt or never again, a
        # boolean: slips, refused like every other field.
        ({"failure_threshold": 1001}, "breaker.failure_threshold"),
        ({"failure_threshold": True}, "breaker.failure_threshold"),
        ({"cool_down_s": 0}, "breaker.cool_down_s"),
        ({"cool_down_s": 86_400.5}, "breaker.cool_down_s"),
        ({"cool_down_s": float("nan")}, "breaker.cool_down_s"),
        ({"cool_down_s": True}, "breaker.cool_down_s"),
    ],
)
def test_breaker_policy_checks_its_fields(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}="):
        BreakerPolicy(**kwargs)  # type: ignore[arg-type]


class Misbehaving:
    """A processor whose every call does ``mode``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    @property
    def processor_id(self) -> ProcessorId:
        return ProcessorId("bad_sim")

    async def _act(self, answer: object) -> object:
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "raise":
            raise ZeroDivisionError("boom")
        if self.mode == "garbage":
            return "garbage"
        return answer

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        answer = ProcessorResponse(True, 3, 999 if self.mode == "wrong_amount" else request.amount_cents)
        return await self._act(answer)  # type: ignore[return-value]

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        return await self._act(ProcessorResponse(True, 3, request.amount_cents))  # type: ignore[return-value]

    async def status(self, idempotency_key: str) -> StatusAnswer:
        return await self._act(StatusAnswer(Settlement.CHARGED, 3, 500))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("mode", "code", "contract"),
    [
        ("fine", None, None),
        ("hang", ErrorCode.TIMEOUT, "router/timeout"),
        ("raise", ErrorCode.PROCESSOR_ERROR, "processor/panic"),
        ("garbage", ErrorCode.MALFORMED_RESPONSE, "processor/malformed"),
        ("wrong_amount", ErrorCode.MALFORMED_RESPONSE, "processor/malformed"),
    ],
)
async def test_the_guard_normalizes_every_misbehaviour(
    mode: str, code: ErrorCode | None, contract: str | None
) -> None:
    processor = Misbehaving(mode)
    response, problem = await guarded_charge(processor, REQUEST, 0.02, ManualClock())
    assert response.error_code is code
    assert (problem.contract_id if problem else None) == contract
    if code is not None:
        assert response.error_code is not None and response.error_code.outcome_unknown
    refund, refund_problem = await guarded_refund(processor, REFUND, 0.02, ManualClock())
    status, status_problem = await guarded_status(processor, "pay_1:step:0", 0.02, ManualClock())
    if mode in {"fine", "wrong_amount"}:
        assert refund.success and refund_problem is None
        assert status.settlement is Settlement.CHARGED and status_problem is None
    else:
        assert not refund.success and refund_problem is not None
        assert status.settlement is Settlement.UNKNOWN and status_problem is not None


class RaisesBeforeAwaiting(Misbehaving):
    """A careless adapter whose ``charge`` is not even a coroutine function."""

    def charge(self, request: ChargeRequest) -> ProcessorResponse:  # type: ignore[override]
        raise KeyError("synchronous failure")


async def test_the_guard_catches_an_adapter_that_raises_before_awaiting() -> None:
    careless: Any = RaisesBeforeAwaiting("fine")
    response, problem = await guarded_charge(careless, REQUEST, 0.02, ManualClock())
    assert response.error_code is ErrorCode.PROCESSOR_ERROR
    assert problem is not None
    assert "KeyError" in problem.message


async def test_the_guard_never_swallows_cancellation() -> None:
    task = asyncio.create_task(guarded_charge(Misbehaving("hang"), REQUEST, 10, ManualClock()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_timeout_leaves_the_task_uncancelled() -> None:
    async def charge_then_go_on() -> tuple[ErrorCode | None, int]:
        response, _ = await guarded_charge(Misbehaving("hang"), REQUEST, 0.01, ManualClock())
        await asyncio.sleep(0.01)  # would raise CancelledError if the timeout leaked a cancel
        task = asyncio.current_task()
        assert task is not None
        return response.error_code, task.cancelling()

    assert await asyncio.create_task(charge_then_go_on()) == (ErrorCode.TIMEOUT, 0)


class SwallowsCancellation(Misbehaving):
    """An adapter that catches the cancellation its deadline sends and answers anyway."""

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        return ProcessorResponse(True, 1, request.amount_cents)


async def test_an_adapter_that_swallows_the_deadline_still_leaves_the_task_clean() -> None:
    async def charge() -> tuple[bool, int]:
        response, _ = await guarded_charge(SwallowsCancellation("fine"), REQUEST, 0.01, ManualClock())
        task = asyncio.current_task()
        assert task is not None
        return response.success, task.cancelling()

    assert await asyncio.create_task(charge()) == (True, 0)


class Scripted(Misbehaving):
    """An adapter that waits in a given way before it answers or fails."""

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        if self.mode in {"bare_yield", "two_waits"}:
            await asyncio.sleep(0)  # a bare yield to the loop
        if self.mode in {"two_waits", "wait_then_raise", "wait_then_garbage"}:
            await asyncio.sleep(0.001)  # a real timer future
        if self.mode == "wait_then_raise":
            raise ConnectionResetError("peer went away")
        if self.mode == "wait_then_garbage":
            return "OK"  # type: ignore[return-value]
        return ProcessorResponse(True, 2, request.amount_cents)


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("at_once", None),
        ("bare_yield", None),
        ("two_waits", None),
        ("wait_then_raise", ErrorCode.PROCESSOR_ERROR),
        ("wait_then_garbage", ErrorCode.MALFORMED_RESPONSE),
    ],
)
async def test_the_guard_follows_an_adapter_however_it_waits(mode: str, code: ErrorCode | None) -> None:
    async def charge() -> tuple[ErrorCode | None, int]:
        response, _ = await guarded_charge(Scripted(mode), REQUEST, 1.0, ManualClock())
        await asyncio.sleep(0.002)  # a leaked deadline or cancel would strike here
        task = asyncio.current_task()
        assert task is not None
        return response.error_code, task.cancelling()

    assert await asyncio.create_task(charge()) == (code, 0)


async def test_a_deadline_reaches_an_adapter_that_answered_its_first_step_at_once() -> None:
    class SlowAfterFirstStep(Misbehaving):
        async def charge(self, request: ChargeRequest) -> ProcessorResponse:
            await asyncio.sleep(0)
            await asyncio.sleep(3600)
            return ProcessorResponse(True, 2, request.amount_cents)

    response, problem = await guarded_charge(SlowAfterFirstStep("fine"), REQUEST, 0.01, ManualClock())
    assert response.error_code is ErrorCode.TIMEOUT
    assert problem is not None
    assert problem.contract_id == "router/timeout"


class Clocked(Misbehaving):
    """An adapter whose every call takes ``seconds`` of ``clock`` before it does ``mode`` (``waits``:
    answers after a wait on the loop)."""

    def __init__(self, mode: str, clock: ManualClock, seconds: float) -> None:
        super().__init__(mode)
        self.clock = clock
        self.seconds = seconds

    async def _act(self, answer: object) -> object:
        self.clock.advance(self.seconds)
        if self.mode == "waits":
            await asyncio.sleep(0)
        return await super()._act(answer)


@pytest.mark.parametrize("mode", ["fine", "waits", "raise", "garbage", "hang"])
async def test_the_guard_adds_every_call_to_the_payments_stopwatch(mode: str) -> None:
    """The ``Server-Timing`` header's processor time: each charge, refund and status query the
    payment's task makes, however the call ends (a timeout included)."""

    async def pay() -> float:
        clock = ManualClock()
        processor = Clocked(mode, clock, 0.25)
        stopwatch = Stopwatch()
        STOPWATCH.set(stopwatch)
        await guarded_charge(processor, REQUEST, 0.01, clock)
        await guarded_refund(processor, REFUND, 0.01, clock)
        await guarded_status(processor, "pay_1:step:0", 0.01, clock)
        return stopwatch.processor_s

    assert await asyncio.create_task(pay()) == 0.75


class _FailingRecord(InMemorySink):
    """A sink whose record of the first attempt fails (a commit the disk refused)."""

    async def emit(self, event: DomainEvent) -> None:
        if type(event) is StepAttempted and not any(type(e) is StepAttempted for e in self.events):
            self.events.append(event)
            raise OSError("the disk refused the commit")
        await super().emit(event)


async def test_a_probe_that_ends_without_an_answer_frees_the_half_open_circuit() -> None:
    paid = rig(
        {"applepay_sim": ScriptedProcessor("applepay_sim"), "stripe_sim": ScriptedProcessor("stripe_sim")},
        breaker=BreakerPolicy(failure_threshold=1, cool_down_s=5),
        sink_factory=lambda _: _FailingRecord(),
    )
    breaker = paid.router.breakers[ProcessorId("applepay_sim")]
    breaker.record_failure(paid.clock.monotonic())
    paid.clock.advance(6)  # cooled down: the next attempt is the half-open circuit's probe

    with pytest.raises(OSError, match="disk refused"):
        await paid.pay()

    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow(paid.clock.monotonic())  # the next payment may probe


async def test_a_probe_cancelled_with_its_payment_frees_the_half_open_circuit() -> None:
    hanging = ScriptedProcessor("applepay_sim", [TIMEOUT_UNCHARGED])
    paid = rig(
        {"applepay_sim": hanging, "stripe_sim": ScriptedProcessor("stripe_sim")},
        breaker=BreakerPolicy(failure_threshold=1, cool_down_s=5),
    )
    breaker = paid.router.breakers[ProcessorId("applepay_sim")]
    breaker.record_failure(paid.clock.monotonic())
    paid.clock.advance(6)

    payment = asyncio.create_task(paid.pay())
    while not hanging.calls:
        await asyncio.sleep(0)
    payment.cancel()
    with pytest.raises(asyncio.CancelledError):
        await payment

    assert breaker.allow(paid.clock.monotonic())
