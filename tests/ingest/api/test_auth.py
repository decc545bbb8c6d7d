from __future__ import annotations

from engine.config import MerchantConfig, PlatformConfig, ProcessorConfig, ProcessorKind, RoutingRule
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import MerchantId, ProcessorId
from ingest.api.auth import ApiKeys, Principal


def _config() -> PlatformConfig:
    def merchant(name: str, key: str) -> MerchantConfig:
        return MerchantConfig(
            merchant_id=MerchantId(name),
            api_keys=(key,),
            default_currency=Currency("USD"),
            routing=(RoutingRule(PaymentMethod.CARD, (ProcessorId("sim"),)),),
        )

    return PlatformConfig(
        merchants=(merchant("m_a", "sk_a"), merchant("m_b", "sk_b")),
        processors=(ProcessorConfig(ProcessorId("sim"), ProcessorKind.SIMULATED),),
        admin_api_keys=("adm_1",),
    )


def test_keys_name_their_merchant_or_admin() -> None:
    keys = ApiKeys(_config())

    assert keys.authenticate("Bearer sk_a") == Principal(MerchantId("m_a"))
    assert keys.authenticate("bearer   sk_b ") == Principal(MerchantId("m_b"))
    admin = keys.authenticate("Bearer adm_1")
    assert admin is not None
    assert admin.is_admin


def test_missing_malformed_and_unknown_keys_are_nobody() -> None:
    keys = ApiKeys(_config())

    for header in (None, "", "Bearer", "Bearer ", "Basic sk_a", "sk_a", "Bearer sk_a_extra", "Bearer SK_A"):
        assert keys.authenticate(header) is None, header
    assert keys.authenticate("Bearer " + "x" * 5000) is None


def test_only_digests_are_kept() -> None:
    keys = ApiKeys(_config())

    assert "sk_a" not in repr(keys._table)


def test_a_merchant_sees_only_its_own_data() -> None:
    merchant = Principal(MerchantId("m_a"))
    admin = Principal(None)

    assert merchant.may_see("m_a")
    assert not merchant.may_see("m_b")
    assert admin.may_see("m_b")
