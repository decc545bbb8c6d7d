"""Merchant and platform configuration as domain values (canonical form ``payments.config.v1``).

Reading YAML is the boundary's job; these types only hold a configuration that is already
structured and check that its parts agree with each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from urllib.parse import urlsplit

from engine.circuit_breaker import BreakerPolicy
from engine.complaints import category_key
from engine.contracts import check_contract_id
from engine.errors import ConfigError, InvalidFieldError
from engine.memory_size import memory_bytes
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency, check_minor_units
from engine.types import (
    ContractId,
    MerchantId,
    ProcessorId,
    check_count,
    check_identifier,
    check_sequence,
    check_text,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per processor and the exponential backoff (full jitter) between them."""

    max_attempts: int = 3
    base_delay_ms: int = 20
    max_delay_ms: int = 200

    def __post_init__(self) -> None:
        check_count("retry.max_attempts", self.max_attempts, minimum=1, maximum=20)
        check_count("retry.base_delay_ms", self.base_delay_ms, maximum=60_000)
        check_count("retry.max_delay_ms", self.max_delay_ms, maximum=600_000)
        if self.max_delay_ms < self.base_delay_ms:
            raise ConfigError(
                "retry.max_delay_ms",
                self.max_delay_ms,
                f"must be at least base_delay_ms {self.base_delay_ms}",
            )


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """One entry of a merchant's ordered routing: a method, its cap, its processor chain."""

    method: PaymentMethod
    processors: tuple[ProcessorId, ...]
    max_amount_cents: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, PaymentMethod):
            raise InvalidFieldError("routing.method", self.method, "must be a PaymentMethod")
        processors = check_sequence("routing.processors", self.processors)
        if not processors:
            raise ConfigError("routing.processors", processors, "must name at least one processor")
        for processor in processors:
            check_identifier("routing.processors", processor)
        if len(set(processors)) != len(processors):
            raise ConfigError("routing.processors", processors, "must not repeat a processor")
        if self.max_amount_cents is not None:
            check_minor_units("routing.max_amount_cents", self.max_amount_cents)
            if self.max_amount_cents == 0:
                raise ConfigError("routing.max_amount_cents", 0, "must be positive when given")
        object.__setattr__(self, "processors", processors)


#: A merchant's payments in flight at once, by default and at most (``MerchantConfig.max_in_flight``).
#: 500 of a merchant whose processor takes 1.5 s (333 payments a second) left another merchant's
#: payments at 98 ms (p50; 72 ms alone) on two shared cores; 4,000 took them to 6 s.
DEFAULT_MAX_IN_FLIGHT = 500
MAX_IN_FLIGHT = 1_000_000


#: The bounds of a :class:`ComplaintLimits`' counts: past them a limit is a slip, not a limit.
MAX_COMPLAINTS_PER_MINUTE = 1_000_000
MAX_COMPLAINTS_PER_DAY = 100_000_000


@dataclass(frozen=True, slots=True)
class ComplaintLimits:
    """How fast a merchant may file complaints (``POST /v1/complaints`` storing a new one): a
    burst of ``per_minute``, then ``per_minute`` a minute; and at most ``per_day`` in a day (a
    burst of them, then ``per_day`` spread over the day). Each is a token bucket: its full
    count may be used at once, and it refills evenly. One merchant's flood then neither fills the
    disk (at most ``per_day`` rows a day) nor holds the writer from the others' payments.

    The defaults let a support desk file a backlog of 600 at once and 10,000 a day (a merchant's
    complaints are a small share of its payments). A flood at full speed (175 a second from 16
    clients on two shared cores) took another merchant's payments from 118 to 173 ms (p50); held
    to these limits, from 114 to 140 ms."""

    per_minute: int = 600
    per_day: int = 10_000

    def __post_init__(self) -> None:
        check_count(
            "complaint_limits.per_minute", self.per_minute, minimum=1, maximum=MAX_COMPLAINTS_PER_MINUTE
        )
        check_count("complaint_limits.per_day", self.per_day, minimum=1, maximum=MAX_COMPLAINTS_PER_DAY)


@dataclass(frozen=True, slots=True)
class MerchantConfig:
    """Everything payorch knows about one merchant."""

    merchant_id: MerchantId
    api_keys: tuple[str, ...] = field(repr=False)
    default_currency: Currency
    routing: tuple[RoutingRule, ...]
    partial_policy: PartialPolicy = PartialPolicy.ALL_OR_NOTHING
    max_amount_cents: int = 100_000_000
    timeout_ms: int = 2000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The latency objective of the merchant's answers (``payment/latency-slo``): what the merchant
    #: waits for, from the request in hand to its durable answer, which the API layer times.
    latency_slo_ms: int | None = None
    #: The merchant's payments running at once (``POST /v1/payments`` taken and not yet answered)
    #: beyond which a new one is refused 429 ``rate_limited``: one merchant's flood cannot take the
    #: whole process from the others.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    #: How fast the merchant may file complaints, past which one is refused 429 ``rate_limited``.
    complaint_limits: ComplaintLimits = field(default_factory=ComplaintLimits)

    def __post_init__(self) -> None:
        where = f"merchants[{self.merchant_id!r}]"
        check_identifier("merchant_id", self.merchant_id)
        keys = check_sequence(f"{where}.api_keys", self.api_keys)
        if not keys:
            raise ConfigError(f"{where}.api_keys", keys, "must hold at least one key")
        for key in keys:
            check_identifier(f"{where}.api_keys", key)
        if not isinstance(self.default_currency, Currency):
            raise InvalidFieldError(f"{where}.default_currency", self.default_currency, "must be a Currency")
        rules = check_sequence(f"{where}.routing", self.routing)
        if not rules:
            raise ConfigError(f"{where}.routing", rules, "must hold at least one rule")
        if any(not isinstance(rule, RoutingRule) for rule in rules):
            raise ConfigError(f"{where}.routing", rules, "must hold RoutingRules")
        if not isinstance(self.partial_policy, PartialPolicy):
            raise InvalidFieldError(f"{where}.partial_policy", self.partial_policy, "must be a PartialPolicy")
        check_minor_units(f"{where}.max_amount_cents", self.max_amount_cents)
        if self.max_amount_cents == 0:
            raise ConfigError(f"{where}.max_amount_cents", 0, "must be positive")
        check_count(f"{where}.timeout_ms", self.timeout_ms, minimum=1, maximum=600_000)
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidFieldError(f"{where}.retry", self.retry, "must be a RetryPolicy")
        if self.latency_slo_ms is not None:
            check_count(f"{where}.latency_slo_ms", self.latency_slo_ms, minimum=1)
        check_count(f"{where}.max_in_flight", self.max_in_flight, minimum=1, maximum=MAX_IN_FLIGHT)
        if not isinstance(self.complaint_limits, ComplaintLimits):
            raise InvalidFieldError(
                f"{where}.complaint_limits", self.complaint_limits, "must be ComplaintLimits"
            )
        object.__setattr__(self, "api_keys", keys)
        object.__setattr__(self, "routing", rules)


def check_http_url(field: str, value: object) -> str:
    """Return ``value`` when it is an http(s) URL with a host (and, if any, a port that is one)."""
    url = check_text(field, value, max_length=2000)
    if any(character.isspace() or not character.isprintable() for character in url):
        raise ConfigError(field, url, "must be an http(s) URL, without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed "[" of an IPv6 host, a port out of range or no number
        raise ConfigError(field, url, "must be an http(s) URL with a valid host and port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(field, url, "must be an http(s) URL with a host (http://host[:port]/...)")
    return url


class ProcessorKind(StrEnum):
    SIMULATED = "simulated"
    STRIPE = "stripe"


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """A simulated processor's latency distribution, by its median and 99th percentile."""

    p50_ms: float = 80.0
    p99_ms: float = 400.0

    def __post_init__(self) -> None:
        for name, value in (("latency_ms.p50", self.p50_ms), ("latency_ms.p99", self.p99_ms)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidFieldError(name, value, "must be a finite number of milliseconds")
            if value < 0:
                raise InvalidFieldError(name, value, "must not be negative")
        if self.p99_ms < self.p50_ms:
            raise ConfigError("latency_ms.p99", self.p99_ms, f"must be at least p50 {self.p50_ms}")


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities of each fault of a simulated processor; together at most 1."""

    declined: float = 0.0
    timeout: float = 0.0
    network_failure: float = 0.0
    panic: float = 0.0
    malformed: float = 0.0

    def __post_init__(self) -> None:
        for name in ("declined", "timeout", "network_failure", "panic", "malformed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidFieldError(f"fault_rates.{name}", value, "must be a probability")
            if not 0.0 <= value <= 1.0:
                raise InvalidFieldError(f"fault_rates.{name}", value, "must be between 0 and 1")
        if self.total > 1.0 + 1e-9:
            raise ConfigError("fault_rates", self.total, "must add up to at most 1")

    @property
    def total(self) -> float:
        return self.declined + self.timeout + self.network_failure + self.panic + self.malformed


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """A processor payorch can route to: simulated (seeded) or Stripe (the official SDK)."""

    id: ProcessorId
    kind: ProcessorKind
    seed: int = 0
    latency: LatencyProfile = field(default_factory=LatencyProfile)
    fault_rates: FaultRates = field(default_factory=FaultRates)
    api_key_env: str | None = None
    api_base: str | None = None
    currencies: tuple[Currency, ...] = ()
    methods: tuple[PaymentMethod, ...] = ()
    #: When the processor's circuit opens, and for how long (the default: 5 faults, 30 s).
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def __post_init__(self) -> None:
        check_identifier("processors.id", self.id)
        currencies = check_sequence(f"processors[{self.id!r}].currencies", self.currencies)
        if any(not isinstance(currency, Currency) for currency in currencies):
            raise InvalidFieldError(f"processors[{self.id!r}].currencies", currencies, "must hold Currencies")
        methods = check_sequence(f"processors[{self.id!r}].methods", self.methods)
        if any(not isinstance(method, PaymentMethod) for method in methods):
            raise InvalidFieldError(f"processors[{self.id!r}].methods", methods, "must hold PaymentMethods")
        object.__setattr__(self, "currencies", currencies)
        object.__setattr__(self, "methods", methods)
        if not isinstance(self.kind, ProcessorKind):
            raise InvalidFieldError(f"processors[{self.id!r}].kind", self.kind, "must be simulated or stripe")
        check_count(f"processors[{self.id!r}].seed", self.seed, maximum=2**63 - 1)
        if not isinstance(self.latency, LatencyProfile):
            raise InvalidFieldError(
                f"processors[{self.id!r}].latency_ms", self.latency, "must be a LatencyProfile"
            )
        if not isinstance(self.fault_rates, FaultRates):
            raise InvalidFieldError(
                f"processors[{self.id!r}].fault_rates", self.fault_rates, "must be FaultRates"
            )
        if not isinstance(self.breaker, BreakerPolicy):
            raise InvalidFieldError(
                f"processors[{self.id!r}].breaker", self.breaker, "must be a BreakerPolicy"
            )
        if self.kind is ProcessorKind.STRIPE and not self.api_key_env:
            raise ConfigError(
                f"processors[{self.id!r}].api_key_env", self.api_key_env, "is required for stripe"
            )
        if self.api_key_env is not None:
            check_identifier(f"processors[{self.id!r}].api_key_env", self.api_key_env)
        if self.api_base is not None:
            check_http_url(f"processors[{self.id!r}].api_base", self.api_base)

    def accepts(self, currency: Currency, method: PaymentMethod) -> bool:
        """Whether this processor takes payments in ``currency`` by ``method`` (empty lists: all)."""
        return (not self.currencies or currency in self.currencies) and (
            not self.methods or method in self.methods
        )


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    webhook_url: str | None = None
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.webhook_url is not None:
            check_http_url("escalations.webhook_url", self.webhook_url)
        check_count("escalations.max_attempts", self.max_attempts, minimum=1, maximum=100)


@dataclass(frozen=True, slots=True)
class MismatchRule:
    """When a contract's violations and complaints disagree enough to escalate (see the report)."""

    min_ratio: float = 0.1
    min_reports: int = 1

    def __post_init__(self) -> None:
        value = self.min_ratio
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidFieldError("reports.mismatch.min_ratio", value, "must be a number")
        if value < 0:
            raise InvalidFieldError("reports.mismatch.min_ratio", value, "must not be negative")
        check_count("reports.mismatch.min_reports", self.min_reports, minimum=1)


@dataclass(frozen=True, slots=True)
class ReportConfig:
    every_days: int = 14
    mismatch: MismatchRule = field(default_factory=MismatchRule)

    def __post_init__(self) -> None:
        check_count("reports.every_days", self.every_days, minimum=1, maximum=366)
        if not isinstance(self.mismatch, MismatchRule):
            raise InvalidFieldError("reports.mismatch", self.mismatch, "must be a MismatchRule")


#: ``store.memory_limit_mb``'s bounds, 0 aside: a floor that keeps a slip (``1`` meant as 1 GB) from
#: starving the store, and 1 TiB.
MIN_MEMORY_LIMIT_MB = 16
MAX_MEMORY_LIMIT_MB = 1_048_576
#: ``store.idempotency_hot_s``'s bound: a key is kept 24 hours, and held whole at most that long.
MAX_IDEMPOTENCY_HOT_S = 86_400
#: ``store.admin_reads``'s bound: far past any machine's cores (each read keeps about one busy).
MAX_ADMIN_READS = 1024
#: ``store.admin_read_idle_s``'s and ``store.admin_read_max_s``'s bounds: an hour, a day.
MAX_ADMIN_READ_IDLE_S = 3600
MAX_ADMIN_READ_S = 86_400


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How ``payorch serve`` writes to its database (group commit and backpressure), and how many
    admin reads of a time window it runs beside the payments.

    A batch of writes is committed at ``max_rows`` writes, or ``max_wait_ms`` after its first
    (0: as soon as the queue is drained; what arrives during a commit makes the next batch). New
    payments and complaints are refused (503) while more than ``admit_limit`` writes wait for the
    disk or are still to come of the work let in (``ingest.store.admission``); from
    ``fair_share_percent`` of that limit on, only those of a merchant holding no more than its
    share of the work admitted (``ingest.store.shares``): one merchant's flood is refused before
    the others' trickle (100: every merchant alike, at ``admit_limit`` only). DuckDB
    holds at most ``memory_limit`` of memory (a size, ``512MiB``: ``engine.memory_size``; its
    buffers: cached pages, data not yet checkpointed, query state), spilling the rest to a folder
    in the data folder; ``None`` takes ``memory_limit_mb`` (MiB, the older spelling) when it is
    not 0, else a quarter of the memory the process may use (``ingest.store.memory``), never
    DuckDB's own default of 80% of the host's. An answered idempotency key is held
    whole in memory for its first ``idempotency_hot_s`` seconds (0 to a day, its time-to-live),
    then only as a mark, a repeat being looked up in the database: less memory, slower repeats.
    At most ``admin_reads`` admin reads (the analytics tables, the retrospective) run at once, one
    more being refused (503); ``None``: half the cores the process may use, at least one. A
    streamed one is cut short, its place given back, when its client takes none of it for
    ``admin_read_idle_s`` seconds, or has not taken it all ``admin_read_max_s`` after it began.
    """

    max_rows: int = 5000
    max_wait_ms: int = 0
    admit_limit: int = 20_000
    memory_limit_mb: int = 0
    idempotency_hot_s: int = 600
    admin_reads: int | None = None
    admin_read_idle_s: int = 30
    admin_read_max_s: int = 300
    fair_share_percent: int = 50
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        check_count("store.max_rows", self.max_rows, minimum=1, maximum=1_000_000)
        check_count("store.max_wait_ms", self.max_wait_ms, minimum=0, maximum=10_000)
        check_count("store.admit_limit", self.admit_limit, minimum=1, maximum=10_000_000)
        check_count("store.fair_share_percent", self.fair_share_percent, minimum=1, maximum=100)
        limit = check_count("store.memory_limit_mb", self.memory_limit_mb, maximum=MAX_MEMORY_LIMIT_MB)
        if 0 < limit < MIN_MEMORY_LIMIT_MB:
            problem = f"must be 0 (payorch's default) or at least {MIN_MEMORY_LIMIT_MB}"
            raise InvalidFieldError("store.memory_limit_mb", limit, problem)
        if self.memory_limit is not None:
            memory_bytes(self.memory_limit)
            if limit:
                problem = "and memory_limit_mb are the same limit: give one of them"
                raise InvalidFieldError("store.memory_limit", self.memory_limit, problem)
        check_count(
            "store.idempotency_hot_s", self.idempotency_hot_s, minimum=0, maximum=MAX_IDEMPOTENCY_HOT_S
        )
        if self.admin_reads is not None:
            check_count("store.admin_reads", self.admin_reads, minimum=1, maximum=MAX_ADMIN_READS)
        check_count(
            "store.admin_read_idle_s", self.admin_read_idle_s, minimum=1, maximum=MAX_ADMIN_READ_IDLE_S
        )
        check_count("store.admin_read_max_s", self.admin_read_max_s, minimum=1, maximum=MAX_ADMIN_READ_S)

    def memory_limit_bytes(self) -> int | None:
        """The bytes ``memory_limit`` (or ``memory_limit_mb``) gives; ``None`` when neither does:
        the default, which depends on the machine (``ingest.store.memory``)."""
        if self.memory_limit is not None:
            return memory_bytes(self.memory_limit)
        return self.memory_limit_mb * 2**20 or None


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """The whole configuration file. Invariants: ids and API keys are unique, and every
    processor a routing rule names is configured and takes the rule's method."""

    merchants: tuple[MerchantConfig, ...]
    processors: tuple[ProcessorConfig, ...]
    admin_api_keys: tuple[str, ...] = field(default=(), repr=False)
    complaint_taxonomy: Mapping[str, ContractId] = field(default_factory=dict, hash=False)
    escalations: EscalationConfig = field(default_factory=EscalationConfig)
    reports: ReportConfig = field(default_factory=ReportConfig)
    store: StoreConfig = field(default_factory=StoreConfig)

    def __post_init__(self) -> None:
        merchants = check_sequence("merchants", self.merchants)
        processors = check_sequence("processors", self.processors)
        admin_keys = check_sequence("admin_api_keys", self.admin_api_keys)
        if any(not isinstance(m, MerchantConfig) for m in merchants):
            raise InvalidFieldError("merchants", merchants, "must hold MerchantConfigs")
        if any(not isinstance(p, ProcessorConfig) for p in processors):
            raise InvalidFieldError("processors", processors, "must hold ProcessorConfigs")
        if not isinstance(self.complaint_taxonomy, Mapping):
            raise InvalidFieldError(
                "complaint_taxonomy", self.complaint_taxonomy, "must map categories to contracts"
            )
        if not isinstance(self.escalations, EscalationConfig):
            raise InvalidFieldError("escalations", self.escalations, "must be an EscalationConfig")
        if not isinstance(self.reports, ReportConfig):
            raise InvalidFieldError("reports", self.reports, "must be a ReportConfig")
        if not isinstance(self.store, StoreConfig):
            raise InvalidFieldError("store", self.store, "must be a StoreConfig")
        _unique("merchants.merchant_id", [m.merchant_id for m in merchants])
        _unique("processors.id", [p.id for p in processors])
        for key in admin_keys:
            check_identifier("admin_api_keys", key)
        _unique("api_keys", [*admin_keys, *(key for m in merchants for key in m.api_keys)])
        known = {p.id: p for p in processors}
        for merchant in merchants:
            for position, rule in enumerate(merchant.routing):
                for processor in rule.processors:
                    _check_routed(known, rule, processor, f"merchants[{merchant.merchant_id!r}]", position)
        taxonomy = dict(self.complaint_taxonomy)
        folded: dict[str, str] = {}
        for category, contract in taxonomy.items():
            check_identifier("complaint_taxonomy", category)
            check_contract_id(f"complaint_taxonomy.{category}", contract)
            first = folded.setdefault(category_key(category), category)
            if first != category:
                problem = f"is the same category as {first!r} (matched whatever their case, _, . and -)"
                raise ConfigError(f"complaint_taxonomy.{category}", category, problem)
        object.__setattr__(self, "merchants", merchants)
        object.__setattr__(self, "processors", processors)
        object.__setattr__(self, "admin_api_keys", admin_keys)
        object.__setattr__(self, "complaint_taxonomy", MappingProxyType(taxonomy))

    def merchant(self, merchant_id: str) -> MerchantConfig:
        for merchant in self.merchants:
            if merchant.merchant_id == merchant_id:
                return merchant
        raise ConfigError("merchant_id", merchant_id, "is not a configured merchant")

    def processor(self, processor_id: str) -> ProcessorConfig:
        for processor in self.processors:
            if processor.id == processor_id:
                return processor
        raise ConfigError("processor_id", processor_id, "is not a configured processor")

    def breaker_policy(self, processor_id: str) -> BreakerPolicy:
        """The breaker of ``processor_id`` as its circuits follow it: ``min_timeout_ms`` resolved
        against the ``timeout_ms`` of the merchants routed to it (:meth:`BreakerPolicy.resolved`)."""
        budgets = (
            merchant.timeout_ms
            for merchant in self.merchants
            if any(processor_id in rule.processors for rule in merchant.routing)
        )
        return self.processor(processor_id).breaker.resolved(budgets)


def _check_routed(
    known: Mapping[ProcessorId, ProcessorConfig],
    rule: RoutingRule,
    processor: ProcessorId,
    merchant: str,
    position: int,
) -> None:
    """A processor a routing rule names must exist and take the rule's method: one whose
    ``methods`` leave the rule's out would have every payment of that method refused (422)."""
    field_name = f"{merchant}.routing[{position}].processors"
    config = known.get(processor)
    if config is None:
        raise ConfigError(field_name, processor, "is not a configured processor")
    if config.methods and rule.method not in config.methods:
        takes = ", ".join(method.value for method in config.methods)
        raise ConfigError(field_name, processor, f"does not take {rule.method.value} (its methods: {takes})")


def _unique(field_name: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(field_name, value, "appears more than once")
        seen.add(value)
