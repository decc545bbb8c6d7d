"""Observability: traces, structured logs and the wiring of metrics to domain events.

``telemetry`` is the engine's Observer and the tee of the event sink; ``spans`` and ``logs`` take
what it gives them off the payment path through bounded drains (``drain``).
"""
