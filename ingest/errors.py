"""The boundary's error tree::

PayorchError                    (engine.errors)
└── IngestError
    └── ConfigFileError         a configuration file that is missing, unreadable or invalid
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import PayorchError


class IngestError(PayorchError):
    """Root of the errors raised at the boundary."""


class ConfigFileError(IngestError):
    """A configuration file problem, naming the file, the field and what is wrong."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")
