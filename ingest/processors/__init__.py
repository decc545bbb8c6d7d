"""Processor adapters: the engine's ``Processor`` port implemented over real processors' APIs.

The engine stays free of I/O; adapters live here, at the boundary, and are wired into the
router by the composition root. Each adapter is imported from its own module
(:mod:`ingest.processors.stripe_adapter`), and only when a merchant routes to it: the Stripe SDK
takes about half a second to import, which a service of simulated processors need not pay.
"""

from ingest.processors.errors import MalformedProcessorResponseError, MissingApiKeyError, ProcessorSetupError

__all__ = ["MalformedProcessorResponseError", "MissingApiKeyError", "ProcessorSetupError"]
