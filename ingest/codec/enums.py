"""Domain enums paired with their protobuf enums, and decoding that rejects ``*_UNSPECIFIED``."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Generic, TypeVar

from payments.config.v1 import config_pb2
from payments.events.v1 import events_pb2
from payments.plan.v1 import plan_pb2

from engine.config import ProcessorKind
from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, UnknownErrorCodeError, UnknownPaymentMethodError
from engine.methods import PartialPolicy, PaymentMethod
from engine.results import PaymentStatus
from engine.validation import IssueSeverity

D = TypeVar("D", bound=Enum)
W = TypeVar("W", bound=int)


class EnumTable(Generic[D, W]):
    """One domain enum and its protobuf enum, member by member."""

    __slots__ = ("_error", "_from_wire", "_to_wire", "wire_name")

    def __init__(
        self,
        wire_name: str,
        pairs: Mapping[D, W],
        error: type[InvalidFieldError] = InvalidFieldError,
    ) -> None:
        self.wire_name = wire_name
        self._to_wire = dict(pairs)
        self._from_wire: dict[int, D] = {int(number): member for member, number in pairs.items()}
        self._error = error

    @property
    def pairs(self) -> Mapping[D, W]:
        return self._to_wire

    def to_wire(self, member: D) -> W:
        return self._to_wire[member]

    def from_wire(self, field: str, number: int) -> D:
        """The domain member of wire value ``number``; unspecified or unknown values raise."""
        member = self._from_wire.get(number)
        if member is None:
            known = ", ".join(str(m.value) for m in self._to_wire)
            state = "is unspecified" if number == 0 else f"is not a known {self.wire_name} value"
            raise self._error(field, number, f"{state}: must be one of {known}")
        return member


PAYMENT_METHODS = EnumTable(
    "payments.plan.v1.PaymentMethod",
    {
        PaymentMethod.CARD: plan_pb2.PAYMENT_METHOD_CARD,
        PaymentMethod.APPLE_PAY: plan_pb2.PAYMENT_METHOD_APPLE_PAY,
        PaymentMethod.GOOGLE_PAY: plan_pb2.PAYMENT_METHOD_GOOGLE_PAY,
        PaymentMethod.PAYPAL: plan_pb2.PAYMENT_METHOD_PAYPAL,
        PaymentMethod.BANK_TRANSFER: plan_pb2.PAYMENT_METHOD_BANK_TRANSFER,
    },
    UnknownPaymentMethodError,
)

PARTIAL_POLICIES = EnumTable(
    "payments.plan.v1.PartialPolicy",
    {
        PartialPolicy.ALL_OR_NOTHING: plan_pb2.PARTIAL_POLICY_ALL_OR_NOTHING,
        PartialPolicy.ALLOW_PARTIAL: plan_pb2.PARTIAL_POLICY_ALLOW_PARTIAL,
    },
)

ERROR_CODES = EnumTable(
    "payments.events.v1.ErrorCode",
    {
        ErrorCode.TIMEOUT: events_pb2.ERROR_CODE_TIMEOUT,
        ErrorCode.DECLINED: events_pb2.ERROR_CODE_DECLINED,
        ErrorCode.INVALID_CARD: events_pb2.ERROR_CODE_INVALID_CARD,
        ErrorCode.NETWORK_FAILURE: events_pb2.ERROR_CODE_NETWORK_FAILURE,
        ErrorCode.UNKNOWN: events_pb2.ERROR_CODE_UNKNOWN,
        ErrorCode.PROCESSING_ERROR: events_pb2.ERROR_CODE_PROCESSING_ERROR,
        ErrorCode.PROCESSOR_UNAVAILABLE: events_pb2.ERROR_CODE_PROCESSOR_UNAVAILABLE,
        ErrorCode.RATE_LIMITED: events_pb2.ERROR_CODE_RATE_LIMITED,
        ErrorCode.MALFORMED_RESPONSE: events_pb2.ERROR_CODE_MALFORMED_RESPONSE,
        ErrorCode.POLICY_REJECTED: events_pb2.ERROR_CODE_POLICY_REJECTED,
        ErrorCode.COVERAGE_SHORTFALL: events_pb2.ERROR_CODE_COVERAGE_SHORTFALL,
        ErrorCode.PROCESSOR_ERROR: events_pb2.ERROR_CODE_PROCESSOR_ERROR,
    },
    UnknownErrorCodeError,
)

ISSUE_SEVERITIES = EnumTable(
    "payments.events.v1.IssueSeverity",
    {
        IssueSeverity.WARNING: events_pb2.ISSUE_SEVERITY_WARNING,
        IssueSeverity.ERROR: events_pb2.ISSUE_SEVERITY_ERROR,
    },
)

PAYMENT_STATUSES = EnumTable(
    "payments.events.v1.PaymentStatus",
    {
        PaymentStatus.SUCCEEDED: events_pb2.PAYMENT_STATUS_SUCCEEDED,
        PaymentStatus.PARTIALLY_SUCCEEDED: events_pb2.PAYMENT_STATUS_PARTIALLY_SUCCEEDED,
        PaymentStatus.FAILED: events_pb2.PAYMENT_STATUS_FAILED,
    },
)

PROCESSOR_KINDS = EnumTable(
    "payments.config.v1.ProcessorKind",
    {
        ProcessorKind.SIMULATED: config_pb2.PROCESSOR_KIND_SIMULATED,
        ProcessorKind.STRIPE: config_pb2.PROCESSOR_KIND_STRIPE,
    },
)
