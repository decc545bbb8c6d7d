import pytest

from engine.config import (
    FaultRates,
    LatencyProfile,
    MerchantConfig,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    RetryPolicy,
    RoutingRule,
)
from engine.errors import ConfigError, InvalidFieldError
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import ContractId, MerchantId, ProcessorId


def merchant(
    merchant_id: str = "m_acme", keys: tuple[str, ...] = ("sk_test_acme_123",), processor: str = "stripe_sim"
) -> MerchantConfig:
    return MerchantConfig(
        merchant_id=MerchantId(merchant_id),
        api_keys=keys,
        default_currency=Currency("USD"),
        routing=(
            RoutingRule(PaymentMethod.APPLE_PAY, (ProcessorId("applepay_sim"),), max_amount_cents=6000),
            RoutingRule(PaymentMethod.CARD, (ProcessorId(processor), ProcessorId("adyen_sim"))),
        ),
    )


PROCESSORS = tuple(
    ProcessorConfig(ProcessorId(name), ProcessorKind.SIMULATED, seed=42)
    for name in ("applepay_sim", "stripe_sim", "adyen_sim")
)


def test_the_sample_configuration_is_valid() -> None:
    config = PlatformConfig(merchants=(merchant(),), processors=PROCESSORS, admin_api_keys=("adm_test_123",))
    assert config.merchant("m_acme").routing[0].max_amount_cents == 6000
    assert config.processor("stripe_sim").kind is ProcessorKind.SIMULATED
    assert config.reports.every_days == 14


def test_routing_must_name_configured_processors() -> None:
    with pytest.raises(ConfigError, match=r"merchants\['m_acme'\].routing\[1\].processors='ghost'"):
        PlatformConfig(merchants=(merchant(processor="ghost"),), processors=PROCESSORS)


def test_routing_must_name_processors_that_take_the_rules_method() -> None:
    card_only = ProcessorConfig(
        ProcessorId("applepay_sim"), ProcessorKind.SIMULATED, methods=(PaymentMethod.CARD,)
    )
    with pytest.raises(ConfigError, match=r"routing\[0\].processors='applepay_sim': does not take apple_pay"):
        PlatformConfig(merchants=(merchant(),), processors=(card_only, *PROCESSORS[1:]))
    wallets = ProcessorConfig(
        ProcessorId("applepay_sim"), ProcessorKind.SIMULATED, methods=(PaymentMethod.APPLE_PAY,)
    )
    PlatformConfig(merchants=(merchant(),), processors=(wallets, *PROCESSORS[1:]))


def test_a_complaint_category_is_configured_once_however_it_is_written() -> None:
    """Complaints match a category whatever its case, _, . and -: two spellings would be a guess."""
    taxonomy = {"Double-Charge": ContractId("router/timeout"), "double_charge": ContractId("plan/coverage")}
    with pytest.raises(ConfigError, match="complaint_taxonomy.double_charge='double_charge': is the same"):
        PlatformConfig(merchants=(merchant(),), processors=PROCESSORS, complaint_taxonomy=taxonomy)


def test_ids_and_keys_are_unique() -> None:
    with pytest.raises(ConfigError, match="merchants.merchant_id='m_acme'"):
        PlatformConfig(merchants=(merchant(), merchant(keys=("other",))), processors=PROCESSORS)
    with pytest.raises(ConfigError, match="api_keys='sk_shared'"):
        PlatformConfig(
            merchants=(merchant(keys=("sk_shared",)), merchant("m_two", keys=("sk_shared",))),
            processors=PROCESSORS,
        )
    with pytest.raises(ConfigError, match="processors.id='stripe_sim'"):
        PlatformConfig(merchants=(), processors=(*PROCESSORS, PROCESSORS[1]))


def test_lookups_of_unknown_ids_are_domain_errors() -> None:
    config = PlatformConfig(merchants=(merchant(),), processors=PROCESSORS)
    with pytest.raises(ConfigError, match="merchant_id='m_nobody'"):
        config.merchant("m_nobody")
    with pytest.raises(ConfigError, match="processor_id='x'"):
        config.processor("x")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: RetryPolicy(max_attempts=0), "retry.max_attempts=0"),
        (lambda: RetryPolicy(base_delay_ms=50, max_delay_ms=10), "retry.max_delay_ms=10"),
        (lambda: RoutingRule(PaymentMethod.CARD, ()), "routing.processors"),
        (
            lambda: RoutingRule(PaymentMethod.CARD, (ProcessorId("a"),), max_amount_cents=0),
            "routing.max_amount_cents=0",
        ),
        (lambda: FaultRates(declined=0.7, timeout=0.5), "fault_rates=1.2"),
        (lambda: FaultRates(panic=-0.1), "fault_rates.panic=-0.1"),
        (lambda: FaultRates(timeout=float("nan")), "fault_rates.timeout=nan"),
        (lambda: LatencyProfile(p50_ms=100, p99_ms=50), "latency_ms.p99=50"),
        (lambda: ProcessorConfig(ProcessorId("s"), ProcessorKind.STRIPE), "api_key_env"),
        (lambda: ProcessorConfig(ProcessorId("s"), "paypal"), "kind='paypal'"),  # type: ignore[arg-type]
        (
            lambda: ProcessorConfig(
                ProcessorId("s"), ProcessorKind.STRIPE, api_key_env="K", api_base="ftp://x"
            ),
            "api_base='ftp://x'",
        ),
        (lambda: merchant(keys=()), "api_keys"),
    ],
)
def test_invalid_configuration_names_the_field_and_value(build: object, match: str) -> None:
    with pytest.raises((ConfigError, InvalidFieldError), match=match):
        build()  # type: ignore[operator]
