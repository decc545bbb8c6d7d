"""The permissive parser at the boundary: chaotic merchant input to a strict request context.

The API calls :func:`parse_payment_request`; :func:`mask_card_numbers` is the one masking rule
every other part of the boundary (logs, events, reports) applies to merchant text, and
:func:`idempotency_key_problem` (stated by :data:`KEY_RULE`) the one rule of what an idempotency
key may be, for the ``Idempotency-Key`` header as for the body's key.
"""

from ingest.parsing.identifiers import KEY_PATTERN, KEY_RULE, idempotency_key_problem
from ingest.parsing.masking import mask_card_numbers
from ingest.parsing.request import ParsedRequest, parse_payment_request

__all__ = [
    "KEY_PATTERN",
    "KEY_RULE",
    "ParsedRequest",
    "idempotency_key_problem",
    "mask_card_numbers",
    "parse_payment_request",
]
