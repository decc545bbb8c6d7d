"""Every domain enum member has exactly one protobuf value, named after it."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
from google.protobuf.descriptor import EnumDescriptor
from payments.config.v1 import config_pb2
from payments.events.v1 import events_pb2
from payments.plan.v1 import plan_pb2

from engine.config import ProcessorKind
from engine.error_codes import ErrorCode
from engine.methods import PartialPolicy, PaymentMethod
from engine.results import PaymentStatus
from engine.validation import IssueSeverity
from ingest.codec import enums
from ingest.codec.enums import EnumTable


def _pairs(table: EnumTable[Any, Any]) -> dict[Enum, int]:
    return {member: int(number) for member, number in table.pairs.items()}


CASES: list[tuple[str, type[Enum], EnumDescriptor, dict[Enum, int]]] = [
    ("PAYMENT_METHOD_", PaymentMethod, plan_pb2.PaymentMethod.DESCRIPTOR, _pairs(enums.PAYMENT_METHODS)),
    ("PARTIAL_POLICY_", PartialPolicy, plan_pb2.PartialPolicy.DESCRIPTOR, _pairs(enums.PARTIAL_POLICIES)),
    ("ERROR_CODE_", ErrorCode, events_pb2.ErrorCode.DESCRIPTOR, _pairs(enums.ERROR_CODES)),
    (
        "ISSUE_SEVERITY_",
        IssueSeverity,
        events_pb2.IssueSeverity.DESCRIPTOR,
        _pairs(enums.ISSUE_SEVERITIES),
    ),
    (
        "PAYMENT_STATUS_",
        PaymentStatus,
        events_pb2.PaymentStatus.DESCRIPTOR,
        _pairs(enums.PAYMENT_STATUSES),
    ),
    (
        "PROCESSOR_KIND_",
        ProcessorKind,
        config_pb2.ProcessorKind.DESCRIPTOR,
        _pairs(enums.PROCESSOR_KINDS),
    ),
]


@pytest.mark.parametrize(("prefix", "domain", "wire", "pairs"), CASES, ids=[case[0] for case in CASES])
def test_domain_and_wire_enums_pair_one_to_one(
    prefix: str, domain: type[Enum], wire: EnumDescriptor, pairs: dict[Enum, int]
) -> None:
    assert set(pairs) == set(domain)
    by_number = {value.number: value.name for value in wire.values}
    assert by_number[0] == f"{prefix}UNSPECIFIED"
    assert {by_number[number] for number in pairs.values()} == set(by_number.values()) - {by_number[0]}
    for member, number in pairs.items():
        assert by_number[number] == prefix + member.name
