"""ContractMonitor: recording by id, and the per-window report over the whole registry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from engine.contracts import ContractViolation, Severity, default_registry
from engine.errors import InvalidFieldError, UnknownContractError
from engine.monitor import ContractMonitor, ReportWindow
from engine.types import MerchantId, RequestId
from tests.engine.fakes import InMemorySink, ManualClock


class SinkHistory:
    """The violations a sink recorded, read back as a store would."""

    def __init__(self, sink: InMemorySink) -> None:
        self.sink = sink

    async def violations_between(self, start: datetime, end: datetime) -> Sequence[ContractViolation]:
        return [v for v in self.sink.violations if start <= v.timestamp < end]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_a_violation_takes_its_severity_and_owner_from_the_registry(clock: ManualClock) -> None:
    sink = InMemorySink()
    monitor = ContractMonitor(sink, clock)

    recorded = await monitor.record_violation(
        "router/timeout", RequestId("req_1"), "stripe_sim took 2,400 ms", merchant_id=MerchantId("m_acme")
    )

    assert sink.violations == [recorded]
    assert (recorded.severity, recorded.owner, recorded.timestamp) == (Severity.MAJOR, "routing", clock.now())
    assert recorded.merchant_id == "m_acme" and recorded.payment_id is None


async def test_an_unknown_contract_id_is_refused_and_nothing_is_recorded(clock: ManualClock) -> None:
    sink = InMemorySink()
    with pytest.raises(UnknownContractError):
        await ContractMonitor(sink, clock).record_violation("router/slowness", RequestId("req_1"), "x")
    assert sink.violations == []


async def test_the_report_lists_every_contract_most_severe_and_most_broken_first(clock: ManualClock) -> None:
    sink = InMemorySink()
    monitor = ContractMonitor(sink, clock, history=SinkHistory(sink))
    start = clock.now()
    await monitor.record_violation("api/validation", RequestId("req_1"), "amount corrected")
    clock.advance(60)
    await monitor.record_violation("router/timeout", RequestId("req_2"), "slow")
    await monitor.record_violation("router/timeout", RequestId("req_2"), "slow again")
    await monitor.record_violation("router/retry-exhausted", RequestId("req_3"), "gave up")
    clock.advance(60)
    await monitor.record_violation("orchestrator/sum", RequestId("req_4"), "off by one")
    clock.advance(3600)
    await monitor.record_violation("orchestrator/sum", RequestId("req_5"), "after the window")

    report = await monitor.generate_report(ReportWindow(start, start + timedelta(minutes=30)))

    assert [standing.contract.id for standing in report.standings][:4] == [
        "orchestrator/sum",
        "router/timeout",
        "router/retry-exhausted",
        "api/validation",
    ]
    assert len(report.standings) == len(default_registry())
    assert report.total == 5
    counts = {s.contract.id: (s.violations, s.requests) for s in report.broken}
    assert counts == {
        "orchestrator/sum": (1, 1),
        "router/timeout": (2, 1),
        "router/retry-exhausted": (1, 1),
        "api/validation": (1, 1),
    }
    timeout = next(s for s in report.standings if s.contract.id == "router/timeout")
    assert timeout.first_seen == timeout.last_seen == start + timedelta(seconds=60)
    quiet = next(s for s in report.standings if s.contract.id == "observer/dropped")
    assert (quiet.violations, quiet.first_seen) == (0, None)


async def test_a_window_must_be_aware_and_forward(clock: ManualClock) -> None:
    now = clock.now()
    with pytest.raises(InvalidFieldError):
        ReportWindow(now, now)
    with pytest.raises(InvalidFieldError):
        ReportWindow(now.replace(tzinfo=None), now + timedelta(days=1))


async def test_a_monitor_without_history_says_it_cannot_report(clock: ManualClock) -> None:
    monitor = ContractMonitor(InMemorySink(), clock)
    with pytest.raises(InvalidFieldError, match="history"):
        await monitor.generate_report(ReportWindow(clock.now(), clock.now() + timedelta(days=14)))
