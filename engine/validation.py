"""Validation issues: every correction or refusal the boundary parser records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from engine.errors import InvalidFieldError
from engine.types import check_text

_CODE = re.compile(r"[a-z][a-z0-9_]*")
MAX_RAW_LENGTH = 500


class IssueSeverity(StrEnum):
    """A ``warning`` never blocks a payment; an ``error`` makes the request unprocessable."""

    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One correction (warning) or refusal (error) of one field of a merchant's request.

    ``raw`` is the offending input as text, already masked and cut to 500 characters.
    """

    field: str
    code: str
    message: str
    severity: IssueSeverity
    raw: str | None = None

    def __post_init__(self) -> None:
        check_text("issue.field", self.field, max_length=200)
        if not isinstance(self.code, str) or not _CODE.fullmatch(self.code) or len(self.code) > 100:
            raise InvalidFieldError(
                "issue.code", self.code, "must be lower_snake_case, at most 100 characters"
            )
        check_text("issue.message", self.message, max_length=1000)
        if not isinstance(self.severity, IssueSeverity):
            raise InvalidFieldError("issue.severity", self.severity, "must be warning or error")
        if self.raw is not None:
            check_text("issue.raw", self.raw, max_length=MAX_RAW_LENGTH, allow_empty=True)

    @property
    def blocks(self) -> bool:
        return self.severity is IssueSeverity.ERROR
