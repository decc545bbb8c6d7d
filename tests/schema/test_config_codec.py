"""Platform configurations survive domain -> proto -> bytes -> proto -> domain unchanged."""

from __future__ import annotations

from hypothesis import given
from payments.config.v1 import config_pb2

from engine.circuit_breaker import BreakerPolicy
from engine.config import (
    DEFAULT_MAX_IN_FLIGHT,
    ComplaintLimits,
    EscalationConfig,
    FaultRates,
    LatencyProfile,
    PlatformConfig,
    ReportConfig,
    RetryPolicy,
    StoreConfig,
)
from ingest.codec.config import config_from_proto, config_to_proto
from ingest.config_file import load_sample_config, parse_config, sample_config_text
from tests.strategies import platform_configs


@given(platform_configs())
def test_config_round_trips_through_bytes(config: PlatformConfig) -> None:
    wire = config_to_proto(config).SerializeToString(deterministic=True)
    decoded = config_from_proto(config_pb2.PlatformConfig.FromString(wire))
    assert decoded == config
    assert dict(decoded.complaint_taxonomy) == dict(config.complaint_taxonomy)


def test_absent_sub_messages_decode_to_the_domain_defaults() -> None:
    message = config_pb2.PlatformConfig(
        processors=[config_pb2.ProcessorConfig(id="sim", kind=config_pb2.PROCESSOR_KIND_SIMULATED)],
        merchants=[
            config_pb2.MerchantConfig(
                merchant_id="m_acme",
                api_keys=["sk_test_acme_123"],
                default_currency="USD",
                routing=[config_pb2.RoutingRule(method="PAYMENT_METHOD_CARD", processors=["sim"])],
                partial_policy="PARTIAL_POLICY_ALL_OR_NOTHING",
                max_amount_cents=100_000_000,
                timeout_ms=2000,
            )
        ],
    )
    config = config_from_proto(message)
    assert config.escalations == EscalationConfig()
    assert config.reports == ReportConfig()
    assert config.store == StoreConfig()
    assert config.merchants[0].retry == RetryPolicy()
    assert config.merchants[0].latency_slo_ms is None
    assert config.processors[0].latency == LatencyProfile()
    assert config.processors[0].fault_rates == FaultRates()
    assert config.processors[0].api_key_env is None
    assert config.processors[0].breaker == BreakerPolicy()


def test_a_merchant_written_before_its_payments_in_flight_were_capped_decodes_to_the_default() -> None:
    message = config_to_proto(load_sample_config())
    message.merchants[0].ClearField("max_in_flight")
    decoded = config_from_proto(message).merchants[0].max_in_flight
    assert decoded == DEFAULT_MAX_IN_FLIGHT  # absent is the default, not 0
    assert config_from_proto(config_to_proto(load_sample_config())).merchants[0].max_in_flight == 500


def test_a_merchant_written_before_its_complaints_were_limited_decodes_to_the_defaults() -> None:
    message = config_to_proto(load_sample_config())
    message.merchants[0].ClearField("complaint_limits")
    message.merchants[1].complaint_limits.ClearField("per_day")
    message.merchants[1].complaint_limits.per_minute = 7
    decoded = config_from_proto(message)

    assert decoded.merchants[0].complaint_limits == ComplaintLimits(per_minute=600, per_day=10_000)
    assert decoded.merchants[1].complaint_limits == ComplaintLimits(per_minute=7)  # absent, not 0


def test_a_store_written_before_the_hot_window_field_decodes_to_its_default() -> None:
    earlier = config_pb2.StoreConfig(max_rows=100, max_wait_ms=5, admit_limit=1000, memory_limit_mb=0)
    never_held = config_pb2.StoreConfig(max_rows=100, admit_limit=1000, idempotency_hot_s=0)
    decoded = []
    for store in (earlier, never_held):
        message = config_to_proto(load_sample_config())
        message.store.CopyFrom(store)
        decoded.append(config_from_proto(message).store.idempotency_hot_s)
    assert decoded == [600, 0]  # absent is the default, not 0


def test_a_store_without_admin_reads_decodes_to_half_the_cores_and_one_with_them_keeps_them() -> None:
    message = config_to_proto(load_sample_config())
    assert not message.store.HasField("admin_reads")
    assert config_from_proto(message).store.admin_reads is None  # half the cores, not 0
    message.store.admin_reads = 3
    assert config_from_proto(message).store.admin_reads == 3


def test_a_store_written_before_admin_reads_were_paced_decodes_to_the_default_pace() -> None:
    message = config_to_proto(load_sample_config())
    message.store.ClearField("admin_read_idle_s")
    message.store.ClearField("admin_read_max_s")
    store = config_from_proto(message).store
    assert (store.admin_read_idle_s, store.admin_read_max_s) == (30, 300)  # absent is the default, not 0


def test_a_store_written_before_the_fair_share_field_decodes_to_its_default() -> None:
    message = config_to_proto(load_sample_config())
    message.store.ClearField("fair_share_percent")
    assert config_from_proto(message).store.fair_share_percent == 50  # absent is the default, not 0
    message.store.fair_share_percent = 80
    decoded = config_pb2.PlatformConfig.FromString(message.SerializeToString())
    assert config_from_proto(decoded).store.fair_share_percent == 80


def test_a_processors_breaker_survives_the_canonical_form_and_its_absent_fields_are_the_defaults() -> None:
    config = parse_config(
        sample_config_text().replace(
            "  - id: stripe_sim\n",
            "  - id: stripe_sim\n    breaker: {failure_threshold: 2, cool_down_s: 7.5}\n",
        )
    )
    message = config_pb2.PlatformConfig.FromString(config_to_proto(config).SerializeToString())
    assert config_from_proto(message).processor("stripe_sim").breaker == BreakerPolicy(2, 7.5)
    # A processor written before its breaker was configurable, or naming one figure only.
    processor = next(p for p in message.processors if p.id == "stripe_sim")
    decoded = []
    for breaker in (
        None,
        config_pb2.BreakerPolicy(failure_threshold=3),
        config_pb2.BreakerPolicy(cool_down_s=120),
        config_pb2.BreakerPolicy(min_timeout_ms=0),
        config_pb2.BreakerPolicy(min_timeout_ms=250),
    ):
        processor.ClearField("breaker")
        if breaker is not None:
            processor.breaker.CopyFrom(breaker)
        decoded.append(config_from_proto(message).processor("stripe_sim").breaker)
    assert decoded == [
        BreakerPolicy(),
        BreakerPolicy(3, 30.0),
        BreakerPolicy(5, 120.0),
        BreakerPolicy(min_timeout_ms=0),  # 0 (every timeout counts) is not absent (resolved)
        BreakerPolicy(min_timeout_ms=250),
    ]
