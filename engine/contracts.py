"""Contracts as data: the registry (loaded from ``contracts.toml``) and contract violations."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType

from engine.errors import ConfigError, InvalidFieldError, UnknownContractError
from engine.events import check_timestamp
from engine.types import ContractId, MerchantId, PaymentId, RequestId, check_identifier, check_text

_CONTRACT_ID = re.compile(r"[a-z][a-z0-9-]*/[a-z][a-z0-9-]*")
_OWNER = re.compile(r"[a-z][a-z0-9-]*")


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"

    @classmethod
    def parse(cls, value: object, field: str = "severity") -> Severity:
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        raise InvalidFieldError(field, value, "must be critical, major or minor")


def check_contract_id(field: str, value: object) -> ContractId:
    if not isinstance(value, str) or not _CONTRACT_ID.fullmatch(value):
        raise InvalidFieldError(field, value, "must look like 'area/name' in lower-kebab-case")
    return ContractId(value)


@dataclass(frozen=True, slots=True)
class Contract:
    """A system-level promise: who owns it and how bad breaking it is."""

    id: ContractId
    severity: Severity
    owner: str
    description: str

    def __post_init__(self) -> None:
        check_contract_id("contract.id", self.id)
        if not isinstance(self.severity, Severity):
            raise InvalidFieldError("contract.severity", self.severity, "must be a Severity")
        if not isinstance(self.owner, str) or not _OWNER.fullmatch(self.owner):
            raise InvalidFieldError("contract.owner", self.owner, "must be a lower-kebab-case team name")
        check_text("contract.description", self.description, max_length=500)


@dataclass(frozen=True, slots=True)
class ContractViolation:
    """One breach of a contract (``payments.contracts.v1``), tied to the request that broke it."""

    contract_id: ContractId
    request_id: RequestId
    severity: Severity
    message: str
    owner: str
    timestamp: datetime
    payment_id: PaymentId | None = None
    merchant_id: MerchantId | None = None

    def __post_init__(self) -> None:
        check_contract_id("violation.contract_id", self.contract_id)
        check_identifier("violation.request_id", self.request_id)
        if not isinstance(self.severity, Severity):
            raise InvalidFieldError("violation.severity", self.severity, "must be a Severity")
        check_text("violation.message", self.message, max_length=2000)
        if not isinstance(self.owner, str) or not _OWNER.fullmatch(self.owner):
            raise InvalidFieldError("violation.owner", self.owner, "must be a lower-kebab-case team name")
        check_timestamp("violation.timestamp", self.timestamp)
        if self.payment_id is not None:
            check_identifier("violation.payment_id", self.payment_id)
        if self.merchant_id is not None:
            check_identifier("violation.merchant_id", self.merchant_id)


class ContractRegistry:
    """Every known contract by id. Recording a violation of an unknown id raises."""

    __slots__ = ("_contracts",)

    def __init__(self, contracts: Mapping[str, Contract] | list[Contract]) -> None:
        items = list(contracts.values()) if isinstance(contracts, Mapping) else list(contracts)
        table: dict[str, Contract] = {}
        for contract in items:
            if contract.id in table:
                raise ConfigError("contract.id", contract.id, "is listed twice")
            table[contract.id] = contract
        self._contracts: Mapping[str, Contract] = MappingProxyType(table)

    @classmethod
    def from_toml(cls, text: str, source: str = "contracts.toml") -> ContractRegistry:
        """Parse a registry file; every problem names the entry and field."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, None, f"is not valid TOML: {exc}") from exc
        entries = data.get("contract")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{source}: contract", entries, "must be a non-empty list of tables")
        contracts = []
        for position, entry in enumerate(entries):
            where = f"{source}: contract[{position}]"
            if not isinstance(entry, dict):
                raise ConfigError(where, entry, "must be a table")
            missing = {"id", "severity", "owner", "description"} - entry.keys()
            if missing:
                raise ConfigError(where, sorted(missing), "is missing these fields")
            contracts.append(
                Contract(
                    id=check_contract_id(f"{where}.id", entry["id"]),
                    severity=Severity.parse(entry["severity"], f"{where}.severity"),
                    owner=entry["owner"],
                    description=entry["description"],
                )
            )
        return cls(contracts)

    def get(self, contract_id: str) -> Contract:
        contract = self._contracts.get(contract_id)
        if contract is None:
            raise UnknownContractError("contract_id", contract_id, "is not in the contract registry")
        return contract

    def __contains__(self, contract_id: object) -> bool:
        return contract_id in self._contracts

    def __iter__(self) -> Iterator[Contract]:
        return iter(self._contracts.values())

    def __len__(self) -> int:
        return len(self._contracts)

    def ids(self) -> tuple[ContractId, ...]:
        return tuple(ContractId(key) for key in self._contracts)

    def violation(
        self,
        contract_id: str,
        *,
        request_id: RequestId,
        message: str,
        timestamp: datetime,
        payment_id: PaymentId | None = None,
        merchant_id: MerchantId | None = None,
    ) -> ContractViolation:
        """A violation of a registered contract, with its severity and owner filled in."""
        contract = self.get(contract_id)
        return ContractViolation(
            contract_id=contract.id,
            request_id=request_id,
            severity=contract.severity,
            message=message,
            owner=contract.owner,
            timestamp=timestamp,
            payment_id=payment_id,
            merchant_id=merchant_id,
        )


@cache
def default_registry() -> ContractRegistry:
    """The registry shipped with payorch (``engine/contracts.toml``), read once."""
    text = resources.files("engine").joinpath("contracts.toml").read_text(encoding="utf-8")
    return ContractRegistry.from_toml(text)
