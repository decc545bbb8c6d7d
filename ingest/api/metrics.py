"""The API's Prometheus metrics (PRODUCT.md section 8), in a registry of the app's own.

Labels never carry merchant, request or payment ids, nor free text: a validation issue's field
is reduced to its canonical top-level name (``metadata.note`` counts as ``metadata``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.validation import ValidationIssue

CONTENT_TYPE = CONTENT_TYPE_LATEST
_FIELDS = frozenset({"body", "merchant_id", "amount", "currency", "method", "metadata", "idempotency_key"})


class ApiMetrics:
    __slots__ = ("_by_issue", "_by_status", "payments", "registry", "replays", "validation_issues")

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.payments = Counter(
            "payorch_payments_total",
            "Payment requests by outcome (succeeded, partially_succeeded, failed, rejected).",
            ["status"],
            registry=self.registry,
        )
        self.validation_issues = Counter(
            "payorch_validation_issues_total",
            "Corrections and refusals of the permissive parser, by field and code.",
            ["field", "code"],
            registry=self.registry,
        )
        self.replays = Counter(
            "payorch_idempotent_replays_total",
            "Requests answered with a stored response for a repeated idempotency key.",
            registry=self.registry,
        )

        # Labelled children by label values: ``labels()`` takes a lock and builds a key every
        # call, and these are counted on every payment.
        self._by_status: dict[str, Counter] = {}
        self._by_issue: dict[tuple[str, str], Counter] = {}

    def count_payment(self, status: str) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self.payments.labels(status)
        child.inc()

    def count_issues(self, issues: tuple[ValidationIssue, ...]) -> None:
        for issue in issues:
            top = issue.field.partition(".")[0]
            labels = (top if top in _FIELDS else "other", issue.code)  # bounded: no free text
            child = self._by_issue.get(labels)
            if child is None:
                child = self._by_issue[labels] = self.validation_issues.labels(*labels)
            child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
