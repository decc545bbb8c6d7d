"""The panic-proof shell around every processor call.

Whatever an adapter does (answers, raises, hangs past the timeout, answers with garbage), the
guard returns a normalized answer plus, when the adapter misbehaved, the contract it broke.
Cancellation of the caller is never swallowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import CoroutineType
from typing import TypeVar

from engine.error_codes import ErrorCode
from engine.errors import PlanInvariantError
from engine.money import Currency, Money
from engine.ports import Clock
from engine.processor import (
    ChargeRequest,
    Processor,
    ProcessorResponse,
    RefundRequest,
    Settlement,
    StatusAnswer,
)
from engine.stepping import resume
from engine.types import ProcessorId

A = TypeVar("A")

TIMEOUT = "router/timeout"
PANIC = "processor/panic"
MALFORMED = "processor/malformed"


@dataclass(frozen=True, slots=True)
class StrayCharge:
    """A charge a processor holds for a step's key that is not what the step asked for (another
    amount or another currency). It never counts as the step's charge: the step fails and the
    charge is voided in full (all the key holds, whatever its amount)."""

    step_index: int
    processor_id: ProcessorId
    amount_cents: int
    currency: Currency

    def describe(self) -> str:
        return f"{Money(self.amount_cents, self.currency)}"


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """A contract an adapter broke during one call, for the caller to record; ``stray`` when the
    adapter reported a charge that is not the one asked for."""

    contract_id: str
    message: str
    stray: StrayCharge | None = None


def stray_charge(
    step_index: int,
    processor_id: ProcessorId,
    held: tuple[int, Currency | None],
    asked: tuple[int, Currency],
) -> StrayCharge | None:
    """The charge ``held`` (amount, currency or None for the one asked) as a stray, unless it is
    exactly what was ``asked``."""
    amount, currency = held
    currency = asked[1] if currency is None else currency
    if (amount, currency) == asked:
        return None
    return StrayCharge(step_index, processor_id, amount, currency)


class Stopwatch:
    """Seconds spent in processor calls (charges, refunds, status queries) during one payment,
    wall time: the API's ``Server-Timing`` header tells them from the rest of orchestration.

    The guard adds each call's time to the stopwatch current in the calling task
    (:data:`STOPWATCH`), since it awaits every call anyway: a wrapper around each processor cost
    a coroutine, two clock reads and a look-up of its own per call."""

    __slots__ = ("processor_s",)

    def __init__(self) -> None:
        self.processor_s = 0.0


#: The stopwatch of the payment running in this task, if anyone is timing it.
STOPWATCH: ContextVar[Stopwatch | None] = ContextVar("payorch_stopwatch", default=None)


def _timed(clock: Clock, started: float) -> None:
    """Add the time since ``started`` to the current payment's stopwatch."""
    stopwatch = STOPWATCH.get()
    if stopwatch is not None:
        stopwatch.processor_s += clock.monotonic() - started


def _elapsed_ms(clock: Clock, started: float) -> int:
    return max(0, round((clock.monotonic() - started) * 1000))


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


class _Expiry:
    """Cancels the waiting task once the time is up, and remembers that it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


async def _call(
    what: str,
    processor_id: str,
    method: Callable[[A], Awaitable[object]],
    argument: A,
    expected: type,
    timeout_s: float,
    clock: Clock,
) -> tuple[object, Misbehaviour | None, ErrorCode | None, int]:
    """Await ``method(argument)`` under the timeout; an adapter may even raise before it awaits.

    Returns the answer, or the misbehaviour with the error code that stands for it (the outcome is
    unknown in every case), and the elapsed milliseconds.

    An adapter that answers without waiting needs no deadline and gets no timer. For one that
    waits, the deadline is what ``asyncio.timeout`` does (a cancellation of the caller is never
    taken for a timeout, nor swallowed), with one timer handle instead of a context manager
    object: a third of the cost here, and every processor call pays it. However it ends, the
    call's wall time goes to the payment's :class:`Stopwatch`.
    """
    started = clock.monotonic()
    try:
        awaitable = method(argument)
        if type(awaitable) is CoroutineType:
            # Run the adapter to its first wait by hand: one that answers without waiting (an
            # in-process simulator, a replayed outcome) needs no timer, since no time can pass
            # while nothing waits. One that waits goes on below, under the deadline.
            try:
                waiting_on = awaitable.send(None)
            except StopIteration as answered:
                _timed(clock, started)
                if isinstance(answered.value, expected):
                    return answered.value, None, None, 0  # as _checked answers a sane answer
                return _checked(what, processor_id, answered.value, expected, clock, started)
            awaitable = resume(awaitable, waiting_on)
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a normalized answer
        _timed(clock, started)
        return _panicked(what, processor_id, exc, clock, started)
    task = asyncio.current_task()
    if task is None:  # the engine always runs inside a task; this names the mistake if not
        raise PlanInvariantError("task", None, "processor calls must run inside an asyncio task")
    cancelling = task.cancelling()
    expiry = _Expiry(task)
    timer = asyncio.get_running_loop().call_later(timeout_s, expiry)
    try:
        try:
            answer = await awaitable
        except asyncio.CancelledError:
            if expiry.fired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()
            _timed(clock, started)
        if expiry.fired:
            task.uncancel()  # the adapter swallowed our cancellation and answered anyway
    except TimeoutError:
        message = f"{what} at {processor_id} did not answer within {round(timeout_s * 1000)} ms"
        return None, Misbehaviour(TIMEOUT, message), ErrorCode.TIMEOUT, _elapsed_ms(clock, started)
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a normalized answer
        return _panicked(what, processor_id, exc, clock, started)
    return _checked(what, processor_id, answer, expected, clock, started)


def _panicked(
    what: str, processor_id: str, exc: Exception, clock: Clock, started: float
) -> tuple[object, Misbehaviour | None, ErrorCode | None, int]:
    message = f"{what} at {processor_id} raised {_describe(exc)}"
    return None, Misbehaviour(PANIC, message), ErrorCode.PROCESSOR_ERROR, _elapsed_ms(clock, started)


def _checked(
    what: str, processor_id: str, answer: object, expected: type, clock: Clock, started: float
) -> tuple[object, Misbehaviour | None, ErrorCode | None, int]:
    if not isinstance(answer, expected):
        message = f"{what} at {processor_id} answered {type(answer).__name__}, not a {expected.__name__}"
        return (
            None,
            Misbehaviour(MALFORMED, message),
            ErrorCode.MALFORMED_RESPONSE,
            _elapsed_ms(clock, started),
        )
    return answer, None, None, 0


async def guarded_charge(
    processor: Processor, request: ChargeRequest, timeout_s: float, clock: Clock
) -> tuple[ProcessorResponse, Misbehaviour | None]:
    """Charge through ``processor``; a timeout, exception or malformed answer is a failed response
    whose error code marks the outcome unknown (the router settles it)."""
    pid = processor.processor_id
    answer, problem, code, elapsed = await _call(
        "charge", pid, processor.charge, request, ProcessorResponse, timeout_s, clock
    )
    if code is not None:
        return ProcessorResponse.failed(code, elapsed), problem
    assert isinstance(answer, ProcessorResponse)  # noqa: S101 - _call checked the type
    if not answer.success:
        return answer, None
    if answer.amount_cents == request.amount_cents and answer.currency in (None, request.currency):
        return answer, None  # what was asked (stray_charge's test, without its tuples and frame)
    asked = (request.amount_cents, request.currency)
    stray = stray_charge(request.step_index, pid, (answer.amount_cents, answer.currency), asked)
    if stray is None:
        return answer, None
    message = (
        f"charge at {pid} reported {stray.describe()} charged for a request of "
        f"{Money(request.amount_cents, request.currency)}; it does not count and is voided in full"
    )
    failed = ProcessorResponse.failed(ErrorCode.MALFORMED_RESPONSE, answer.latency_ms)
    return failed, Misbehaviour(MALFORMED, message, stray)


async def guarded_refund(
    processor: Processor, request: RefundRequest, timeout_s: float, clock: Clock
) -> tuple[ProcessorResponse, Misbehaviour | None]:
    """Void or refund through ``processor``; misbehaviour is a failed response."""
    answer, problem, code, elapsed = await _call(
        "refund",
        processor.processor_id,
        processor.void_or_refund,
        request,
        ProcessorResponse,
        timeout_s,
        clock,
    )
    if code is not None:
        return ProcessorResponse.failed(code, elapsed), problem
    assert isinstance(answer, ProcessorResponse)  # noqa: S101 - _call checked the type
    return answer, None


async def guarded_status(
    processor: Processor, idempotency_key: str, timeout_s: float, clock: Clock
) -> tuple[StatusAnswer, Misbehaviour | None]:
    """Ask ``processor`` what it holds for a key; misbehaviour is an ``UNKNOWN`` answer."""
    answer, problem, code, elapsed = await _call(
        "status",
        processor.processor_id,
        processor.status,
        idempotency_key,
        StatusAnswer,
        timeout_s,
        clock,
    )
    if code is not None:
        return StatusAnswer(Settlement.UNKNOWN, elapsed), problem
    assert isinstance(answer, StatusAnswer)  # noqa: S101 - _call checked the type
    return answer, None
