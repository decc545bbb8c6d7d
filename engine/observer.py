"""The engine's window for observers: spans around the plan, each step, each processor attempt,
each compensation (a void or refund) and each status query crash recovery makes.

Domain events and contract violations reach observers through the event sink (the composition
root wraps it); spans are the one thing the engine marks itself, since only it knows where a
step or an attempt begins and ends.

An observer never holds a payment up: ``span`` returns at once, and neither entering nor leaving
the span it returns may wait or raise. Whatever an observer cannot keep up with, it drops and
counts (ARCHITECTURE.md decision 6); money never waits for telemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

#: Span names: low-cardinality, the step and processor go in attributes.
PLAN_SPAN = "plan"
STEP_SPAN = "step"
ATTEMPT_SPAN = "attempt"
#: A void or refund of a step's charge (its retries and status queries included).
COMPENSATION_SPAN = "compensation"
#: One ``status`` call crash recovery makes to learn what a processor holds for a step's key.
STATUS_QUERY_SPAN = "status_query"

#: Attribute names the engine sets on its spans.
STEP_INDEX = "payorch.step_index"
METHOD = "payorch.method"
AMOUNT = "payorch.amount_cents"
PROCESSOR = "payorch.processor_id"
ATTEMPT = "payorch.attempt"
STEPS = "payorch.steps"
#: A span's outcome: ``succeeded``, else what went wrong (an error code), which makes it an ERROR
#: span. The engine sets it itself only where no event says it (a status query's answer).
OUTCOME = "payorch.outcome"
SUCCEEDED = "succeeded"
#: What a status query found the processor holding (``charged``, ``not_charged``, ...).
SETTLEMENT = "payorch.settlement"
#: Which of a status query's tries this span is (1 for the first).
QUERY = "payorch.query"

SpanAttributes = Mapping[str, str | int]


class Observer(Protocol):
    def span(self, name: str, attributes: SpanAttributes) -> AbstractContextManager[object]:
        """A span for the work done inside the ``with`` block, a child of the current one.
        ``attributes`` is made for this span: the observer may keep it, and add to it, and so may
        the engine while the span is open (a status query's outcome)."""
        ...


class _NoSpan:
    __slots__ = ()

    def __enter__(self) -> object:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class NullObserver:
    """Watches nothing, at the cost of one call per span."""

    __slots__ = ()

    def span(self, name: str, attributes: SpanAttributes) -> AbstractContextManager[object]:
        return _NO_SPAN


NULL_OBSERVER = NullObserver()
