"""Assembles the engine for a process from its configuration: processors, router, orchestrator.

Part of each process's composition root. Only the processors some merchant routes to are built;
a Stripe processor needs its API key in the environment (the error names the variable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.circuit_breaker import BreakerPolicy, CircuitBreakers, CircuitWatcher, MerchantCircuitWatcher
from engine.config import PlatformConfig, ProcessorKind
from engine.ledger import Ledger
from engine.observer import NULL_OBSERVER, Observer
from engine.orchestrator import CompositePaymentService
from engine.plan_builder import AmountCheck
from engine.ports import Clock, EventSink, RandomSource, Sleeper
from engine.processor import Processor
from engine.processors.simulated import SimulatedProcessor
from engine.router import Router
from engine.types import ProcessorId
from ingest.processors.stripe_amounts import stripe_amount_refusal
from ingest.processors.stripe_credentials import stripe_api_key

if TYPE_CHECKING:
    from ingest.processors.stripe_adapter import StripeProcessor


@dataclass(frozen=True, slots=True)
class Engine:
    """What a process needs to take payments; ``ledger`` records what simulated processors hold."""

    service: CompositePaymentService
    router: Router
    processors: Mapping[ProcessorId, Processor]
    ledger: Ledger
    #: What each processor cannot take (Stripe's amount scale): for the API's policy check too.
    amount_checks: Mapping[ProcessorId, AmountCheck]
    #: The processors that hold connections (Stripe's), closed by :meth:`aclose`.
    connected: tuple[StripeProcessor, ...] = ()

    async def aclose(self) -> None:
        """Close the processors that hold connections."""
        for processor in self.connected:
            await processor.aclose()


def routed_processors(config: PlatformConfig) -> tuple[ProcessorId, ...]:
    """The processors at least one merchant routes to, in configuration order."""
    used = {
        processor
        for merchant in config.merchants
        for rule in merchant.routing
        for processor in rule.processors
    }
    return tuple(processor.id for processor in config.processors if processor.id in used)


def check_processor_keys(config: PlatformConfig, environ: Mapping[str, str]) -> None:
    """Raise what :func:`build_engine` would for a routed Stripe processor's API key (unset, or no
    key), before anything else is built: a start refused for it touches no data folder."""
    for processor_id in routed_processors(config):
        processor = config.processor(processor_id)
        if processor.kind is ProcessorKind.STRIPE:
            stripe_api_key(processor, environ)


def breaker_policies(config: PlatformConfig) -> dict[ProcessorId, BreakerPolicy]:
    """Each processor's circuit breaker policy (``processors[].breaker``, its ``min_timeout_ms``
    resolved against the budgets of the merchants routed to it)."""
    return {processor.id: config.breaker_policy(processor.id) for processor in config.processors}


def build_engine(
    config: PlatformConfig,
    *,
    sink: EventSink,
    clock: Clock,
    sleeper: Sleeper,
    random: RandomSource,
    environ: Mapping[str, str],
    ledger: Ledger | None = None,
    wrap: Callable[[Processor], Processor] | None = None,
    observer: Observer = NULL_OBSERVER,
    circuits: CircuitWatcher | None = None,
    merchant_circuits: MerchantCircuitWatcher | None = None,
) -> Engine:
    """The engine of ``config``; raises an ingest error when a routed Stripe key is missing.

    ``ledger`` records what the simulated processors charge (a new one when not given); ``wrap``
    decorates every processor before the router sees it; ``observer`` gets the spans of
    the plan, each step and each attempt; ``circuits`` hears each change of a processor's circuit,
    ``merchant_circuits`` each change of a merchant's own circuit for a processor."""
    ledger = ledger if ledger is not None else Ledger()
    slowest_timeout_s = max((merchant.timeout_ms for merchant in config.merchants), default=2000) / 1000
    processors: dict[ProcessorId, Processor] = {}
    amount_checks: dict[ProcessorId, AmountCheck] = {}
    connected: list[StripeProcessor] = []
    for processor_id in routed_processors(config):
        processor_config = config.processor(processor_id)
        if processor_config.kind is ProcessorKind.SIMULATED:
            processors[processor_id] = SimulatedProcessor(processor_config, ledger, sleeper, clock)
        else:
            # Imported only when a merchant routes to Stripe: the SDK costs about 0.5 s of a start.
            from ingest.processors.stripe_adapter import stripe_processor_from_config  # noqa: PLC0415

            stripe = stripe_processor_from_config(processor_config, environ, timeout_s=slowest_timeout_s)
            processors[processor_id] = stripe
            amount_checks[processor_id] = stripe_amount_refusal
            connected.append(stripe)
    if wrap is not None:
        processors = {processor_id: wrap(processor) for processor_id, processor in processors.items()}
    breakers = CircuitBreakers(
        watcher=circuits, policies=breaker_policies(config), merchant_watcher=merchant_circuits
    )
    router = Router(processors, sink, clock, sleeper, random, breakers, observer=observer)
    service = CompositePaymentService(
        config,
        processors,
        router,
        sink,
        clock,
        sleeper,
        random,
        observer=observer,
        amount_checks=amount_checks,
    )
    return Engine(service, router, processors, ledger, amount_checks, tuple(connected))
