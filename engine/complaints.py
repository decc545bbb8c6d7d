"""Merchant complaints: what merchants report from outside, to be set against recorded violations.

A complaint names a category (``double_charge``, ``timeout``, ...) and optionally the payment,
request or contract it is about. Mapping it to a contract (PRODUCT.md section 9) is the
analytics' job; this type only guarantees the fields are well formed.
"""

from __future__ import annotations

import re
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
