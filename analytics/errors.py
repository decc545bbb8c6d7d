"""The analytics error tree (each class lives here; the messages are one line for an operator)::

PayorchError                    (engine.errors)
└── AnalyticsError
    └── UnreadableExportError   (analytics.export_source) an export that cannot be read
        └── NotAnExportError    the folder is no export at all (missing, or no inputs in it)
"""

from __future__ import annotations

from engine.errors import PayorchError


class AnalyticsError(PayorchError):
    """Root of the errors raised by the analytics jobs and their sources."""


class UnreadableExportError(AnalyticsError):
    """A ``payorch export`` folder whose files are damaged, of another schema, or not an export's."""


class NotAnExportError(UnreadableExportError):
    """The folder given is missing, or holds none of an export's inputs."""
