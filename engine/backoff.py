"""Exponential backoff with full jitter between retries at one processor.

Written here rather than taken from tenacity: ``AsyncRetrying`` measured 36 µs per call on this
machine, more than half of a whole payment's budget, and its jitter cannot take a seeded source.
"""

from __future__ import annotations

from engine.config import RetryPolicy
from engine.ports import RandomSource


def backoff_seconds(retry_number: int, policy: RetryPolicy, random: RandomSource) -> float:
    """The wait before retry ``retry_number`` (1 for the first retry): uniform in
    ``[0, min(max_delay, base_delay * 2 ** (retry_number - 1))]`` ("full jitter")."""
    ceiling_ms = min(policy.max_delay_ms, policy.base_delay_ms << min(max(retry_number - 1, 0), 30))
    return random.random() * ceiling_ms / 1000.0
