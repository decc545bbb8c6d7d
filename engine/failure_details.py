"""What a processor said when it refused an attempt, in its own words, for the merchant to read.

An error code (:mod:`engine.error_codes`) says what payorch does with a failure; it cannot say why
the processor refused. A Stripe user who sends an amount below Stripe's minimum for the currency
gets ``amount_too_small`` on ``amount`` with a message, and expects to see it: without it a
refused payment says only ``unknown``, and the reason is in an operator's log. So a failed
attempt may carry :class:`FailureDetails`: the processor's error ``type``, ``code``,
``decline_code``, ``param`` and ``message``, as the processor wrote them (Stripe's error object).

These are free text from outside, so the adapter that reads them masks anything secret (card
numbers, API keys) before it builds the object, and bounds every field; the engine checks only
the bounds. Unlike a step's ``decline_code`` (a closed set merchants act on), they are shown, not
interpreted: nothing in payorch decides anything from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InvalidFieldError
from engine.types import check_text

#: The longest ``type``, ``code`` or ``decline_code`` kept (Stripe's are under 50 characters).
MAX_CODE = 100
#: The longest ``param`` kept (Stripe names nested parameters: ``payment_method_data[card][number]``).
MAX_PARAM = 200
#: The longest ``message`` kept.
MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class FailureDetails:
    """A processor's own account of a refused attempt; at least one field is set."""

    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    param: str | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        for name, limit in (
            ("type", MAX_CODE),
            ("code", MAX_CODE),
            ("decline_code", MAX_CODE),
            ("param", MAX_PARAM),
            ("message", MAX_MESSAGE),
        ):
            value = getattr(self, name)
            if value is not None:
                check_text(f"failure_details.{name}", value, max_length=limit)
        if not any((self.type, self.code, self.decline_code, self.param, self.message)):
            raise InvalidFieldError("failure_details", self, "must say something (every field is empty)")


def check_failure_details(field: str, value: object) -> None:
    """Refuse anything but ``None`` or :class:`FailureDetails`."""
    if value is not None and not isinstance(value, FailureDetails):
        raise InvalidFieldError(field, value, "must be FailureDetails or None")
