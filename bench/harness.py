"""Timing helpers shared by the benchmarks: best-of-N rates, never asserted in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Comparison:
    """A measured figure next to its baseline; ``ratio`` is measured / baseline.

    Targets are optional: ``target_ratio`` bounds the ratio, ``absolute_target`` the measured
    figure itself. Both are lower bounds (higher is better, a rate) unless ``lower_is_better``
    (a latency), which makes them strict upper bounds: "p99 below 10 ms" is
    ``absolute_target=10, lower_is_better=True``. ``decimals`` is how many digits after the
    point the measured figure and the baseline are printed with.
    """

    name: str
    unit: str
    measured: float
    baseline: float
    baseline_name: str
    target_ratio: float | None = None
    absolute_target: float | None = None
    lower_is_better: bool = False
    decimals: int = 0

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else 0.0

    def _meets(self, figure: float, target: float) -> bool:
        return figure < target if self.lower_is_better else figure >= target

    def line(self) -> str:
        bound = "<" if self.lower_is_better else ">="
        places = self.decimals
        targets = ""
        met: list[bool] = []
        if self.target_ratio is not None:
            targets += f"  target {bound} {self.target_ratio:.2f}"
            met.append(self._meets(self.ratio, self.target_ratio))
        if self.absolute_target is not None:
            targets += f"  target {bound} {self.absolute_target:,.{places}f} {self.unit}"
            met.append(self._meets(self.measured, self.absolute_target))
        missed = "  ABOVE TARGET" if self.lower_is_better else "  BELOW TARGET"
        verdict = "" if not met else ("  ok" if all(met) else missed)
        return (
            f"{self.name}: {self.measured:,.{places}f} {self.unit} vs {self.baseline_name} "
            f"{self.baseline:,.{places}f} {self.unit}  ratio {self.ratio:.3f}{targets}{verdict}"
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
