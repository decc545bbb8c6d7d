"""Fixtures for the boundary's tests: a fake Stripe API on a free loopback port."""

from collections.abc import Iterator

import pytest

from tests.ingest.fake_stripe import FakeStripe


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A running :class:`FakeStripe`, stopped after the test; it must have hit no unexpected error."""
    with FakeStripe() as fake:
        yield fake
    assert fake.unexpected_errors == []
