"""Where a payment's time went, for the ``Server-Timing`` header: processors, the rest of its
orchestration, and the commit its answer waits for.

The processor time is the engine guard's :class:`~engine.guard.Stopwatch`, which the payment task
sets (:data:`~engine.guard.STOPWATCH`) and the guard adds every processor call's wall time to.
"""

from __future__ import annotations


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
