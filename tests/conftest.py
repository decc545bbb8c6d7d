"""Hypothesis profiles: CI runs derandomized so that a red build can be reproduced exactly."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from engine.unchecked import RECHECK
from tests.otlp_collector import Collector, running_collector

settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")

# Every value object the engine builds without checks (engine.unchecked) is checked in tests.
RECHECK.on = True


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A local OTLP/HTTP trace collector (tests.otlp_collector), running for the test."""
    with running_collector() as running:
        yield running
