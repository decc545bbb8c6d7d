"""ContractMonitor: records violations of registered contracts, and reports on them per window.

Code names a contract by id; the registry supplies its severity and owner. An id the registry
does not list raises :class:`~engine.errors.UnknownContractError`: a programming error that tests
catch, never a silent drop. Violations go to the event sink, which stores them with the events
(and, wired by the composition root, counts and logs them).

:meth:`ContractMonitor.generate_report` reads the violations of a window back through a
:class:`ViolationHistory` and summarizes them per contract of the registry, broken or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.context import CoreRequestContext
from engine.contracts import Contract, ContractRegistry, ContractViolation, Severity, default_registry
from engine.errors import InvalidFieldError
from engine.ports import Clock, EventSink
from engine.types import MerchantId, PaymentId, RequestId

_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2}


class ViolationHistory(Protocol):
    async def violations_between(self, start: datetime, end: datetime) -> Sequence[ContractViolation]:
        """Every violation recorded at or after ``start`` and before ``end``."""
        ...


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """``[start, end)``, both timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name, value in (("window.start", self.start), ("window.end", self.end)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise InvalidFieldError(name, value, "must be a timezone-aware datetime")
        if self.end <= self.start:
            raise InvalidFieldError("window.end", self.end.isoformat(), "must be after window.start")

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class ContractStanding:
    """How one contract fared in a window."""

    contract: Contract
    violations: int
    requests: int  # distinct requests that broke it
    first_seen: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class ContractReport:
    """Every registered contract in a window: the broken ones first, by severity, then by count."""

    window: ReportWindow
    standings: tuple[ContractStanding, ...]

    @property
    def total(self) -> int:
        return sum(standing.violations for standing in self.standings)

    @property
    def broken(self) -> tuple[ContractStanding, ...]:
        return tuple(standing for standing in self.standings if standing.violations)


def summarize(
    registry: ContractRegistry, window: ReportWindow, violations: Iterable[ContractViolation]
) -> ContractReport:
    """The report of ``window`` from ``violations`` (those outside the window are ignored)."""
    counts: dict[str, int] = {}
    requests: dict[str, set[str]] = {}
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for violation in violations:
        if violation.timestamp not in window:
            continue
        contract_id = registry.get(violation.contract_id).id
        counts[contract_id] = counts.get(contract_id, 0) + 1
        requests.setdefault(contract_id, set()).add(violation.request_id)
        if contract_id not in first or violation.timestamp < first[contract_id]:
            first[contract_id] = violation.timestamp
        if contract_id not in last or violation.timestamp > last[contract_id]:
            last[contract_id] = violation.timestamp
    standings = [
        ContractStanding(
            contract=contract,
            violations=counts.get(contract.id, 0),
            requests=len(requests.get(contract.id, ())),
            first_seen=first.get(contract.id),
            last_seen=last.get(contract.id),
        )
        for contract in registry
    ]
    standings.sort(
        key=lambda s: (s.violations == 0, _SEVERITY_RANK[s.contract.severity], -s.violations, s.contract.id)
    )
    return ContractReport(window, tuple(standings))


class ContractMonitor:
    __slots__ = ("_clock", "_history", "_registry", "_sink")

    def __init__(
        self,
        sink: EventSink,
        clock: Clock,
        registry: ContractRegistry | None = None,
        history: ViolationHistory | None = None,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._registry = registry or default_registry()
        self._history = history

    @property
    def registry(self) -> ContractRegistry:
        return self._registry

    async def record_violation(
        self,
        contract_id: str,
        request_id: RequestId,
        message: str,
        *,
        payment_id: PaymentId | None = None,
        merchant_id: MerchantId | None = None,
    ) -> ContractViolation:
        """Record that request ``request_id`` broke ``contract_id``; the violation recorded."""
        violation = self._registry.violation(
            contract_id,
            request_id=request_id,
            message=message,
            timestamp=self._clock.now(),
            payment_id=payment_id,
            merchant_id=merchant_id,
        )
        await self._sink.record_violation(violation)
        return violation

    async def violated(self, ctx: CoreRequestContext, contract_id: str, message: str) -> ContractViolation:
        """Record that the payment of ``ctx`` broke ``contract_id``."""
        return await self.record_violation(
            contract_id,
            ctx.request_id,
            message,
            payment_id=ctx.payment_id,
            merchant_id=ctx.merchant_id,
        )

    async def generate_report(self, window: ReportWindow) -> ContractReport:
        """Every registered contract's violations in ``window``; needs a history to read from."""
        if self._history is None:
            raise InvalidFieldError("history", None, "a ContractMonitor without a history cannot report")
        found = await self._history.violations_between(window.start, window.end)
        return summarize(self._registry, window, found)
