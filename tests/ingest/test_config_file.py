import copy
import datetime
import functools
import operator
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.circuit_breaker import BreakerPolicy
from engine.config import ProcessorKind, StoreConfig
from engine.methods import PartialPolicy, PaymentMethod
from ingest.config_file import (
    MAX_CONFIG_BYTES,
    config_from_mapping,
    load_config,
    load_sample_config,
    parse_config,
    sample_config_text,
)
from ingest.config_yaml import _StrictLoader
from ingest.errors import ConfigFileError

MINIMAL = """
merchants:
  - merchant_id: m_acme
    api_keys: [sk_test_acme_123]
    default_currency: USD
    routing:
      - {method: card, processors: [stripe_sim]}
processors:
  - {id: stripe_sim, kind: simulated}
"""


def test_the_sample_configuration_loads_with_the_product_shape() -> None:
    config = load_sample_config()
    acme = config.merchant("m_acme")
    assert acme.partial_policy is PartialPolicy.ALL_OR_NOTHING
    assert [rule.method for rule in acme.routing] == [PaymentMethod.APPLE_PAY, PaymentMethod.CARD]
    assert acme.routing[0].max_amount_cents == 6000
    assert acme.routing[1].processors == ("stripe_sim", "adyen_sim")
    assert acme.retry.max_attempts == 3
    assert config.processor("stripe_live").kind is ProcessorKind.STRIPE
    assert config.processor("stripe_sim").fault_rates.declined == 0.03
    assert config.complaint_taxonomy["timeout"] == "router/timeout"
    assert config.reports.mismatch.min_ratio == 0.1
    assert config.admin_api_keys == ("adm_test_123",)


def test_defaults_fill_what_a_minimal_file_leaves_out() -> None:
    config = parse_config(MINIMAL)
    merchant = config.merchant("m_acme")
    assert merchant.timeout_ms == 2000
    assert merchant.max_amount_cents == 100_000_000
    assert config.reports.every_days == 14
    assert config.escalations.webhook_url is None
    assert config.store == StoreConfig(max_rows=5000, max_wait_ms=0, admit_limit=20_000)


def test_the_store_block_sets_group_commit_and_backpressure() -> None:
    config = parse_config(MINIMAL + "store: {max_rows: 200, max_wait_ms: 5}\n")
    assert config.store == StoreConfig(max_rows=200, max_wait_ms=5, admit_limit=20_000)


def test_the_store_block_bounds_duckdbs_memory() -> None:
    config = parse_config(MINIMAL + "store: {memory_limit_mb: 512}\n")
    assert config.store == StoreConfig(memory_limit_mb=512)
    assert parse_config(MINIMAL).store.memory_limit_bytes() is None  # a share of the machine's
    assert parse_config(MINIMAL + "store: {memory_limit: 1GiB}\n").store == StoreConfig(memory_limit="1GiB")
    held = parse_config(MINIMAL + "store: {idempotency_hot_s: 60}\n").store
    assert held == StoreConfig(idempotency_hot_s=60)
    assert parse_config(MINIMAL).store.idempotency_hot_s == 600


def test_the_store_block_sets_the_admin_reads_run_at_once() -> None:
    """``admin_reads`` could be set only by a program embedding the app (``Settings``): an
    operator of ``payorch serve`` on a large machine, or one sharing two cores with the payments,
    had half the cores whatever they wanted."""
    assert parse_config(MINIMAL + "store: {admin_reads: 3}\n").store == StoreConfig(admin_reads=3)
    assert parse_config(MINIMAL).store.admin_reads is None  # half the cores, as before


def test_the_store_block_sets_how_slowly_an_admin_read_may_be_taken() -> None:
    paced = parse_config(MINIMAL + "store: {admin_read_idle_s: 10, admin_read_max_s: 900}\n").store
    assert (paced.admin_read_idle_s, paced.admin_read_max_s) == (10, 900)
    defaults = parse_config(MINIMAL).store
    assert (defaults.admin_read_idle_s, defaults.admin_read_max_s) == (30, 300)


def test_the_store_block_sets_where_a_merchant_past_its_share_is_refused() -> None:
    config = parse_config(MINIMAL + "store: {admit_limit: 1000, fair_share_percent: 80}\n")
    assert config.store == StoreConfig(admit_limit=1000, fair_share_percent=80)
    assert parse_config(MINIMAL).store.fair_share_percent == 50


def test_processors_may_limit_their_currencies_and_methods() -> None:
    text = MINIMAL.replace(
        "{id: stripe_sim, kind: simulated}",
        "{id: stripe_sim, kind: simulated, currencies: [usd, ' eur'], methods: [card, apple_pay]}",
    )
    processor = parse_config(text).processor("stripe_sim")
    assert [c.code for c in processor.currencies] == ["USD", "EUR"]
    assert processor.methods == (PaymentMethod.CARD, PaymentMethod.APPLE_PAY)
    with pytest.raises(ConfigFileError, match=r"processors\[0\].methods\[0\]: 'cash'"):
        parse_config(MINIMAL.replace("kind: simulated}", "kind: simulated, methods: [cash]}"))
    with pytest.raises(ConfigFileError, match=r"processors\[0\].currencies\[0\]: 'XYZ'"):
        parse_config(MINIMAL.replace("kind: simulated}", "kind: simulated, currencies: [XYZ]}"))


def test_each_processor_may_tune_its_circuit_breaker() -> None:
    config = parse_config(
        MINIMAL.replace("processors: [stripe_sim]", "processors: [stripe_sim, adyen_sim]")
        + "  - id: adyen_sim\n    kind: simulated\n    breaker: {failure_threshold: 2, cool_down_s: 7.5}\n"
        + "  - {id: spare_sim, kind: simulated, breaker: {cool_down_s: 120}}\n"
    )
    assert config.processor("stripe_sim").breaker == BreakerPolicy(failure_threshold=5, cool_down_s=30)
    assert config.processor("adyen_sim").breaker == BreakerPolicy(failure_threshold=2, cool_down_s=7.5)
    assert config.processor("spare_sim").breaker == BreakerPolicy(failure_threshold=5, cool_down_s=120)
    sample = load_sample_config()
    assert sample.processor("stripe_sim").breaker == BreakerPolicy()  # absent: as before
    assert sample.processor("stripe_live").breaker == BreakerPolicy(failure_threshold=10, cool_down_s=60)


def test_a_processors_min_timeout_ms_is_as_given_or_resolved_against_its_merchants_budgets() -> None:
    # MINIMAL's merchant gives each attempt 2000 ms (the default): absent, 1000 ms counts.
    config = parse_config(
        MINIMAL.replace("processors: [stripe_sim]", "processors: [stripe_sim, adyen_sim]")
        + "  - {id: adyen_sim, kind: simulated, breaker: {min_timeout_ms: 0}}\n"
    )
    assert config.processor("stripe_sim").breaker.min_timeout_ms is None
    assert config.breaker_policy("stripe_sim").min_timeout_ms == 1000
    assert config.breaker_policy("adyen_sim").min_timeout_ms == 0  # every timeout counts
    # Every merchant routed there is quicker than 1 s: the most patient one's budget counts.
    hasty = parse_config(
        MINIMAL.replace("default_currency: USD", "default_currency: USD\n    timeout_ms: 300")
    )
    assert hasty.breaker_policy("stripe_sim").min_timeout_ms == 300


def test_a_processor_routed_for_a_method_it_does_not_take_is_refused() -> None:
    """Else every payment of the rule's method is refused (422), and nothing said so at start."""
    text = MINIMAL.replace("kind: simulated}", "kind: simulated, methods: [apple_pay, paypal]}")
    with pytest.raises(ConfigFileError) as refused:
        parse_config(text, "payorch.yaml")
    assert str(refused.value) == (
        "payorch.yaml: merchants[0].routing[0].processors='stripe_sim': "
        "does not take card (its methods: apple_pay, paypal)"
    )


def test_a_complaint_category_given_in_two_spellings_is_refused() -> None:
    """A complaint's category is matched whatever its case, _, . and -, so these are one category
    mapped to two contracts: one would win silently, by the order of the file."""
    text = MINIMAL + "complaint_taxonomy: {double.charge: router/timeout, Double-Charge: plan/coverage}\n"
    with pytest.raises(ConfigFileError) as refused:
        parse_config(text, "payorch.yaml")
    assert str(refused.value) == (
        "payorch.yaml: complaint_taxonomy['Double-Charge']: is the same category as 'double.charge' "
        "(matched whatever their case, _, . and -)"
    )


@pytest.mark.parametrize(
    ("processor", "expected"),
    [
        (
            "{id: stripe_sim, kind: stripe, api_key_env: K, fault_rates: {timeout: 0.5}}",
            "processors[0].fault_rates: applies to simulated processors only, not stripe",
        ),
        (
            "{id: stripe_sim, kind: stripe, api_key_env: K, seed: 7}",
            "processors[0].seed: applies to simulated processors only, not stripe",
        ),
        (
            "{id: stripe_sim, kind: simulated, api_base: 'https://api.stripe.com'}",
            "processors[0].api_base: applies to stripe processors only, not simulated",
        ),
    ],
)
def test_a_field_the_processors_kind_does_not_read_is_refused(processor: str, expected: str) -> None:
    """It would be ignored: fault rates on a stripe processor used to inject nothing, silently."""
    with pytest.raises(ConfigFileError) as refused:
        parse_config(MINIMAL.replace("{id: stripe_sim, kind: simulated}", processor), "payorch.yaml")
    assert str(refused.value) == f"payorch.yaml: {expected}: it would be ignored"


@pytest.mark.parametrize("api_key", ["sk_live_51HpaSTEDkEy9876", "rk_test_51Hpa STED+kEy9876"])
def test_an_api_key_given_as_its_variable_is_refused_without_being_shown(api_key: str) -> None:
    text = MINIMAL.replace(
        "{id: stripe_sim, kind: simulated}", f"{{id: stripe_sim, kind: stripe, api_key_env: '{api_key}'}}"
    )
    with pytest.raises(ConfigFileError, match=r"processors\[0\].api_key_env: holds an API key") as refused:
        parse_config(text)
    assert "9876" not in str(refused.value)


def test_api_keys_never_show_in_a_repr() -> None:
    config = load_sample_config()
    assert "sk_test_acme_123" not in repr(config)
    assert "adm_test_123" not in repr(config)


def edit(path: str, value: object) -> dict[str, object]:
    document = yaml.safe_load(MINIMAL)
    target = document
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return document  # type: ignore[no-any-return]


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "problem"),
    [
        (
            "merchants.0.default_currency",
            "XYZ",
            "merchants[0].default_currency",
            "'XYZ' is not an active ISO 4217",
        ),
        ("merchants.0.default_currency", DELETE, "merchants[0].default_currency", "is required"),
        ("merchants.0.timeout_ms", "fast", "merchants[0].timeout_ms", "must be an integer, not a string"),
        ("merchants.0.timeout_ms", True, "merchants[0].timeout_ms", "not a boolean"),
        ("merchants.0.timout_ms", 5, "merchants[0].timout_ms", "is not a known field"),
        ("merchants.0.max_in_flight", 0, "merchants[0]", "max_in_flight=0: must be at least 1"),
        ("merchants.0.max_in_flight", 2.5, "merchants[0].max_in_flight", "must be an integer"),
        (
            "merchants.0.complaint_limits",
            {"per_minute": 0},
            "merchants[0].complaint_limits",
            "per_minute=0: must be at least 1",
        ),
        (
            "merchants.0.complaint_limits",
            {"per_day": "lots"},
            "merchants[0].complaint_limits.per_day",
            "must be an integer",
        ),
        (
            "merchants.0.complaint_limits",
            {"per_hour": 5},
            "merchants[0].complaint_limits.per_hour",
            "is not a known field",
        ),
        ("merchants.0.complaint_limits", 5, "merchants[0].complaint_limits", "must be a mapping"),
        (
            "merchants.0.partial_policy",
            "sometimes",
            "merchants[0].partial_policy",
            "must be one of all_or_nothing",
        ),
        ("merchants.0.routing", [], "merchants[0]", "must hold at least one rule"),
        ("merchants.0.routing.0.method", "bitcoin", "merchants[0].routing[0].method", "must be one of card"),
        (
            "merchants.0.routing.0.processors",
            ["ghost"],
            "",
            "routing[0].processors='ghost': is not a configured processor",
        ),
        ("merchants.0.api_keys", "sk_one", "merchants[0].api_keys", "must be a list, not a string"),
        ("merchants.0.api_keys", [5], "merchants[0].api_keys[0]", "must be a string"),
        ("merchants.0.retry", {"max_attempts": 0}, "merchants[0].retry", "retry.max_attempts=0"),
        ("processors.0.kind", "paypal", "processors[0].kind", "'paypal' is not one of simulated, stripe"),
        (
            "processors.0.fault_rates",
            {"declined": 0.9, "timeout": 0.2},
            "processors[0].fault_rates",
            "add up to at most 1",
        ),
        (
            "processors.0.latency_ms",
            {"p50": 10, "p99": 5},
            "processors[0].latency_ms",
            "must be at least p50",
        ),
        ("processors", DELETE, "processors", "is required"),
        *(
            ("processors.0.breaker", breaker, "processors[0].breaker", problem)
            for breaker, problem in [
                ({"min_timeout_ms": -1}, ".min_timeout_ms=-1: must be at least 0"),
                ({"min_timeout_ms": 600_001}, ".min_timeout_ms=600001: must be at most 600000"),
                ({"min_timeout_ms": 2.5}, ".min_timeout_ms: must be an integer, not a number"),
                ({"min_timeout_ms": "1s"}, ".min_timeout_ms: must be an integer, not a string"),
                ({"failure_threshold": 0}, ".failure_threshold=0: must be between 1 and 1000"),
                ({"failure_threshold": -2}, ".failure_threshold=-2: must be between 1 and 1000"),
                ({"failure_threshold": 10**6}, ".failure_threshold=1000000: must be between 1 and 1000"),
                ({"failure_threshold": 2.5}, ".failure_threshold: must be an integer, not a number"),
                ({"failure_threshold": "5"}, ".failure_threshold: must be an integer, not a string"),
                ({"failure_threshold": True}, ".failure_threshold: must be an integer, not a boolean"),
                ({"cool_down_s": 0}, ".cool_down_s=0: must be more than 0 and at most 86400 (a day)"),
                ({"cool_down_s": -1.5}, ".cool_down_s=-1.5: must be more than 0 and at most 86400 (a day)"),
                ({"cool_down_s": 86_401}, ".cool_down_s=86401: must be more than 0 and at most 86400"),
                ({"cool_down_s": float("nan")}, ".cool_down_s=nan: must be more than 0 and at most 86400"),
                ({"cool_down_s": float("inf")}, ".cool_down_s=inf: must be more than 0 and at most 86400"),
                ({"cool_down_s": "30s"}, ".cool_down_s: must be an integer or a number, not a string"),
                ({"cool_down_s": False}, ".cool_down_s: must be an integer or a number, not a boolean"),
                (
                    {"cooldown_s": 30},
                    ".cooldown_s: is not a known field "
                    "(known: cool_down_s, failure_threshold, min_timeout_ms)",
                ),
            ]
        ),
        ("reports", {"every_days": 0}, "reports", "reports.every_days=0"),
        ("store", {"max_rows": 0}, "store", "store.max_rows=0: must be at least 1"),
        ("store", {"max_wait_ms": 2.5}, "store.max_wait_ms", "must be an integer, not a number"),
        ("store", {"admit_limit": 10**8}, "store", "store.admit_limit=100000000: must be at most 10000000"),
        ("store", {"batch": 10}, "store.batch", "is not a known field"),
        (
            "store",
            {"memory_limit_mb": 8},
            "store",
            "store.memory_limit_mb=8: must be 0 (payorch's default) or at least 16",
        ),
        ("store", {"memory_limit_mb": -1}, "store", "store.memory_limit_mb=-1: must be at least 0"),
        ("store", {"memory_limit_mb": "1GB"}, "store.memory_limit_mb", "must be an integer, not a string"),
        ("store", {"idempotency_hot_s": -1}, "store", "store.idempotency_hot_s=-1: must be at least 0"),
        ("store", {"fair_share_percent": 0}, "store", "store.fair_share_percent=0: must be at least 1"),
        ("store", {"fair_share_percent": 150}, "store", "store.fair_share_percent=150: must be at most 100"),
        (
            "store",
            {"fair_share_percent": 0.5},
            "store.fair_share_percent",
            "must be an integer, not a number",
        ),
        (
            "store",
            {"idempotency_hot_s": 90_000},
            "store",
            "store.idempotency_hot_s=90000: must be at most 86400",
        ),
        (
            "store",
            {"idempotency_hot_s": "10m"},
            "store.idempotency_hot_s",
            "must be an integer, not a string",
        ),
        ("store", {"admin_reads": 0}, "store", "store.admin_reads=0: must be at least 1"),
        ("store", {"admin_reads": 5000}, "store", "store.admin_reads=5000: must be at most 1024"),
        ("store", {"admin_reads": "4"}, "store.admin_reads", "must be an integer, not a string"),
        ("store", {"admin_reads": 1.5}, "store.admin_reads", "must be an integer, not a number"),
        ("store", {"admin_read_idle_s": 0}, "store", "store.admin_read_idle_s=0: must be at least 1"),
        (
            "store",
            {"admin_read_idle_s": 7200},
            "store",
            "store.admin_read_idle_s=7200: must be at most 3600",
        ),
        ("store", {"admin_read_max_s": 0}, "store", "store.admin_read_max_s=0: must be at least 1"),
        (
            "store",
            {"admin_read_max_s": 100_000},
            "store",
            "store.admin_read_max_s=100000: must be at most 86400",
        ),
        ("store", {"admin_read_max_s": "5m"}, "store.admin_read_max_s", "must be an integer, not a string"),
        ("escalations", {"webhook_url": "mailto:x"}, "escalations", "must be an http(s) URL"),
        (
            "escalations",
            {"webhook_url": "http://"},
            "escalations.webhook_url='http://'",
            "must be an http(s) URL with a host (http://host[:port]/...)",
        ),
        (
            "escalations",
            {"webhook_url": "http://127.0.0.1:90000/hooks"},
            "escalations.webhook_url",
            "must be an http(s) URL with a valid host and port",
        ),
        (
            "escalations",
            {"webhook_url": "http://hooks.example.com/pay orch"},
            "escalations.webhook_url",
            "must be an http(s) URL, without spaces or control characters",
        ),
        (
            "processors",
            [{"id": "stripe_sim", "kind": "stripe", "api_key_env": "K", "api_base": "https:///v1"}],
            "processors[0].api_base='https:///v1'",
            "must be an http(s) URL with a host",
        ),
        ("merchants", {"m_acme": {}}, "merchants", "must be a list, not a mapping"),
        (
            "complaint_taxonomy",
            {"slow": "router/slow"},
            "complaint_taxonomy.slow",
            "'router/slow' is not a registered",
        ),
    ],
)
def test_every_invalid_field_is_named_with_its_problem(
    path: str, value: object, field: str, problem: str
) -> None:
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(edit(path, value), "payorch.yaml")
    message = str(raised.value)
    assert message.startswith(f"payorch.yaml: {field}") if field else message.startswith("payorch.yaml: ")
    assert problem in message


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="missing.yaml: does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigFileError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigFileError, match="binary.yaml: is not UTF-8"):
        load_config(binary)
    broken = tmp_path / "broken.yaml"
    broken.write_text("merchants: [\n  - {id: 1\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"broken.yaml: line \d+, column \d+: invalid YAML"):
        load_config(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="empty.yaml: is empty"):
        load_config(empty)


def test_a_written_file_loads_like_the_text(tmp_path: Path) -> None:
    path = tmp_path / "payorch.yaml"
    path.write_text(sample_config_text(), encoding="utf-8")
    assert load_config(path) == load_sample_config()


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["merchants", "processors", "reports", "escalations", "store", "admin_api_keys", "x"]
        ),
        yaml_values,
    )
)
def test_any_document_loads_or_gives_a_config_file_error(document: dict[str, object]) -> None:
    try:
        config_from_mapping(document, "fuzz.yaml")
    except ConfigFileError as error:
        assert str(error).startswith("fuzz.yaml")


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        (MINIMAL + "merchants:\n  - merchant_id: m_other\n", "merchants", 10, 2),
        ("admin_api_keys: [adm_1]\n" + MINIMAL + "admin_api_keys: [adm_2]\n", "admin_api_keys", 11, 1),
        (
            MINIMAL.replace("    default_currency: USD\n", "    timeout_ms: 5\n    timeout_ms: 6\n"),
            "timeout_ms",
            6,
            5,
        ),
        (MINIMAL + "reports: {mismatch: {min_ratio: 0.1, min_ratio: 0.5}}\n", "min_ratio", 10, 10),
        (
            MINIMAL.replace("{id: stripe_sim, kind: simulated}", "{id: a, kind: simulated, id: stripe_sim}"),
            "id",
            9,
            9,
        ),
    ],
)
def test_a_key_given_twice_is_refused_at_any_level(text: str, key: str, line: int, first: int) -> None:
    """PyYAML keeps the last of two equal keys; the first would be silently ignored."""
    with pytest.raises(ConfigFileError) as raised:
        parse_config(text, "payorch.yaml")
    assert str(raised.value).startswith(f"payorch.yaml: line {line}, column ")
    assert str(raised.value).endswith(f": invalid YAML: duplicate key '{key}' (first at line {first})")


def test_a_merge_may_still_override_what_it_brings_in() -> None:
    text = MINIMAL.replace(
        "    default_currency: USD\n",
        "    default_currency: USD\n    retry: {<<: {max_attempts: 2, base_delay_ms: 5}, max_attempts: 4}\n",
    )
    retry = parse_config(text).merchant("m_acme").retry
    assert (retry.max_attempts, retry.base_delay_ms) == (4, 5)


def test_nesting_too_deep_is_a_config_error(tmp_path: Path) -> None:
    """A thousand levels used to exhaust the stack (a RecursionError traceback)."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 1000 + "]" * 1000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as raised:
        load_config(deep)
    assert str(raised.value) == f"{deep}: line 1, column 101: invalid YAML: nested more than 100 levels deep"
    nested = "a: " + "[" * 99 + "]" * 99 + "\n"  # 100 levels with the top mapping: still fine
    with pytest.raises(ConfigFileError, match="a: is not a known field"):
        parse_config(nested)


@pytest.mark.parametrize(
    ("path", "value", "kind"),
    [
        ("merchants.0.retry", 0, "an integer"),
        ("merchants.0.retry", [], "a list"),
        ("merchants.0.retry", "", "a string"),
        ("store", False, "a boolean"),
        ("reports", "", "a string"),
        ("reports", {"mismatch": 0}, "an integer"),
        ("escalations", [], "a list"),
        ("processors.0.latency_ms", 0, "an integer"),
        ("processors.0.fault_rates", [], "a list"),
        ("processors.0.breaker", 5, "an integer"),
    ],
)
def test_a_section_holding_anything_but_a_mapping_is_refused(path: str, value: object, kind: str) -> None:
    """``retry: 0`` used to mean the defaults, as any false value did; only what is missing or
    null does."""
    field = path.replace(".0", "[0]") + (".mismatch" if path == "reports" and value else "")
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(edit(path, value), "payorch.yaml")
    assert str(raised.value) == f"payorch.yaml: {field}: must be a mapping, not {kind}"


@pytest.mark.parametrize("section", ["retry", "store", "reports", "escalations", "latency_ms", "breaker"])
def test_a_missing_or_null_section_means_the_defaults(section: str) -> None:
    path = {
        "retry": "merchants.0.retry",
        "latency_ms": "processors.0.latency_ms",
        "breaker": "processors.0.breaker",
    }.get(section, section)
    assert config_from_mapping(edit(path, None)) == parse_config(MINIMAL)


def keys_config(admin: list[str], merchant: list[str]) -> dict[str, object]:
    document = edit("merchants.0.api_keys", merchant)
    document["admin_api_keys"] = admin
    return document


@pytest.mark.parametrize(
    ("admin", "merchant", "expected"),
    [
        (
            [],
            ["sk_test_acme_123", "sk_test_acme_123"],
            "merchants[0].api_keys[1]: appears more than once (first at merchants[0].api_keys[0])",
        ),
        (
            ["sk_test_acme_123"],
            ["sk_other", "sk_test_acme_123"],
            "merchants[0].api_keys[1]: appears more than once (first at admin_api_keys[0])",
        ),
        ([], ["sk_ok", "sk " + "x" * 5000], "merchants[0].api_keys[1]: must be at most 255 characters"),
        (["sk test acme"], ["sk_ok"], "admin_api_keys[0]: may hold only letters, digits"),
        ([], ["sk_" + "x" * 5000], "merchants[0].api_keys[0]: must be at most 255 characters"),
    ],
)
def test_api_keys_are_named_by_position_and_never_shown(
    admin: list[str], merchant: list[str], expected: str
) -> None:
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(keys_config(admin, merchant), "payorch.yaml")
    message = str(raised.value)
    assert message.startswith(f"payorch.yaml: {expected}")
    for key in (*admin, *merchant):
        if key != "sk_ok":
            assert key[:6] not in message


def test_an_empty_key_list_names_the_field_without_a_value() -> None:
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(edit("merchants.0.api_keys", []), "payorch.yaml")
    assert str(raised.value) == "payorch.yaml: merchants[0].api_keys: must hold at least one key"


@pytest.mark.parametrize(
    ("path", "value", "field", "kind"),
    [
        ("admin_api_keys", [None], "admin_api_keys[0]", "null"),
        ("merchants.0.merchant_id", datetime.date(2026, 1, 1), "merchants[0].merchant_id", "a date"),
        ("merchants.0.routing", [None], "merchants[0].routing[0]", "null"),
        ("merchants.0.timeout_ms", [1], "merchants[0].timeout_ms", "a list"),
        ("processors.0.seed", 1.5, "processors[0].seed", "a number"),
    ],
)
def test_types_are_named_in_yamls_words(path: str, value: object, field: str, kind: str) -> None:
    """``null``, not ``NoneType``."""
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(edit(path, value), "payorch.yaml")
    assert str(raised.value).startswith(f"payorch.yaml: {field}: must be ")
    assert str(raised.value).endswith(f", not {kind}")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("merchants.0.timeout_ms", 0, "merchants[0].timeout_ms=0: must be at least 1"),
        (
            "processors.0.fault_rates",
            {"declined": 2},
            "processors[0].fault_rates.declined=2: must be between 0 and 1",
        ),
        ("merchants.0.retry", {"max_attempts": 0}, "merchants[0].retry.max_attempts=0: must be at least 1"),
        (
            "merchants.0.routing.0.processors",
            ["stripe_sim", "stripe_sim"],
            "merchants[0].routing[0].processors=['stripe_sim', 'stripe_sim']: must not repeat a processor",
        ),
        (
            "merchants.0.routing.0.processors",
            ["ghost"],
            "merchants[0].routing[0].processors='ghost': is not a configured processor",
        ),
        ("reports", {"mismatch": {"min_ratio": -1}}, "reports.mismatch.min_ratio=-1: must not be negative"),
        ("processors.0.kind", "stripe", "processors[0].api_key_env: is required for stripe"),
    ],
)
def test_a_rule_the_domain_checks_names_its_field_once(path: str, value: object, expected: str) -> None:
    """The field as the file spells it, once: not ``merchants[0]: merchants['m_acme'].timeout_ms``."""
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(edit(path, value), "payorch.yaml")
    assert str(raised.value) == f"payorch.yaml: {expected}"


def test_ids_given_twice_name_both_places() -> None:
    document = yaml.safe_load(MINIMAL)
    document["merchants"].append({**document["merchants"][0], "api_keys": ["sk_two"]})
    document["processors"].append(document["processors"][0])
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(document, "payorch.yaml")
    assert str(raised.value) == (
        "payorch.yaml: merchants[1].merchant_id='m_acme': "
        "appears more than once (first at merchants[0].merchant_id)"
    )
    document["merchants"].pop()
    with pytest.raises(ConfigFileError) as raised:
        config_from_mapping(document, "payorch.yaml")
    assert str(raised.value) == (
        "payorch.yaml: processors[1].id='stripe_sim': appears more than once (first at processors[0].id)"
    )


@pytest.mark.parametrize(
    ("character", "name"), [("\x00", "control character U+0000"), ("\x07", "control character U+0007")]
)
def test_a_character_yaml_forbids_is_named_with_its_position(
    tmp_path: Path, character: str, name: str
) -> None:
    path = tmp_path / "nul.yaml"
    path.write_text(MINIMAL.replace("m_acme", f"m_ac{character}me"), encoding="utf-8")
    with pytest.raises(ConfigFileError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: line 3, column 22: invalid YAML: {name} is not allowed in YAML text"


#: Where an integer goes in MINIMAL: the text to replace and its replacement ({} is the integer).
INTEGER_FIELDS = {
    "timeout_ms": ("    default_currency: USD\n", "    default_currency: USD\n    timeout_ms: {}\n"),
    "latency_ms.p50": ("kind: simulated}", "kind: simulated, latency_ms: {{p50: {}}}}}"),
    "seed": ("kind: simulated}", "kind: simulated, seed: {}}}"),
}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("9" * 5000, "'" + "9" * 38 + "…"),  # more digits than Python reads: a ValueError traceback
        ("0x" + "F" * 5000, "'0x" + "F" * 36 + "…"),  # read, but then neither printed nor a float
    ],
    ids=["5000 digits", "5000 hex digits"],
)
@pytest.mark.parametrize("field", sorted(INTEGER_FIELDS))
def test_an_integer_out_of_range_is_a_config_error(field: str, value: str, shown: str) -> None:
    """Such integers used to escape as a ValueError or an OverflowError (an internal error, exit 1)."""
    old, new = INTEGER_FIELDS[field]
    with pytest.raises(ConfigFileError) as raised:
        parse_config(MINIMAL.replace(old, new.format(value)), "payorch.yaml")
    assert str(raised.value).startswith("payorch.yaml: line ")
    assert str(raised.value).endswith(
        f": integer {shown} is out of range (at most 9223372036854775807 either way)"
    )
    old, new = INTEGER_FIELDS["seed"]
    largest = parse_config(MINIMAL.replace(old, new.format("0x7FFFFFFFFFFFFFFF")))
    assert largest.processor("stripe_sim").seed == 2**63 - 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1:30", "'1:30' is a base-60 number in YAML 1.1, so 90: write 90, or quote it if it is text"),
        (
            "010000",
            "'010000' is an octal number in YAML 1.1, so 4096: "
            "write 4096, or 10000 without the leading zero, or quote it if it is text",
        ),
        (
            "-0_17",
            "'-0_17' is an octal number in YAML 1.1, so -15: "
            "write -15, or -17 without the leading zero, or quote it if it is text",
        ),
        (
            "1:30.5",
            "'1:30.5' is a base-60 number in YAML 1.1, so 90.5: write 90.5, or quote it if it is text",
        ),
    ],
)
@pytest.mark.parametrize("field", sorted(INTEGER_FIELDS))
def test_a_number_yaml_reads_other_than_it_looks_is_refused(field: str, value: str, problem: str) -> None:
    """``timeout_ms: 1:30`` used to be 90 ms, and ``max_amount_cents: 010000`` 4096, without a word."""
    old, new = INTEGER_FIELDS[field]
    with pytest.raises(ConfigFileError) as raised:
        parse_config(MINIMAL.replace(old, new.format(value)), "payorch.yaml")
    assert re.fullmatch(rf"payorch\.yaml: line \d+, column \d+: {re.escape(problem)}", str(raised.value))
    for plain in ("10", "1_0", "+10"):
        parse_config(MINIMAL.replace(old, new.format(plain)))


#: Where a number (integer or not) goes in MINIMAL ({} is the number).
NUMBER_FIELDS = {
    "processors[0].breaker.cool_down_s": (
        "kind: simulated}",
        "kind: simulated, breaker: {{cool_down_s: {}}}}}",
    ),
    "processors[0].fault_rates.declined": (
        "kind: simulated}",
        "kind: simulated, fault_rates: {{declined: {}}}}}",
    ),
}


@pytest.mark.parametrize(
    ("value", "advice"),
    [
        ("1e3", "YAML 1.1 reads '1e3' as text (an exponent needs a dot and a sign, 1.0e+3): write 1000"),
        ("1.5e3", "YAML 1.1 reads '1.5e3' as text (an exponent needs a dot and a sign, 1.0e+3): write 1500"),
        ("1e+3", "YAML 1.1 reads '1e+3' as text (an exponent needs a dot and a sign, 1.0e+3): write 1000"),
        ("'2000'", "'2000' is quoted text: write 2000 without quotes"),
    ],
)
@pytest.mark.parametrize("field", [*sorted(INTEGER_FIELDS), *sorted(NUMBER_FIELDS)])
def test_a_number_yaml_reads_as_text_says_what_to_write(field: str, value: str, advice: str) -> None:
    """``timeout_ms: 1e3`` was refused as "must be an integer, not a string", though the file held
    no string to the eye: PyYAML reads an exponent only after a dot and with its sign."""
    old, new = {**INTEGER_FIELDS, **NUMBER_FIELDS}[field]
    with pytest.raises(ConfigFileError) as raised:
        parse_config(MINIMAL.replace(old, new.format(value)), "payorch.yaml")
    assert str(raised.value).endswith(f", not a string: {advice}"), str(raised.value)
    with pytest.raises(ConfigFileError) as raised:
        parse_config(MINIMAL.replace(old, new.format("ten")), "payorch.yaml")
    assert str(raised.value).endswith(", not a string"), str(raised.value)  # text: nothing to advise


def merge_chain(levels: int) -> str:
    """Mappings each merging nine copies of the one before and adding a key of their own."""
    return "a0: &a0 {x: 0}\n" + "".join(
        f"a{level}: &a{level} {{<<: [{', '.join([f'*a{level - 1}'] * 9)}], y{level}: {level}}}\n"
        for level in range(1, levels + 1)
    )


def test_a_chain_of_merges_brings_in_each_key_once() -> None:
    """A merge used to bring in every pair of what it merged, repeats included: 30 levels of such
    a chain made 9**30 pairs, which PyYAML took hours and all memory to build (a billion laughs)."""
    loader = _StrictLoader(merge_chain(6))
    document = loader.get_single_node()
    assert document is not None
    built = loader.construct_document(document)
    last = document.value[-1][1]
    assert [key.value for key, _ in last.value] == ["x", "y1", "y2", "y3", "y4", "y5", "y6"]
    assert built["a6"] == {"x": 0, "y1": 1, "y2": 2, "y3": 3, "y4": 4, "y5": 5, "y6": 6}
    with pytest.raises(ConfigFileError, match="payorch.yaml: a0: is not a known field"):
        parse_config(merge_chain(30), "payorch.yaml")


def test_the_first_merge_and_then_the_mapping_itself_win() -> None:
    text = "base: &base {a: 1, b: 1}\nother: &other {a: 2, b: 2, c: 2}\nboth: {<<: [*base, *other], b: 3}\n"
    loader = _StrictLoader(text)
    assert loader.get_single_data()["both"] == {"a": 1, "b": 3, "c": 2}


def test_a_file_too_large_to_be_a_configuration_is_refused_unread(tmp_path: Path) -> None:
    """``/dev/zero`` used to be read until memory ran out (a MemoryError, or the machine's)."""
    with pytest.raises(ConfigFileError) as raised:
        load_config(Path("/dev/zero"))
    assert str(raised.value) == "/dev/zero: is larger than 1 MiB: not a configuration file"
    padded = tmp_path / "padded.yaml"
    padded.write_text(MINIMAL + "#" * (MAX_CONFIG_BYTES - len(MINIMAL) - 1) + "\n", encoding="utf-8")
    assert load_config(padded) == parse_config(MINIMAL)
    with padded.open("a", encoding="utf-8") as more:
        more.write("\n")
    with pytest.raises(ConfigFileError, match=r"padded\.yaml: is larger than 1 MiB"):
        load_config(padded)


def test_a_named_pipe_is_read_and_one_nothing_writes_to_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a named pipe used to wait for a writer: ``payorch serve`` hung without a word."""
    pipe = tmp_path / "payorch.yaml"
    os.mkfifo(pipe)
    stuck = threading.Event()
    rescue = threading.Thread(target=_unblock_readers, args=(pipe, stuck), daemon=True)
    rescue.start()
    try:
        with pytest.raises(ConfigFileError) as raised:
            load_config(pipe)
    finally:
        stuck.set()
        rescue.join()
    assert str(raised.value) == f"{pipe}: is a pipe that nothing was written to"
    # What a writer wrote and closed is read (a reader held open meanwhile keeps it in the pipe).
    held = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer = os.open(pipe, os.O_WRONLY)
        os.write(writer, MINIMAL.encode())
        os.close(writer)
        assert load_config(pipe) == parse_config(MINIMAL)
    finally:
        os.close(held)


def _unblock_readers(pipe: Path, done: threading.Event) -> None:
    """Until ``done``: whenever a reader waits to open ``pipe``, open it for writing and close it
    (the reader then reads an empty file). Without this, a reader that waits would hang the test."""
    while not done.wait(0.05):
        try:
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: no reader waiting
            continue


def places(node: object, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a parsed document, each mapping value and list item."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from places(child, (*path, key))


@given(st.data())
def test_any_edit_of_the_sample_loads_or_gives_one_line_naming_the_file(data: st.DataObject) -> None:
    """Keys dropped, repeated, misspelt, values of any YAML type in their place, at any depth."""
    document = yaml.safe_load(sample_config_text())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(places(document))))
        parent = functools.reduce(operator.getitem, path[:-1], document)
        edit = data.draw(st.sampled_from(["drop", "replace", "repeat", "misspell"]))
        if edit == "drop":
            del parent[path[-1]]
        elif edit == "replace":
            parent[path[-1]] = data.draw(yaml_values)
        elif edit == "repeat" and isinstance(parent, list):
            parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
        elif edit == "misspell" and isinstance(parent, dict):
            parent[f"{path[-1]}s"] = parent.pop(path[-1])
    text = yaml.safe_dump(document)
    for load in (
        functools.partial(config_from_mapping, document, "fuzz.yaml"),
        functools.partial(parse_config, text, "fuzz.yaml"),
    ):
        try:
            load()
        except ConfigFileError as error:
            assert str(error).startswith("fuzz.yaml: ")
            assert str(error).isprintable(), str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('store: {"max\\nrows": 5}\n', "store['max\\nrows']: is not a known field"),
        ('store: {"batch\\u202e": 5}\n', "store['batch\\u202e']: is not a known field"),
        ("store: {max-rows: 5}\n", "store['max-rows']: is not a known field"),
        ("store: {1: 5}\n", "store[1]: is not a known field"),
        ("store: {null: 5}\n", "store[null]: is not a known field"),
        ("store: {batch: 5}\n", "store.batch: is not a known field"),
        ('complaint_taxonomy: {"a\\tb": 5}\n', "complaint_taxonomy['a\\tb']: must map a category name"),
        ("complaint_taxonomy: {2: router/timeout}\n", "complaint_taxonomy[2]: must map a category name"),
        ('complaint_taxonomy: {"a b": router/timeout}\n', "complaint_taxonomy['a b']: may hold only letters"),
        ("complaint_taxonomy: {'': router/timeout}\n", "complaint_taxonomy['']: must not be empty"),
    ],
)
def test_a_key_that_is_no_plain_name_is_quoted_in_the_field_path(text: str, expected: str) -> None:
    """A key used to be put in the message as it was: a newline broke the one line, a
    right-to-left override reordered it."""
    with pytest.raises(ConfigFileError) as raised:
        parse_config(MINIMAL + text, "payorch.yaml")
    assert str(raised.value).startswith(f"payorch.yaml: {expected}")
    assert str(raised.value).isprintable()


def test_a_file_name_holding_a_newline_is_quoted(tmp_path: Path) -> None:
    """The message used to hold the newline: two lines."""
    path = tmp_path / "pay\norch.yaml"
    with pytest.raises(ConfigFileError) as raised:
        load_config(path)
    assert str(raised.value) == f"{str(path)!r}: does not exist"
    path.write_text(MINIMAL.replace("USD", "XYZ"), encoding="utf-8")
    with pytest.raises(ConfigFileError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{str(path)!r}: merchants[0].default_currency: 'XYZ'")
