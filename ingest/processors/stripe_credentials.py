"""A Stripe processor's API key, read from the environment and checked before anything starts.

Kept apart from :mod:`ingest.processors.stripe_adapter` so that checking a configuration (and a
service whose merchants route only to simulated processors) never imports the Stripe SDK, which
costs about half a second of every start.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.config import ProcessorConfig
from ingest.processors.errors import MissingApiKeyError, ProcessorSetupError


def stripe_api_key(config: ProcessorConfig, environ: Mapping[str, str]) -> str:
    """The API key of the Stripe processor of ``config``, from ``environ[config.api_key_env]``;
    a :class:`ProcessorSetupError` naming the variable (never the key) when it cannot be one."""
    variable = config.api_key_env
    if not variable:
        raise ProcessorSetupError(config.id, "api_key_env is required for a stripe processor")
    api_key = environ.get(variable)
    if not api_key:
        raise MissingApiKeyError(config.id, variable)
    if not (api_key.isascii() and api_key.isprintable()) or any(c.isspace() for c in api_key):
        # Sent as it is, the key would fail every call before it left (an HTTP header cannot hold
        # a newline), each charge a timeout of unknown outcome, without a word about the key.
        problem = (
            f"the environment variable {variable} holds spaces, control or non-ASCII characters "
            "(a trailing newline?), which no Stripe key has (the key is not shown)"
        )
        raise ProcessorSetupError(config.id, problem)
    return api_key
