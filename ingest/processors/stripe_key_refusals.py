"""The operator's line when Stripe refuses payorch's API key (401, 403).

A refused key fails every payment's Stripe step with ``processor_unavailable`` (correct for the
payment: nothing was charged, the step falls back), which alone does not tell an operator whether
Stripe is down or the key was revoked. So the adapter writes one WARNING line saying so, naming
the processor and the environment variable that holds the key, never the key nor Stripe's message
(which names it, partly masked). One line per processor at most every ``interval_s``: a refused
key fails every payment, and the log must not be flooded with the same line; the next line says
how many refusals the quiet interval held. The attempts metric counts each refusal
(``payorch_processor_attempts_total{outcome="processor_unavailable"}``: a Stripe processor answers
that code for a refused key only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger("payorch.processors.stripe")

#: At most one line per processor in this many seconds.
DEFAULT_INTERVAL_S = 60.0


class KeyRefusalLog:
    """Rate-limited WARNING lines for one Stripe processor's refused API key."""

    __slots__ = ("_interval_s", "_last", "_monotonic", "_processor_id", "_quiet", "_variable")

    def __init__(
        self,
        processor_id: str,
        variable: str | None,
        monotonic: Callable[[], float],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self._processor_id = processor_id
        self._variable = variable
        self._monotonic = monotonic
        self._interval_s = interval_s
        self._last: float | None = None
        self._quiet = 0  # refusals since the last line, not written

    def refused(self, http_status: int | None) -> None:
        """Stripe refused the key (``http_status`` 401 or 403): write the line unless one was
        written less than ``interval_s`` ago."""
        now = self._monotonic()
        if self._last is not None and now - self._last < self._interval_s:
            self._quiet += 1
            return
        where = f"in ${self._variable}" if self._variable else "given to the processor"
        status = "" if http_status is None else f" ({http_status})"
        lacks = "; it lacks a permission payorch needs" if http_status == 403 else ""
        more = f"; {self._quiet} more refusals since the last line" if self._quiet else ""
        logger.warning(
            "stripe processor %s: Stripe refused the API key%s%s; check the key %s%s",
            self._processor_id,
            status,
            lacks,
            where,
            more,
        )
        self._last = now
        self._quiet = 0
