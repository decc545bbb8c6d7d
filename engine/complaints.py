"""Merchant complaints: what merchants report from outside, to be set against recorded violations.

A complaint names a category (``double_charge``, ``timeout``, ...) and optionally the payment,
request or contract it is about. Mapping it to a contract (PRODUCT.md section 9) is the
analytics' job; this type only guarantees the fields are well formed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from engine.contracts import check_contract_id
from engine.errors import InvalidFieldError
from engine.events import check_timestamp
from engine.types import ContractId, MerchantId, PaymentId, RequestId, check_identifier, check_text
from engine.validation import ValidationIssue

MAX_DESCRIPTION_LENGTH = 5000

#: What a category is matched without, besides its case (as field names are matched, PRODUCT.md
#: section 5): a support desk's "Double-Charge" or "double.charge" is the taxonomy's "double_charge"
#: (a category is an identifier, without spaces, but a file imported may hold them).
CATEGORY_SEPARATORS = r"[\s_.\-]+"


def category_key(category: str) -> str:
    """A category as it is matched: lower case, without ``_``, ``.``, ``-`` and spaces. Two
    categories with the same key are one category."""
    return re.sub(CATEGORY_SEPARATORS, "", category.lower())


#: The categories every deployment understands; ``complaint_taxonomy`` in the config adds to them
#: and overrides them.
DEFAULT_TAXONOMY: Mapping[str, ContractId] = {
    "timeout": ContractId("router/timeout"),
    "slow_payment": ContractId("payment/latency-slo"),
    "double_charge": ContractId("idempotency/key-reused"),
    "partial_charge": ContractId("orchestrator/compensation-failed"),
    "wrong_amount": ContractId("orchestrator/sum"),
    "declined_unexpectedly": ContractId("router/retry-exhausted"),
    "payment_not_covered": ContractId("plan/coverage"),
    "request_rejected": ContractId("api/validation"),
}


def taxonomy(configured: Mapping[str, ContractId]) -> dict[str, ContractId]:
    """The defaults with the config's categories added (a configured category wins)."""
    return {**DEFAULT_TAXONOMY, **configured}


#: A plural's endings, dropped from a category no taxonomy entry names as written ("timeouts").
_PLURAL_ENDINGS = ("s", "es")


def taxonomy_category(category: str, categories: Iterable[str]) -> str | None:
    """The category of ``categories`` (a taxonomy's, a configured one last) that ``category``
    names however it is written: its case, ``_``, ``.``, ``-`` and spaces aside
    (:func:`category_key`), or in the plural (``timeouts``, ``Double-Charges``); ``None`` when it
    names none."""
    folded = {category_key(known): known for known in categories}
    key = category_key(category)
    if key in folded:
        return folded[key]
    singulars = (key.removesuffix(ending) for ending in _PLURAL_ENDINGS if key.endswith(ending))
    return next((folded[singular] for singular in singulars if singular in folded), None)


@dataclass(frozen=True, slots=True)
class Complaint:
    """One merchant complaint. ``complaint_id`` identifies it: importing it twice stores it once.
    ``validation_errors`` are the corrections made to it as it was filed (warnings, as a
    payment's, PRODUCT.md section 5): what it says, not what it is (see :meth:`same_content`)."""

    complaint_id: str
    merchant_id: MerchantId
    received_at: datetime
    category: str
    description: str = ""
    payment_id: PaymentId | None = None
    request_id: RequestId | None = None
    contract_id: ContractId | None = None
    validation_errors: tuple[ValidationIssue, ...] = ()

    def __post_init__(self) -> None:
        check_identifier("complaint_id", self.complaint_id)
        check_identifier("merchant_id", self.merchant_id)
        check_timestamp("received_at", self.received_at)
        check_identifier("category", self.category)
        check_text("description", self.description, max_length=MAX_DESCRIPTION_LENGTH, allow_empty=True)
        if self.payment_id is not None:
            check_identifier("payment_id", self.payment_id)
        if self.request_id is not None:
            check_identifier("request_id", self.request_id)
        if self.contract_id is not None:
            check_contract_id("contract_id", self.contract_id)
        if any(not isinstance(issue, ValidationIssue) or issue.blocks for issue in self.validation_errors):
            raise InvalidFieldError(
                "validation_errors", self.validation_errors, "must be warnings: an error stores nothing"
            )

    def same_content(self, other: Complaint) -> bool:
        """Whether ``other`` says what this complaint says, however each was spelled when filed."""
        return replace(other, validation_errors=self.validation_errors) == self
