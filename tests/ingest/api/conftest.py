"""Fixtures of the API's tests."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG


@pytest.fixture(params=["duckdb", "memory"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """The app over the sample-like test config, with either store (a test module may define its
    own ``served``, which then takes its place there)."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=request.param == "duckdb")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application
