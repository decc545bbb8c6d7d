"""The API benchmark of bench_api rerun with durable writes: payorch's events, results and
idempotency keys go through the DuckDB store (one writer thread, group commit, the answer after
the commit), against the same trivial FastAPI app, measured the same way.

Targets (the store issue): throughput at least 0.35 of the trivial app's, p99 below 15 ms at half
payorch's maximum rate.
"""

from __future__ import annotations

from bench.bench_api import PAYORCH, TRIVIAL, App, BenchError, compare
from bench.harness import Comparison
from bench.loadgen import LoadgenError
from bench.payorch_app import DURABLE_ENV

DURABLE = App(f"{PAYORCH.name} with durable writes", PAYORCH.target, factory=True, env=((DURABLE_ENV, "1"),))
THROUGHPUT_TARGET_RATIO = 0.35
P99_TARGET_MS = 15.0


def run() -> list[Comparison]:
    try:
        return compare(DURABLE, TRIVIAL, throughput_ratio=THROUGHPUT_TARGET_RATIO, p99_ms=P99_TARGET_MS)
    except (BenchError, LoadgenError) as error:
        raise SystemExit(f"bench_api_durable: {error}") from None


if __name__ == "__main__":
    for comparison in run():
        print(comparison.line(), flush=True)
