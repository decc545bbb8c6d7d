"""Errors of the processor adapters, a branch of the boundary's tree (:mod:`ingest.errors`)::

    IngestError
    ├── ProcessorSetupError                 an adapter cannot be built from its configuration
    │   └── MissingApiKeyError              the environment variable holding the API key is unset
    ├── MalformedProcessorResponseError     a processor answered with something unreadable
    └── UnsupportedAmountError              an amount a processor cannot take in its currency

Neither of the last two leaves an adapter: the adapter turns ``MalformedProcessorResponseError``
into ``ErrorCode.MALFORMED_RESPONSE`` (or an ``UNKNOWN`` settlement) and ``UnsupportedAmountError``
into ``ErrorCode.POLICY_REJECTED`` (nothing sent), as the processor port requires.
"""

from __future__ import annotations

from ingest.errors import IngestError


class ProcessorSetupError(IngestError):
    """A processor adapter that cannot be built from its configuration."""

    def __init__(self, processor_id: str, problem: str) -> None:
        self.processor_id = processor_id
        self.problem = problem
        super().__init__(f"processors[{processor_id!r}]: {problem}")


class MissingApiKeyError(ProcessorSetupError):
    """The environment variable named by ``api_key_env`` is not set (or is empty)."""

    def __init__(self, processor_id: str, variable: str) -> None:
        self.variable = variable
        super().__init__(processor_id, f"the environment variable {variable} holding the API key is not set")


class MalformedProcessorResponseError(IngestError):
    """A processor's answer lacks a field the adapter needs, or holds it with the wrong type."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"{what}: {problem}")


class UnsupportedAmountError(IngestError):
    """An amount the processor cannot take exactly in its currency (1.235 KWD at Stripe)."""

    def __init__(self, currency: str, minor: int, problem: str) -> None:
        self.currency = currency
        self.minor = minor
        self.problem = problem
        super().__init__(f"{minor} minor units of {currency}: {problem}")
