"""The permissive parser at the boundary: chaotic merchant input to a strict request context.

The API calls :func:`parse_payment_request`; :func:`mask_card_numbers` is the one masking rule
every other part of the boundary (logs, events, reports) applies to merchant text.
"""

from ingest.parsing.masking import mask_card_numbers
from ingest.parsing.request import ParsedRequest, parse_payment_request

__all__ = ["ParsedRequest", "mask_card_numbers", "parse_payment_request"]
