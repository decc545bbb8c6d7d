"""Hypothesis profiles: CI runs derandomized so that a red build can be reproduced exactly."""

import os

from hypothesis import HealthCheck, settings

from engine.unchecked import RECHECK

settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")

# Every value object the engine builds without checks (engine.unchecked) is checked in tests.
RECHECK.on = True
