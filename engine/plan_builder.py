"""PlanBuilder: from a request and its merchant's routing preferences to a ``PaymentPlan``.

Pure and deterministic: the same context and configuration always give the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.config import MerchantConfig, ProcessorConfig, RoutingRule
from engine.context import CoreRequestContext
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.plan import PaymentPlan, PaymentStep
from engine.types import ProcessorId
from engine.unchecked import unchecked

#: Why a processor cannot take ``amount_cents`` of a currency (Stripe takes BHD only in steps of 10
#: fils), or ``None`` when it can. A processor without one takes every amount.
AmountCheck = Callable[[int, Currency], str | None]

#: A merchant's routing rules in preference order, each with its fallback chain of eligible
#: processors (rules none of whose processors is eligible left out): what a plan's steps are cut
#: from. It depends only on the merchant's config, the method and the currency.
Routing = tuple[tuple[RoutingRule, tuple[ProcessorId, ...]], ...]

# Built from the checked context and configuration: see engine.unchecked.
_step = unchecked(PaymentStep)
_plan = unchecked(PaymentPlan)


def ordered_rules(method: PaymentMethod | None, routing: tuple[RoutingRule, ...]) -> tuple[RoutingRule, ...]:
    """The merchant's routing, with the rules for the requested method (when given) moved first."""
    if method is None:
        return routing
    preferred = tuple(rule for rule in routing if rule.method is method)
    return (*preferred, *(rule for rule in routing if rule.method is not method))


def eligible_processors(
    rule: RoutingRule, currency: Currency, processors: Mapping[ProcessorId, ProcessorConfig]
) -> tuple[ProcessorId, ...]:
    """The rule's fallback chain, in order, without processors that refuse the currency or method."""
    return tuple(
        processor_id
        for processor_id in rule.processors
        if (config := processors.get(processor_id)) is None or config.accepts(currency, rule.method)
    )


def routing_chains(
    method: PaymentMethod | None,
    currency: Currency,
    merchant: MerchantConfig,
    processors: Mapping[ProcessorId, ProcessorConfig],
) -> Routing:
    """``merchant``'s :data:`Routing` for ``method`` (``None``: the routing decides) in ``currency``."""
    return tuple(
        (rule, chain)
        for rule in ordered_rules(method, merchant.routing)
        if (chain := eligible_processors(rule, currency, processors))
    )


def amount_refusals(
    chain: tuple[ProcessorId, ...],
    amount_cents: int,
    currency: Currency,
    checks: Mapping[ProcessorId, AmountCheck],
) -> dict[ProcessorId, str]:
    """The processors of ``chain`` that cannot take the amount, each with its reason."""
    found: dict[ProcessorId, str] = {}
    for processor_id in chain:
        check = checks.get(processor_id)
        reason = check(amount_cents, currency) if check is not None else None
        if reason is not None:
            found[processor_id] = reason
    return found


def build_plan(
    ctx: CoreRequestContext,
    merchant: MerchantConfig,
    processors: Mapping[ProcessorId, ProcessorConfig] | None = None,
    amount_checks: Mapping[ProcessorId, AmountCheck] | None = None,
    routing: Routing | None = None,
) -> PaymentPlan:
    """Split ``ctx``'s amount over the merchant's routing rules, in preference order.

    Each step takes up to its rule's ``max_amount_cents`` and the rest falls to the next rule
    (ApplePay $60, then Card $40). A rule whose processors all refuse the currency or method is
    skipped. A processor that cannot take its step's amount (``amount_checks``) leaves the step's
    chain, unless no processor of the chain can (the policy refuses such a request first). When
    the rules run out first, the plan records the coverage shortfall. ``routing`` is the
    merchant's :func:`routing_chains` for the request's method and currency, when the caller
    keeps it (it is found from ``processors`` otherwise).
    """
    if routing is None:
        routing = routing_chains(ctx.payment_method, ctx.currency, merchant, processors or {})
    remaining = ctx.amount_cents
    steps: list[PaymentStep] = []
    for rule, eligible in routing:
        if remaining == 0:
            break
        chain = eligible
        take = remaining if rule.max_amount_cents is None else min(remaining, rule.max_amount_cents)
        refused = amount_refusals(chain, take, ctx.currency, amount_checks) if amount_checks else None
        if refused and len(refused) < len(chain):
            chain = tuple(processor_id for processor_id in chain if processor_id not in refused)
        steps.append(
            _step(
                index=len(steps),
                method=rule.method,
                amount_cents=take,
                processor_ids=chain,
                max_amount_cents=rule.max_amount_cents,
            )
        )
        remaining -= take
    return _plan(
        payment_id=ctx.payment_id,
        request_id=ctx.request_id,
        merchant_id=ctx.merchant_id,
        total_amount_cents=ctx.amount_cents,
        currency=ctx.currency,
        steps=tuple(steps),
        partial_policy=merchant.partial_policy,
    )
