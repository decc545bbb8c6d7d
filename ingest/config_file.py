"""Reads the YAML configuration file (PRODUCT.md section 3) into an ``engine.config.PlatformConfig``.

Unknown keys are refused (a typo must not silently fall back to a default), and so are keys given
twice (``ingest.config_yaml``) and a section that holds something other than a mapping (only a
missing key or an explicit ``null`` means the defaults). Every problem is one
:class:`ConfigFileError` naming the file, the field path (once, as written in the file) and the
problem, in YAML's words (``null``, ``a mapping``); API keys are named by position, never shown.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from engine.circuit_breaker import BreakerPolicy
from engine.complaints import category_key
from engine.config import (
    DEFAULT_MAX_IN_FLIGHT,
    ComplaintLimits,
    EscalationConfig,
    FaultRates,
    LatencyProfile,
    MerchantConfig,
    MismatchRule,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    ReportConfig,
    RetryPolicy,
    RoutingRule,
    StoreConfig,
)
from engine.contracts import default_registry
from engine.errors import DomainError
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency
from engine.types import ContractId, MerchantId, ProcessorId, check_identifier
from ingest.config_section import Section, key_path, shown
from ingest.config_yaml import load_yaml
from ingest.errors import ConfigFileError
from ingest.private_files import read_small_file
from ingest.store.memory import check_fits, machine_memory

T = TypeVar("T")
SAMPLE_CONFIG = "sample_config.yaml"
#: A configuration is a few kilobytes (the sample, two merchants, 2); PyYAML reads some 250 KB a
#: second. Past this, the file is not a configuration (``/dev/zero`` would be read until memory ran
#: out).
MAX_CONFIG_BYTES = 1 << 20


def _parse_with(section: Section, name: str, parse: Callable[[object, str], T]) -> T:
    try:
        return parse(section.value[name], section.field(name))
    except DomainError as error:
        raise ConfigFileError(section.source, section.field(name), error.reason) from error


def _retry(section: Section) -> RetryPolicy:
    defaults = RetryPolicy()
    return section.build(
        "",
        lambda: RetryPolicy(
            max_attempts=section.get("max_attempts", int, defaults.max_attempts),
            base_delay_ms=section.get("base_delay_ms", int, defaults.base_delay_ms),
            max_delay_ms=section.get("max_delay_ms", int, defaults.max_delay_ms),
        ),
    )


def _routing_rule(section: Section) -> RoutingRule:
    method = _parse_with(section, "method", PaymentMethod.parse) if section.has("method") else None
    if method is None:
        raise ConfigFileError(section.source, section.field("method"), "is required")
    processors = tuple(ProcessorId(p) for p in section.strings("processors", required=True))
    maximum = section.get("max_amount_cents", int, None) if section.has("max_amount_cents") else None
    return section.build("", lambda: RoutingRule(method, processors, max_amount_cents=maximum))


def _currency(section: Section, name: str) -> Currency:
    return _code_to_currency(section, name, section.require(name, str))


def _code_to_currency(section: Section, name: str, code: str) -> Currency:
    try:
        return Currency(code.strip().upper())
    except DomainError as error:
        raise ConfigFileError(section.source, section.field(name), f"{code!r} {error.reason}") from error


def _method(section: Section, name: str, value: str) -> PaymentMethod:
    try:
        return PaymentMethod.parse(value)
    except DomainError as error:
        raise ConfigFileError(section.source, section.field(name), f"{value!r} {error.reason}") from error


_MERCHANT_FIELDS = {
    "merchant_id", "api_keys", "default_currency", "partial_policy", "max_amount_cents",
    "timeout_ms", "retry", "routing", "latency_slo_ms", "max_in_flight", "complaint_limits",
}  # fmt: skip


def _merchant(section: Section) -> MerchantConfig:
    defaults_max, defaults_timeout = 100_000_000, 2000
    merchant_id = MerchantId(section.require("merchant_id", str))
    api_keys = section.keys("api_keys", required=True)
    currency = _currency(section, "default_currency")
    policy = (
        _parse_with(section, "partial_policy", PartialPolicy.parse) if section.has("partial_policy") else None
    )
    retry = _retry(section.section("retry", {"max_attempts", "base_delay_ms", "max_delay_ms"}))
    complaint_limits = _complaint_limits(section.section("complaint_limits", {"per_minute", "per_day"}))
    rules_raw = section.require("routing", list)
    rules = tuple(
        _routing_rule(
            Section(
                section.source,
                f"{section.field('routing')}[{i}]",
                raw,
                {"method", "max_amount_cents", "processors"},
            )
        )
        for i, raw in enumerate(rules_raw)
    )
    return section.build(
        "",
        lambda: MerchantConfig(
            merchant_id=merchant_id,
            api_keys=api_keys,
            default_currency=currency,
            routing=rules,
            partial_policy=policy or PartialPolicy.ALL_OR_NOTHING,
            max_amount_cents=section.get("max_amount_cents", int, defaults_max),
            timeout_ms=section.get("timeout_ms", int, defaults_timeout),
            retry=retry,
            latency_slo_ms=section.get("latency_slo_ms", int, None)
            if section.has("latency_slo_ms")
            else None,
            max_in_flight=section.get("max_in_flight", int, DEFAULT_MAX_IN_FLIGHT),
            complaint_limits=complaint_limits,
        ),
    )


def _complaint_limits(section: Section) -> ComplaintLimits:
    defaults = ComplaintLimits()
    return section.build(
        "",
        lambda: ComplaintLimits(
            per_minute=section.get("per_minute", int, defaults.per_minute),
            per_day=section.get("per_day", int, defaults.per_day),
        ),
    )


_FAULTS = {"declined", "timeout", "network_failure", "panic", "malformed"}
_PROCESSOR_FIELDS = {
    "id", "kind", "seed", "latency_ms", "fault_rates", "api_key_env", "api_base", "currencies", "methods",
    "breaker",
}  # fmt: skip


#: The fields only one kind of processor reads: given to another kind, they would be ignored
#: (fault rates on a ``stripe`` processor inject nothing).
_KIND_FIELDS = {
    ProcessorKind.SIMULATED: ("seed", "latency_ms", "fault_rates"),
    ProcessorKind.STRIPE: ("api_key_env", "api_base"),
}


def _processor(section: Section) -> ProcessorConfig:
    processor_id = ProcessorId(section.require("id", str))
    kind_name = section.require("kind", str)
    try:
        kind = ProcessorKind(kind_name)
    except ValueError:
        raise ConfigFileError(
            section.source,
            section.field("kind"),
            f"{kind_name!r} is not one of {', '.join(k.value for k in ProcessorKind)}",
        ) from None
    for other, names in _KIND_FIELDS.items():
        for name in names:
            if other is not kind and section.has(name):
                problem = f"applies to {other.value} processors only, not {kind.value}: it would be ignored"
                raise ConfigFileError(section.source, section.field(name), problem)
    latency_section = section.section("latency_ms", {"p50", "p99"})
    latency = latency_section.build(
        "",
        lambda: LatencyProfile(
            p50_ms=latency_section.get("p50", (int, float), 80.0),
            p99_ms=latency_section.get("p99", (int, float), 400.0),
        ),
    )
    faults_section = section.section("fault_rates", _FAULTS)
    faults = faults_section.build(
        "",
        lambda: FaultRates(**{name: faults_section.get(name, (int, float), 0.0) for name in sorted(_FAULTS)}),
    )
    breaker = _breaker(section.section("breaker", {"failure_threshold", "cool_down_s", "min_timeout_ms"}))
    currencies = tuple(
        _code_to_currency(section, f"currencies[{n}]", code)
        for n, code in enumerate(section.strings("currencies"))
    )
    methods = tuple(
        _method(section, f"methods[{n}]", name) for n, name in enumerate(section.strings("methods"))
    )
    return section.build(
        "",
        lambda: ProcessorConfig(
            currencies=currencies,
            methods=methods,
            id=processor_id,
            kind=kind,
            seed=section.get("seed", int, 0),
            latency=latency,
            fault_rates=faults,
            api_key_env=_api_key_env(section),
            api_base=section.get("api_base", str, None) if section.has("api_base") else None,
            breaker=breaker,
        ),
    )


def _breaker(section: Section) -> BreakerPolicy:
    defaults = BreakerPolicy()
    return section.build(
        "",
        lambda: BreakerPolicy(
            failure_threshold=section.get("failure_threshold", int, defaults.failure_threshold),
            cool_down_s=section.get("cool_down_s", (int, float), defaults.cool_down_s),
            min_timeout_ms=section.get("min_timeout_ms", int, None),
        ),
    )


# How Stripe's secret, restricted and publishable keys begin.
_API_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_")


def _api_key_env(section: Section) -> str | None:
    """The name of the variable holding the API key; the key itself, pasted here, is refused unseen."""
    if not section.has("api_key_env"):
        return None
    variable = section.get("api_key_env", str, None)
    if variable is not None and variable.strip().startswith(_API_KEY_PREFIXES):
        problem = (
            "holds an API key, not the name of the environment variable that holds it "
            "(the key is not shown): put the key in the environment and name the variable here"
        )
        raise ConfigFileError(section.source, section.field("api_key_env"), problem)
    return variable


_TOP_FIELDS = {
    "admin_api_keys",
    "merchants",
    "processors",
    "complaint_taxonomy",
    "escalations",
    "reports",
    "store",
}
_STORE_FIELDS = {
    "max_rows",
    "max_wait_ms",
    "admit_limit",
    "memory_limit_mb",
    "idempotency_hot_s",
    "admin_reads",
    "admin_read_idle_s",
    "admin_read_max_s",
    "fair_share_percent",
    "memory_limit",
}


def _unique(source: str, named: list[tuple[str, str]], *, secret: bool = False) -> None:
    """Refuse a value given at two places, naming both (the value too, unless it is a secret)."""
    first: dict[str, str] = {}
    for path, value in named:
        if value in first:
            problem = f"appears more than once (first at {first[value]})"
            raise ConfigFileError(source, path, problem, value=None if secret else shown(value))
        first[value] = path


def config_from_mapping(document: object, source: str = "<config>") -> PlatformConfig:
    """The platform configuration held by an already-parsed YAML document."""
    top = Section(source, "", document, _TOP_FIELDS)
    merchants = tuple(
        _merchant(Section(source, f"merchants[{i}]", raw, _MERCHANT_FIELDS))
        for i, raw in enumerate(top.require("merchants", list))
    )
    processors = tuple(
        _processor(Section(source, f"processors[{i}]", raw, _PROCESSOR_FIELDS))
        for i, raw in enumerate(top.require("processors", list))
    )
    admin_api_keys = top.keys("admin_api_keys")
    _unique(source, [(f"merchants[{i}].merchant_id", m.merchant_id) for i, m in enumerate(merchants)])
    _unique(source, [(f"processors[{i}].id", p.id) for i, p in enumerate(processors)])
    _unique(
        source,
        [
            *((f"admin_api_keys[{j}]", key) for j, key in enumerate(admin_api_keys)),
            *(
                (f"merchants[{i}].api_keys[{j}]", key)
                for i, merchant in enumerate(merchants)
                for j, key in enumerate(merchant.api_keys)
            ),
        ],
        secret=True,
    )
    taxonomy_raw = top.get("complaint_taxonomy", dict, {})
    taxonomy: dict[str, ContractId] = {}
    folded: dict[str, str] = {}  # category_key -> the category as written first
    for category, contract in taxonomy_raw.items():
        if not isinstance(category, str) or not isinstance(contract, str):
            raise ConfigFileError(
                source, key_path("complaint_taxonomy", category), "must map a category name to a contract id"
            )
        try:
            check_identifier("category", category)
        except DomainError as error:  # named by its key: the domain names only the mapping
            raise ConfigFileError(source, key_path("complaint_taxonomy", category), error.reason) from error
        first = folded.setdefault(category_key(category), category)
        if first != category:
            # Complaints match a category whatever its case, _, . and -: which one would win is a guess.
            problem = f"is the same category as {shown(first)} (matched whatever their case, _, . and -)"
            raise ConfigFileError(source, key_path("complaint_taxonomy", category), problem)
        if contract not in default_registry():
            raise ConfigFileError(
                source,
                key_path("complaint_taxonomy", category),
                f"{contract!r} is not a registered contract (known: {', '.join(default_registry().ids())})",
            )
        taxonomy[category] = ContractId(contract)
    escalations_section = top.section("escalations", {"webhook_url", "max_attempts"})
    escalations = escalations_section.build(
        "",
        lambda: EscalationConfig(
            webhook_url=escalations_section.get("webhook_url", str, None)
            if escalations_section.has("webhook_url")
            else None,
            max_attempts=escalations_section.get("max_attempts", int, 5),
        ),
    )
    reports_section = top.section("reports", {"every_days", "mismatch"})
    mismatch_section = reports_section.section("mismatch", {"min_ratio", "min_reports"})
    mismatch = mismatch_section.build(
        "",
        lambda: MismatchRule(
            min_ratio=mismatch_section.get("min_ratio", (int, float), 0.1),
            min_reports=mismatch_section.get("min_reports", int, 1),
        ),
    )
    reports = reports_section.build(
        "", lambda: ReportConfig(every_days=reports_section.get("every_days", int, 14), mismatch=mismatch)
    )
    store = _store(top.section("store", _STORE_FIELDS))
    # The domain names merchants and processors by id; the file by position.
    aliases = {
        **{
            f"merchants[{m.merchant_id!r}]": f"merchants[{i}]"
            for i, m in reversed(list(enumerate(merchants)))
        },
        **{f"processors[{p.id!r}]": f"processors[{i}]" for i, p in reversed(list(enumerate(processors)))},
    }
    return top.build(
        "",
        lambda: PlatformConfig(
            merchants=merchants,
            processors=processors,
            admin_api_keys=admin_api_keys,
            complaint_taxonomy=taxonomy,
            escalations=escalations,
            reports=reports,
            store=store,
        ),
        aliases,
    )


def _store(section: Section) -> StoreConfig:
    defaults = StoreConfig()
    store = section.build(
        "",
        lambda: StoreConfig(
            max_rows=section.get("max_rows", int, defaults.max_rows),
            max_wait_ms=section.get("max_wait_ms", int, defaults.max_wait_ms),
            admit_limit=section.get("admit_limit", int, defaults.admit_limit),
            memory_limit_mb=section.get("memory_limit_mb", int, defaults.memory_limit_mb),
            idempotency_hot_s=section.get("idempotency_hot_s", int, defaults.idempotency_hot_s),
            admin_reads=section.get("admin_reads", int, defaults.admin_reads),
            admin_read_idle_s=section.get("admin_read_idle_s", int, defaults.admin_read_idle_s),
            admin_read_max_s=section.get("admin_read_max_s", int, defaults.admin_read_max_s),
            fair_share_percent=section.get("fair_share_percent", int, defaults.fair_share_percent),
            memory_limit=section.get("memory_limit", (str, int), defaults.memory_limit),
        ),
    )
    # The machine's memory is the file loader's to read (the domain does no I/O): a limit above it
    # would only be found when DuckDB had taken it all and the kernel killed the service.
    name = "memory_limit" if store.memory_limit is not None else "memory_limit_mb"
    problem = check_fits(store, machine_memory())
    if problem is not None:
        raise ConfigFileError(
            section.source, section.field(name), problem, value=shown(section.value.get(name))
        )
    return store


def check_servable(config: PlatformConfig, source: Path | str) -> None:
    """Refuse to serve a configuration that gives no API key at all (no merchant, no admin key):
    every request but the health and metrics ones would be a 401, and nothing said why. Only
    ``payorch serve`` asks: ``report --config`` and ``export --config`` read no key, and a file
    holding only a taxonomy or a store block is theirs to take."""
    if config.merchants or config.admin_api_keys:
        return
    problem = (
        "is empty and admin_api_keys holds no key: the service would refuse every request (401); "
        "add a merchant with its api_keys, or an admin key to admin_api_keys"
    )
    raise ConfigFileError(source, "merchants", problem)


def parse_config(text: str, source: str = "<config>") -> PlatformConfig:
    """Parse YAML text; invalid YAML (a key given twice included) is reported with its line and
    column."""
    document = load_yaml(text, source)
    if document is None:
        raise ConfigFileError(source, "", "is empty")
    return config_from_mapping(document, source)


def load_config(path: Path) -> PlatformConfig:
    """Read and check the configuration file at ``path``.

    A named pipe is read as a file is (``--config <(envsubst < payorch.yaml)`` works); one that
    nobody writes to is refused at once rather than waited on.
    """
    try:
        data, pipe = read_small_file(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigFileError(path, "", "does not exist") from None
    except IsADirectoryError:
        raise ConfigFileError(path, "", "is a directory, not a file") from None
    except OSError as error:
        raise ConfigFileError(path, "", f"cannot be read: {error.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        problem = f"is larger than {MAX_CONFIG_BYTES // (1 << 20)} MiB: not a configuration file"
        raise ConfigFileError(path, "", problem)
    if pipe and not data:
        raise ConfigFileError(path, "", "is a pipe that nothing was written to")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigFileError(path, "", f"is not UTF-8 text (byte {error.start})") from None
    return parse_config(text, str(path))


def sample_config_text() -> str:
    """The sample configuration ``payorch demo`` runs with."""
    return resources.files("ingest").joinpath(SAMPLE_CONFIG).read_text(encoding="utf-8")


def load_sample_config() -> PlatformConfig:
    return parse_config(sample_config_text(), f"(built-in) {SAMPLE_CONFIG}")
