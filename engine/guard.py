"""The panic-proof shell around every processor call.

Whatever an adapter does (answers, raises, hangs past the timeout, answers with garbage), the
guard returns a normalized answer plus, when the adapter misbehaved, the contract it broke.
Cancellation of the caller is never swallowed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from engine.error_codes import ErrorCode
from engine.ports import Clock
from engine.processor import (
    ChargeRequest,
    Processor,
    ProcessorResponse,
    RefundRequest,
    Settlement,
    StatusAnswer,
)

TIMEOUT = "router/timeout"
PANIC = "processor/panic"
MALFORMED = "processor/malformed"


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """A contract an adapter broke during one call, for the caller to record."""

    contract_id: str
    message: str


def _elapsed_ms(clock: Clock, started: float) -> int:
    return max(0, round((clock.monotonic() - started) * 1000))


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


async def guarded_charge(
    processor: Processor, request: ChargeRequest, timeout_s: float, clock: Clock
) -> tuple[ProcessorResponse, Misbehaviour | None]:
    """Charge through ``processor``; a timeout, exception or malformed answer is a failed response
    whose error code marks the outcome unknown (the router settles it)."""
    started = clock.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            answer: object = await processor.charge(request)
    except TimeoutError:
        elapsed = _elapsed_ms(clock, started)
        message = f"charge at {processor.processor_id} did not answer within {round(timeout_s * 1000)} ms"
        return ProcessorResponse.failed(ErrorCode.TIMEOUT, elapsed), Misbehaviour(TIMEOUT, message)
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a normalized answer
        elapsed = _elapsed_ms(clock, started)
        message = f"charge at {processor.processor_id} raised {_describe(exc)}"
        return ProcessorResponse.failed(ErrorCode.PROCESSOR_ERROR, elapsed), Misbehaviour(PANIC, message)
    if not isinstance(answer, ProcessorResponse):
        elapsed = _elapsed_ms(clock, started)
        message = (
            f"charge at {processor.processor_id} answered {type(answer).__name__}, not a ProcessorResponse"
        )
        return ProcessorResponse.failed(ErrorCode.MALFORMED_RESPONSE, elapsed), Misbehaviour(
            MALFORMED, message
        )
    if answer.success and answer.amount_cents != request.amount_cents:
        message = (
            f"charge at {processor.processor_id} reported {answer.amount_cents} charged "
            f"for a request of {request.amount_cents}"
        )
        failed = ProcessorResponse.failed(ErrorCode.MALFORMED_RESPONSE, answer.latency_ms)
        return failed, Misbehaviour(MALFORMED, message)
    return answer, None


async def guarded_refund(
    processor: Processor, request: RefundRequest, timeout_s: float, clock: Clock
) -> tuple[ProcessorResponse, Misbehaviour | None]:
    """Void or refund through ``processor``; misbehaviour is a failed response."""
    started = clock.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            answer: object = await processor.void_or_refund(request)
    except TimeoutError:
        message = f"refund at {processor.processor_id} did not answer within {round(timeout_s * 1000)} ms"
        return ProcessorResponse.failed(ErrorCode.TIMEOUT, _elapsed_ms(clock, started)), Misbehaviour(
            TIMEOUT, message
        )
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a normalized answer
        message = f"refund at {processor.processor_id} raised {_describe(exc)}"
        failed = ProcessorResponse.failed(ErrorCode.PROCESSOR_ERROR, _elapsed_ms(clock, started))
        return failed, Misbehaviour(PANIC, message)
    if not isinstance(answer, ProcessorResponse):
        message = (
            f"refund at {processor.processor_id} answered {type(answer).__name__}, not a ProcessorResponse"
        )
        failed = ProcessorResponse.failed(ErrorCode.MALFORMED_RESPONSE, _elapsed_ms(clock, started))
        return failed, Misbehaviour(MALFORMED, message)
    return answer, None


async def guarded_status(
    processor: Processor, idempotency_key: str, timeout_s: float, clock: Clock
) -> tuple[StatusAnswer, Misbehaviour | None]:
    """Ask ``processor`` what it holds for a key; misbehaviour is an ``UNKNOWN`` answer."""
    started = clock.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            answer: object = await processor.status(idempotency_key)
    except TimeoutError:
        message = f"status at {processor.processor_id} did not answer within {round(timeout_s * 1000)} ms"
        return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(clock, started)), Misbehaviour(TIMEOUT, message)
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a normalized answer
        message = f"status at {processor.processor_id} raised {_describe(exc)}"
        return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(clock, started)), Misbehaviour(PANIC, message)
    if not isinstance(answer, StatusAnswer):
        message = f"status at {processor.processor_id} answered {type(answer).__name__}, not a StatusAnswer"
        return StatusAnswer(Settlement.UNKNOWN, _elapsed_ms(clock, started)), Misbehaviour(MALFORMED, message)
    return answer, None
