"""PaymentPolicyEnforcer: the merchant rules a request must meet before anything is planned.

Refusals are values (:class:`PolicyDecision`), never exceptions: the orchestrator turns a refusal
into a ``failed`` result with ``policy_rejected`` and charges nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import MerchantConfig, PlatformConfig
from engine.context import CoreRequestContext
from engine.methods import PaymentMethod
from engine.money import Currency, Money
from engine.plan_builder import (
    AmountCheck,
    Routing,
    amount_refusals,
    build_plan,
    eligible_processors,
    routing_chains,
)
from engine.types import ProcessorId


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """``allowed``, or refused with a ``reason`` fit to show the merchant, the request ``field``
    at fault and a lower_snake_case ``code`` for it (what the API's 422 lists)."""

    allowed: bool
    reason: str | None = None
    field: str | None = None
    code: str | None = None


ALLOWED = PolicyDecision(True)
#: A bound on the routings remembered (see ``PaymentPolicyEnforcer._routing_refusal``): a process
#: with thousands of merchants paying in many currencies starts again rather than growing.
_MAX_ROUTINGS = 4096


class PaymentPolicyEnforcer:
    """Checks a request against its merchant's configuration."""

    __slots__ = ("_amount_checks", "_config", "_processors", "_routings")

    def __init__(
        self, config: PlatformConfig, amount_checks: Mapping[ProcessorId, AmountCheck] | None = None
    ) -> None:
        self._config = config
        self._processors = {processor.id: processor for processor in config.processors}
        self._amount_checks = amount_checks or {}
        #: Each (merchant, method, currency) routing's refusal or ``None`` and its chains, with the
        #: merchant's config they were found for: see :meth:`_routing_refusal`.
        self._routings: dict[
            tuple[str, PaymentMethod | None, str],
            tuple[MerchantConfig, PolicyDecision | None, Routing],
        ] = {}

    def check(self, ctx: CoreRequestContext, merchant: MerchantConfig) -> PolicyDecision:
        if ctx.amount_cents > merchant.max_amount_cents:
            maximum = Money(merchant.max_amount_cents, ctx.currency)
            reason = f"amount {ctx.amount} exceeds the merchant maximum {maximum}"
            return PolicyDecision(False, reason, "amount", "over_maximum")
        refusal = self._routing(merchant, ctx.payment_method, ctx.currency)[1]  # _routing_refusal
        if refusal is not None:
            return refusal
        return self._check_amounts(ctx, merchant) if self._amount_checks else ALLOWED

    def _routing_refusal(
        self, merchant: MerchantConfig, method: PaymentMethod | None, currency: Currency
    ) -> PolicyDecision | None:
        """Why ``merchant``'s routing cannot take ``method`` in ``currency``, or ``None`` when it can.

        Found once for each merchant config, method and currency: the answer depends on nothing
        else (the processors' configs are this enforcer's own), and every payment asks it twice
        (the API before it takes the payment, the orchestrator before it plans), which cost about
        2.5 µs each. The merchant's config object is kept with the answer, so a config given anew
        is looked at anew. At most one entry per method and currency of each merchant."""
        return self._routing(merchant, method, currency)[1]

    def routing(self, merchant: MerchantConfig, method: PaymentMethod | None, currency: Currency) -> Routing:
        """``merchant``'s rules for ``method`` in ``currency``, each with its eligible chain
        (:func:`~engine.plan_builder.routing_chains`), found with the refusal and kept with it: the
        orchestrator cuts every plan from it, rather than finding each rule's chain again."""
        return self._routing(merchant, method, currency)[2]

    def _routing(
        self, merchant: MerchantConfig, method: PaymentMethod | None, currency: Currency
    ) -> tuple[MerchantConfig, PolicyDecision | None, Routing]:
        key = (merchant.merchant_id, method, currency.code)
        known = self._routings.get(key)
        if known is not None and known[0] is merchant:
            return known
        found = (
            merchant,
            self._find_routing_refusal(merchant, method, currency),
            routing_chains(method, currency, merchant, self._processors),
        )
        if len(self._routings) >= _MAX_ROUTINGS:
            self._routings.clear()
        self._routings[key] = found
        return found

    def _find_routing_refusal(
        self, merchant: MerchantConfig, method: PaymentMethod | None, currency: Currency
    ) -> PolicyDecision | None:
        if method is not None:
            rules = [rule for rule in merchant.routing if rule.method is method]
            if not rules:
                enabled = ", ".join(sorted({rule.method.value for rule in merchant.routing}))
                reason = f"method {method.value} is not enabled for this merchant (enabled: {enabled})"
                return PolicyDecision(False, reason, "method", "method_not_enabled")
            if not any(eligible_processors(rule, currency, self._processors) for rule in rules):
                reason = f"no processor accepts {method.value} payments in {currency.code}"
                return PolicyDecision(False, reason, "currency", "currency_not_accepted")
        if not any(eligible_processors(rule, currency, self._processors) for rule in merchant.routing):
            reason = f"no processor accepts payments in {currency.code}"
            return PolicyDecision(False, reason, "currency", "currency_not_accepted")
        return None

    def _check_amounts(self, ctx: CoreRequestContext, merchant: MerchantConfig) -> PolicyDecision:
        """Refused when no processor of some step of the plan can take that step's amount."""
        if not self._amount_checks:
            return ALLOWED
        checks = self._amount_checks
        routing = self.routing(merchant, ctx.payment_method, ctx.currency)
        for step in build_plan(ctx, merchant, self._processors, routing=routing).steps:
            refused = amount_refusals(step.processor_ids, step.amount_cents, ctx.currency, checks)
            if len(refused) == len(step.processor_ids):
                reasons = "; ".join(f"{processor}: {why}" for processor, why in refused.items())
                amount = Money(step.amount_cents, ctx.currency)
                reason = f"no processor can take {amount} by {step.method.value} ({reasons})"
                return PolicyDecision(False, reason, "amount", "amount_not_supported")
        return ALLOWED
