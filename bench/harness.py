"""Timing helpers shared by the benchmarks: best-of-N rates, never asserted in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Comparison:
    """A measured rate next to its baseline; ``ratio`` is measured / baseline."""

    name: str
    unit: str
    measured: float
    baseline: float
    baseline_name: str
    target_ratio: float | None = None
    absolute_target: float | None = None

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else 0.0

    def line(self) -> str:
        target = "" if self.target_ratio is None else f"  target >= {self.target_ratio:.2f}"
        verdict = (
            ""
            if self.target_ratio is None
            else ("  ok" if self.ratio >= self.target_ratio else "  BELOW TARGET")
        )
        return (
            f"{self.name}: {self.measured:,.0f} {self.unit} vs {self.baseline_name} "
            f"{self.baseline:,.0f} {self.unit}  ratio {self.ratio:.3f}{target}{verdict}"
        )


def rate(operation: Callable[[], object], *, count: int, repeats: int = 5) -> float:
    """Operations per second of ``operation``, the best of ``repeats`` runs of ``count`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(count):
            operation()
        best = min(best, time.perf_counter() - started)
    return count / best
