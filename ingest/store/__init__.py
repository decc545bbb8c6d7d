"""The event store: every event, violation, result, idempotency key and complaint in
``DIR/payorch.duckdb``, written by one thread in batches (ARCHITECTURE.md decisions 1-3)."""
