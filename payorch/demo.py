"""``payorch demo``: what exists so far, run for real on the sample configuration.

Today that is the engine: a batch of simulated merchant payments (some with Stripe test cards that
decline) through the orchestrator and the simulated processors, with a summary of outcomes,
events and contract violations. The API server, dashboard and traffic generator come later.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable

from engine.context import CoreRequestContext
from engine.contracts import ContractViolation, default_registry
from engine.events import DomainEvent
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from engine.results import CompositeResult
from engine.types import PaymentId, RequestId
from ingest.config_file import load_sample_config
from ingest.engine_assembly import build_engine

#: Stripe test cards (PRODUCT.md section 5) sprinkled over the demo's card payments.
_CARDS = ("424242******4242", "400000******0002", "400000******9995", "424242******4242", None)


class CollectingSink:
    """Keeps the demo's events and violations in memory to summarize them."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.violations: list[ContractViolation] = []

    async def emit(self, event: DomainEvent) -> None:
        self.events.append(event)

    async def record_violation(self, violation: ContractViolation) -> None:
        self.violations.append(violation)


async def _run(payments: int) -> tuple[list[CompositeResult], CollectingSink]:
    config = load_sample_config()
    sink = CollectingSink()
    engine = build_engine(
        config,
        sink=sink,
        clock=SystemClock(),
        sleeper=AsyncioSleeper(),
        random=SeededRandom(7),
        environ=os.environ,
    )
    contexts = []
    for n in range(payments):
        merchant = config.merchants[n % len(config.merchants)]
        card = _CARDS[n % len(_CARDS)]
        contexts.append(
            CoreRequestContext(
                merchant_id=merchant.merchant_id,
                request_id=RequestId(f"req_demo_{n}"),
                payment_id=PaymentId(f"pay_demo_{n}"),
                amount_cents=2_500 + 1_750 * n,
                currency=merchant.default_currency,
                metadata={"card_number": card} if card else {},
            )
        )
    try:
        results = await asyncio.gather(*(engine.service.pay(ctx) for ctx in contexts))
    finally:
        await engine.aclose()
    return list(results), sink


def run_demo(echo: Callable[[str], None], payments: int = 24) -> None:
    """Run ``payments`` simulated payments and print what happened."""
    results, sink = asyncio.run(_run(payments))
    statuses = Counter(result.status.value for result in results)
    echo(f"  engine: {payments} simulated payments on the sample configuration")
    echo("    outcomes: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    for result in [r for r in results if len(r.step_results) > 1 or not r.success][:5]:
        steps = " -> ".join(
            f"{s.method.value} {s.amount_processed} at {s.processor_id}"
            + ("" if s.success else f" ({s.error_code})")
            + (" refunded" if s.compensated else "")
            for s in result.step_results
        )
        echo(
            f"    {result.payment_id} {result.total_amount} {result.currency}: {result.status.value}: {steps}"
        )
    events = Counter(event.event_type for event in sink.events)
    echo("    events: " + ", ".join(f"{name} {count}" for name, count in sorted(events.items())))
    registry = default_registry()
    violations = Counter(violation.contract_id for violation in sink.violations)
    shown = ", ".join(
        f"{cid} ({registry.get(cid).severity.value}) {n}" for cid, n in sorted(violations.items())
    )
    echo("    contract violations: " + (shown or "none"))
