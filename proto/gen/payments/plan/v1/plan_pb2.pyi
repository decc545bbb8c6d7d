from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_METHOD_UNSPECIFIED: _ClassVar[PaymentMethod]
    PAYMENT_METHOD_CARD: _ClassVar[PaymentMethod]
    PAYMENT_METHOD_APPLE_PAY: _ClassVar[PaymentMethod]
    PAYMENT_METHOD_GOOGLE_PAY: _ClassVar[PaymentMethod]
    PAYMENT_METHOD_PAYPAL: _ClassVar[PaymentMethod]
    PAYMENT_METHOD_BANK_TRANSFER: _ClassVar[PaymentMethod]

class PartialPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTIAL_POLICY_UNSPECIFIED: _ClassVar[PartialPolicy]
    PARTIAL_POLICY_ALL_OR_NOTHING: _ClassVar[PartialPolicy]
    PARTIAL_POLICY_ALLOW_PARTIAL: _ClassVar[PartialPolicy]
PAYMENT_METHOD_UNSPECIFIED: PaymentMethod
PAYMENT_METHOD_CARD: PaymentMethod
PAYMENT_METHOD_APPLE_PAY: PaymentMethod
PAYMENT_METHOD_GOOGLE_PAY: PaymentMethod
PAYMENT_METHOD_PAYPAL: PaymentMethod
PAYMENT_METHOD_BANK_TRANSFER: PaymentMethod
PARTIAL_POLICY_UNSPECIFIED: PartialPolicy
PARTIAL_POLICY_ALL_OR_NOTHING: PartialPolicy
PARTIAL_POLICY_ALLOW_PARTIAL: PartialPolicy

class PaymentStep(_message.Message):
    __slots__ = ("index", "method", "amount_cents", "processor_ids", "max_amount_cents")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    method: PaymentMethod
    amount_cents: int
    processor_ids: _containers.RepeatedScalarFieldContainer[str]
    max_amount_cents: int
    def __init__(self, index: _Optional[int] = ..., method: _Optional[_Union[PaymentMethod, str]] = ..., amount_cents: _Optional[int] = ..., processor_ids: _Optional[_Iterable[str]] = ..., max_amount_cents: _Optional[int] = ...) -> None: ...

class PaymentPlan(_message.Message):
    __slots__ = ("payment_id", "request_id", "merchant_id", "total_amount_cents", "currency", "steps", "partial_policy")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    request_id: str
    merchant_id: str
    total_amount_cents: int
    currency: str
    steps: _containers.RepeatedCompositeFieldContainer[PaymentStep]
    partial_policy: PartialPolicy
    def __init__(self, payment_id: _Optional[str] = ..., request_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., total_amount_cents: _Optional[int] = ..., currency: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[PaymentStep, _Mapping]]] = ..., partial_policy: _Optional[_Union[PartialPolicy, str]] = ...) -> None: ...
