"""The engine's window for observers: spans around the plan, each step, each processor attempt
and each compensation (a void or refund).

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

#: Attribute names the engine sets on its spans.
STEP_INDEX = "payorch.step_index"
METHOD = "payorch.method"
AMOUNT = "payorch.amount_cents"
PROCESSOR = "payorch.processor_id"
ATTEMPT = "payorch.attempt"
STEPS = "payorch.steps"

SpanAttributes = Mapping[str, str | int]


class Observer(Protocol):
    def span(self, name: str, attributes: SpanAttributes) -> AbstractContextManager[object]:
        """A span for the work done inside the ``with`` block, a child of the current one.
        ``attributes`` is made for this span: the observer may keep it, and add to it."""
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
