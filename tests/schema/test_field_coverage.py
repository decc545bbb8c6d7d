"""Every field of every domain type has a wire field, with presence exactly where it may be None."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from google.protobuf.message import Message
from payments.config.v1 import config_pb2
from payments.events.v1 import events_pb2
from payments.plan.v1 import plan_pb2

from engine import circuit_breaker, config, events, plan, validation

ENVELOPE_FIELDS = {"payment_id", "request_id", "merchant_id", "timestamp"}
#: Domain names that the wire spells as the YAML file does.
RENAMED = {"latency": "latency_ms", "p50_ms": "p50", "p99_ms": "p99"}
#: Wire fields derived from the domain rather than stored in it (none: StepFailed's ``retryable``
#: is a field of the domain event, as the seed spec has it).
DERIVED: dict[str, set[str]] = {}

PAIRS: list[tuple[type[Any], type[Message]]] = [
    (events.PaymentReceived, events_pb2.PaymentReceived),
    (events.PlanBuilt, events_pb2.PlanBuilt),
    (events.PlannedStep, events_pb2.PlannedStep),
    (events.StepAttempted, events_pb2.StepAttempted),
    (events.StepSucceeded, events_pb2.StepSucceeded),
    (events.StepFailed, events_pb2.StepFailed),
    (events.CompensationIssued, events_pb2.CompensationIssued),
    (events.PaymentCompleted, events_pb2.PaymentCompleted),
    (events.PaymentFailed, events_pb2.PaymentFailed),
    (events.DomainEvent, events_pb2.DomainEvent),
    (validation.ValidationIssue, events_pb2.ValidationIssue),
    (plan.PaymentPlan, plan_pb2.PaymentPlan),
    (plan.PaymentStep, plan_pb2.PaymentStep),
    (config.PlatformConfig, config_pb2.PlatformConfig),
    (config.MerchantConfig, config_pb2.MerchantConfig),
    (config.RoutingRule, config_pb2.RoutingRule),
    (config.RetryPolicy, config_pb2.RetryPolicy),
    (config.ProcessorConfig, config_pb2.ProcessorConfig),
    (config.LatencyProfile, config_pb2.LatencyProfile),
    (config.FaultRates, config_pb2.FaultRates),
    (config.EscalationConfig, config_pb2.EscalationConfig),
    (config.ReportConfig, config_pb2.ReportConfig),
    (config.MismatchRule, config_pb2.MismatchRule),
    (config.StoreConfig, config_pb2.StoreConfig),
    (circuit_breaker.BreakerPolicy, config_pb2.BreakerPolicy),
]


def _domain_fields(domain: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    fields = {RENAMED.get(field.name, field.name): field for field in dataclasses.fields(domain)}
    if domain is not events.DomainEvent and issubclass(domain, events.DomainEvent):
        fields = {name: field for name, field in fields.items() if name not in ENVELOPE_FIELDS}
    return fields


@pytest.mark.parametrize(("domain", "message"), PAIRS, ids=[wire.DESCRIPTOR.full_name for _, wire in PAIRS])
def test_wire_message_has_every_domain_field(domain: type[Any], message: type[Message]) -> None:
    wire = message.DESCRIPTOR
    domain_fields = _domain_fields(domain)
    # The envelope's ``event`` members are the event messages themselves, not envelope fields.
    wire_fields = {
        field.name
        for field in wire.fields
        if field.containing_oneof is None or field.containing_oneof.name != "event"
    }
    assert set(domain_fields) <= wire_fields
    assert wire_fields - set(domain_fields) <= DERIVED.get(wire.name, set())


@pytest.mark.parametrize(("domain", "message"), PAIRS, ids=[wire.DESCRIPTOR.full_name for _, wire in PAIRS])
def test_none_able_fields_have_presence_on_the_wire(domain: type[Any], message: type[Message]) -> None:
    wire = message.DESCRIPTOR
    for name, field in _domain_fields(domain).items():
        if field.default is None:
            assert wire.fields_by_name[name].has_presence, f"{wire.full_name}.{name} must be optional"
