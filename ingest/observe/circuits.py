"""What an operator is told when a processor's circuit changes: the gauge, and one log line.

``payorch_circuit_state`` shows the state; the line says when it changed and what it means for
payments (an open circuit's processor is skipped: its payments go to the next processor of their
chains, or fail ``processor_unavailable`` when it was the last). Without the line, the only trace
of a circuit that opened was the skip named in a failed step's ``router/retry-exhausted``
violation; a payment that succeeded at its fallback did not show it at all.

Called by the breakers on the payment path, and only on a change of state: the line goes on the
log's bounded pipe, never waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from engine.circuit_breaker import BreakerPolicy, CircuitState
from engine.types import ProcessorId
from ingest.api.metrics import ApiMetrics

logger = logging.getLogger("payorch.circuits")


class CircuitReporter:
    """A :class:`~engine.circuit_breaker.CircuitWatcher`: the metric, and one line per change.
    The line of a processor's opening says the figures of its own breaker (``policies``, the
    breakers' own), ``policy``'s for a processor that has none there."""

    def __init__(
        self,
        metrics: ApiMetrics,
        policy: BreakerPolicy,
        policies: Mapping[ProcessorId, BreakerPolicy] | None = None,
    ) -> None:
        self._metrics = metrics
        self._policy = policy
        self._policies = dict(policies or {})
        #: Each processor's state as last heard: a circuit that opens from half-open had its
        #: probe fail, one fault, not ``failure_threshold`` of them.
        self._states: dict[str, CircuitState] = {}
        #: The same of each merchant's own circuits, by processor and merchant.
        self._merchant_states: dict[tuple[str, str], CircuitState] = {}

    def circuit_changed(self, processor_id: str, state: CircuitState) -> None:
        self._metrics.circuit_changed(processor_id, state)
        before = self._states.get(processor_id, CircuitState.CLOSED)
        self._states[processor_id] = state
        if state is CircuitState.OPEN:
            policy = self._policies.get(ProcessorId(processor_id), self._policy)
            if before is CircuitState.HALF_OPEN:
                logger.warning(
                    "circuit of %s opened again: its probe failed; its charges are skipped for %g s, "
                    "then one probe goes",
                    processor_id,
                    policy.cool_down_s,
                )
                return
            logger.warning(
                "circuit of %s opened: %d processor faults in a row (timeouts, network failures, "
                "refusals, bad answers); its charges are skipped for %g s, then one probe goes",
                processor_id,
                policy.failure_threshold,
                policy.cool_down_s,
            )
        elif state is CircuitState.HALF_OPEN:
            logger.info("circuit of %s half-open: its cool-down is over, one probe goes", processor_id)
        else:
            logger.info("circuit of %s closed: its probe was answered, its attempts go again", processor_id)

    def merchant_circuit_changed(self, processor_id: str, merchant_id: str, state: CircuitState) -> None:
        """One merchant's own circuit for a processor changed: a line only (no metric may carry a
        merchant id). It opens on the timeouts of a ``timeout_ms`` shorter than the processor's
        ``breaker.min_timeout_ms``, and skips the processor for that merchant alone."""
        policy = self._policies.get(ProcessorId(processor_id), self._policy)
        before = self._merchant_states.get((processor_id, merchant_id), CircuitState.CLOSED)
        self._merchant_states[processor_id, merchant_id] = state
        if state is CircuitState.OPEN and before is CircuitState.HALF_OPEN:
            # Its probe ran out once; "ran out 5 times in a row" would be false.
            logger.warning(
                "circuit of %s for merchant %s opened again: its probe ran out of its timeout_ms, "
                "shorter than the processor's min_timeout_ms %s; its charges there are skipped for "
                "%g s (other merchants' are not), then one probe goes",
                processor_id,
                merchant_id,
                policy.min_timeout_ms,
                policy.cool_down_s,
            )
        elif state is CircuitState.OPEN:
            logger.warning(
                "circuit of %s for merchant %s opened: its timeout_ms, shorter than the processor's "
                "min_timeout_ms %s, ran out %d times in a row; its charges there are skipped for %g s "
                "(other merchants' are not), then one probe goes",
                processor_id,
                merchant_id,
                policy.min_timeout_ms,
                policy.failure_threshold,
                policy.cool_down_s,
            )
        elif state is CircuitState.CLOSED:
            logger.info(
                "circuit of %s for merchant %s closed: its probe was answered", processor_id, merchant_id
            )
