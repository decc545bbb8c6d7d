"""Processor adapters: the engine's ``Processor`` port implemented over real processors' APIs.

The engine stays free of I/O; adapters live here, at the boundary, and are wired into the
router by the composition root.
"""

from ingest.processors.errors import MalformedProcessorResponseError, MissingApiKeyError, ProcessorSetupError
from ingest.processors.stripe_adapter import StripeProcessor, stripe_processor_from_config

__all__ = [
    "MalformedProcessorResponseError",
    "MissingApiKeyError",
    "ProcessorSetupError",
    "StripeProcessor",
    "stripe_processor_from_config",
]
