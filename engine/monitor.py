"""ContractMonitor: records violations of registered contracts through the event sink.

Code names a contract by id; the registry supplies its severity and owner. An id the registry
does not list raises :class:`~engine.errors.UnknownContractError`: a programming error that tests
catch, never a silent drop.
"""

from __future__ import annotations

from engine.context import CoreRequestContext
from engine.contracts import ContractRegistry, default_registry
from engine.ports import Clock, EventSink
from engine.types import MerchantId, PaymentId, RequestId


class ContractMonitor:
    __slots__ = ("_clock", "_registry", "_sink")

    def __init__(self, sink: EventSink, clock: Clock, registry: ContractRegistry | None = None) -> None:
        self._sink = sink
        self._clock = clock
        self._registry = registry or default_registry()

    @property
    def registry(self) -> ContractRegistry:
        return self._registry

    async def record_violation(self, ctx: CoreRequestContext, contract_id: str, message: str) -> None:
        """Record that the payment of ``ctx`` broke ``contract_id``."""
        await self.record(
            contract_id,
            message,
            request_id=ctx.request_id,
            payment_id=ctx.payment_id,
            merchant_id=ctx.merchant_id,
        )

    async def record(
        self,
        contract_id: str,
        message: str,
        *,
        request_id: RequestId,
        payment_id: PaymentId | None = None,
        merchant_id: MerchantId | None = None,
    ) -> None:
        """Record a violation of ``contract_id`` by a request that never became a context (a
        refused request, a reused idempotency key)."""
        await self._sink.record_violation(
            self._registry.violation(
                contract_id,
                request_id=request_id,
                message=message,
                timestamp=self._clock.now(),
                payment_id=payment_id,
                merchant_id=merchant_id,
            )
        )
