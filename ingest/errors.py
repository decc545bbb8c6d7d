"""The boundary's error tree (each class lives beside the code that raises it)::

PayorchError                            (engine.errors)
└── IngestError
    ├── ConfigFileError                 a configuration file that is missing, unreadable or invalid
    ├── ProcessorSetupError             (ingest.processors.errors) a processor that cannot be built
    │   └── MissingApiKeyError          its API key variable is unset
    ├── MalformedProcessorResponseError (ingest.processors.errors) an answer that cannot be read
    ├── UnsupportedAmountError          (ingest.processors.errors) an amount a processor cannot take
    ├── StoreSaturatedError             (ingest.store.writer) the writer is behind: answer 503
    │   └── StoreStoppedError           the disk stopped it for good: answer 503, the service stops
    ├── StoreError                      (ingest.store.writer) a batch could not be committed
    │   └── ChargeNotSentError          (ingest.store.records) nor a payment's first attempt: nothing charged
    ├── AdminReadCutError               (ingest.api.admin_reads) a streamed admin read taken too slowly
    ├── WindowError                     (ingest.store.reads) a window with naive or crossed bounds
    ├── DatabaseUnavailableError        (ingest.store.reads) no database to read in a data folder
    │   └── DatabaseHeldError           a running ``payorch serve`` holds it
    └── ExportError                     (ingest.store.export) ``payorch export`` could not run
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import PayorchError


class IngestError(PayorchError):
    """Root of the errors raised at the boundary."""


class ConfigFileError(IngestError):
    """A configuration file problem, naming the file, the field (with the value it holds, when
    that may be shown) and what is wrong."""

    def __init__(self, path: Path | str, field: str, problem: str, *, value: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        self.value = value
        # A path holding a newline or another unprintable character is quoted: the line stays one.
        shown_path = self.path if self.path.isprintable() else repr(self.path)
        where = f"{shown_path}: {field}" if field else shown_path
        shown = where if value is None else f"{where}={value}"
        super().__init__(f"{shown}: {problem}")
