"""Where a payment's time went, for the ``Server-Timing`` header: processors, the rest of its
orchestration, and the commit its answer waits for.

Each processor is wrapped in :class:`TimedProcessor`, which adds the wall time of every call to the
:class:`Stopwatch` of the current payment (a context variable the payment task inherits).
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from engine.processor import ChargeRequest, Processor, ProcessorResponse, RefundRequest, StatusAnswer
from engine.types import ProcessorId


class Stopwatch:
    """Seconds spent in processor calls during one payment."""

    __slots__ = ("processor_s",)

    def __init__(self) -> None:
        self.processor_s = 0.0


CURRENT: ContextVar[Stopwatch | None] = ContextVar("payorch_stopwatch", default=None)


class TimedProcessor:
    """A :class:`~engine.processor.Processor` that times the one it wraps."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Processor) -> None:
        self._inner = inner

    @property
    def processor_id(self) -> ProcessorId:
        return self._inner.processor_id

    @property
    def inner(self) -> Processor:
        return self._inner

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        started = time.perf_counter()
        try:
            return await self._inner.charge(request)
        finally:
            _add(started)

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        started = time.perf_counter()
        try:
            return await self._inner.void_or_refund(request)
        finally:
            _add(started)

    async def status(self, idempotency_key: str) -> StatusAnswer:
        started = time.perf_counter()
        try:
            return await self._inner.status(idempotency_key)
        finally:
            _add(started)


def _add(started: float) -> None:
    stopwatch = CURRENT.get()
    if stopwatch is not None:
        stopwatch.processor_s += time.perf_counter() - started


def server_timing(total_s: float, processor_s: float, commit_s: float) -> str:
    """``orchestration`` is the payment's time outside processor calls (``total_s`` in all);
    ``commit`` the time from its outcome to the commit that holds its terminal event, result and
    idempotency key, which the answer waits for (ARCHITECTURE.md, decision 2). Without it the
    header ended before that commit and under-reported what the merchant waited: a writer behind,
    or a slow disk, showed nowhere in it."""
    orchestration_ms = max(0.0, total_s - processor_s) * 1000
    return (
        f'orchestration;dur={orchestration_ms:.3f};desc="payorch", processor;dur={processor_s * 1000:.3f}, '
        f'commit;dur={commit_s * 1000:.3f};desc="durable write"'
    )
