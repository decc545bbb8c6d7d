from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.config import ProcessorKind, StoreConfig
from engine.methods import PartialPolicy, PaymentMethod
from ingest.config_file import (
    config_from_mapping,
    load_config,
    load_sample_config,
    parse_config,
    sample_config_text,
)
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
        ("reports", {"every_days": 0}, "reports", "reports.every_days=0"),
        ("store", {"max_rows": 0}, "store", "store.max_rows=0: must be at least 1"),
        ("store", {"max_wait_ms": 2.5}, "store.max_wait_ms", "must be an integer, not a number"),
        ("store", {"admit_limit": 10**8}, "store", "store.admit_limit=100000000: must be at most 10000000"),
        ("store", {"batch": 10}, "store.batch", "is not a known field"),
        ("escalations", {"webhook_url": "mailto:x"}, "escalations", "must be an http(s) URL"),
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
