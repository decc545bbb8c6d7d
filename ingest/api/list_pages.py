"""What the lists of the API share (``GET /v1/complaints``, ``GET /v1/payments``,
``GET /v1/violations``): whose records a key lists, and the 422 of a cursor that names nothing
listed.

A merchant key lists its own merchant's records only: naming another merchant
(``?merchant_id=``) lists none, as an empty page (not a 404: a list is never "not found"); an
admin key lists every merchant's, or the one it names. Pages are walked as Stripe's lists are,
``starting_after`` the id of the last record seen, so that records added during the walk neither
shift the pages nor hide one. Violations have no id of their own: the ``seq`` each was recorded
under names it (:func:`violation_after`).
"""

from __future__ import annotations

from ingest.api.auth import Principal
from ingest.api.problems import ApiProblem, FieldError
from ingest.parsing.masking import mask_card_numbers
from ingest.records import Records, ViolationPlace


def listed_merchant(caller: Principal, merchant_id: str | None) -> tuple[bool, str | None]:
    """Whether ``caller`` lists anything when it asks for ``merchant_id``'s records (``None``:
    every merchant it may see), and whose: a merchant key's own merchant's always."""
    if caller.merchant_id is None:
        return True, merchant_id
    return merchant_id in (None, caller.merchant_id), caller.merchant_id


def unknown_cursor(noun: str, given: str) -> ApiProblem:
    """The 422 of a ``starting_after`` that names no ``noun`` of those listed (another merchant's
    included: its existence is not told)."""
    return ApiProblem(
        "validation_failed",
        f"`starting_after` names no {noun} {mask_card_numbers(given)!r} of the merchants listed.",
        errors=[FieldError("starting_after", f"unknown_{noun}", f"is no {noun} listed here")],
    )


async def violation_after(records: Records, starting_after: str | None) -> ViolationPlace | None:
    """Where the violations list resumes past ``starting_after``, the ``seq`` of the last violation
    seen (digits only: the route checks); ``None`` for none given. 422 when no violation was
    recorded under it. Any recorded violation is a place in the order, also one the page's filters
    leave out."""
    if starting_after is None:
        return None
    place = (
        await records.violation_place(int(starting_after)) if len(starting_after) <= _MAX_SEQ_DIGITS else None
    )
    if place is None:
        raise unknown_cursor("violation", starting_after)
    return place


#: A seq is a BIGINT: more digits than its largest value has name none.
_MAX_SEQ_DIGITS = 18
