"""Which signals stop a command: one rule for ``serve``, ``demo``, ``export`` and ``report``."""

from __future__ import annotations

import signal


def stop_signals(*, with_interrupt: bool) -> list[signal.Signals]:
    """SIGTERM, and SIGHUP unless it is ignored (first SIGINT too, when ``with_interrupt``).

    A hangup (the terminal or SSH session that ran the command closed, or an operator's
    ``kill -HUP`` expecting a reload) killed the process without a drain or a word in the log, and
    as a container's PID 1 it was ignored without one: it stops as SIGTERM does. Under ``nohup``
    (SIGHUP ignored from the start) it is left ignored.
    """
    taken = [signal.SIGINT, signal.SIGTERM] if with_interrupt else [signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        taken.append(signal.SIGHUP)
    return taken
