"""Processor adapters: implementations of :class:`engine.processor.Processor`.

:mod:`engine.processors.simulated` holds the deterministic simulated processor, which records
what it really charges in the shared :class:`engine.ledger.Ledger`;
:mod:`engine.processors.cards` holds the Stripe test cards it honors.
"""

from engine.processors.simulated import SimulatedPanic, SimulatedProcessor

__all__ = ["SimulatedPanic", "SimulatedProcessor"]
