"""Requests and configuration shared by the Stripe adapter's tests."""

from engine.config import ProcessorConfig, ProcessorKind
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.processor import ChargeRequest, RefundRequest
from engine.types import PaymentId, ProcessorId

KEY = "pay_1:step:0"
API_KEY = "sk_test_fake_123"


def config(api_base: str) -> ProcessorConfig:
    return ProcessorConfig(
        ProcessorId("stripe_live"), ProcessorKind.STRIPE, api_key_env="STRIPE_API_KEY", api_base=api_base
    )


def charge_request(
    key: str = KEY,
    *,
    amount: int = 1250,
    currency: str = "USD",
    card: str | None = None,
    payment_method: str | None = None,
) -> ChargeRequest:
    metadata = {"card_number": card} if card else {}
    if payment_method:
        metadata["payment_method"] = payment_method
    return ChargeRequest(PaymentId("pay_1"), 0, key, amount, Currency(currency), PaymentMethod.CARD, metadata)


def refund_request(key: str = KEY, amount: int = 1250, currency: str = "USD") -> RefundRequest:
    return RefundRequest(PaymentId("pay_1"), 0, key, amount, Currency(currency))
