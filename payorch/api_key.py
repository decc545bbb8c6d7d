"""The admin key a command sends to a running service (``payorch report --api``), checked before
anything is sent, and never shown: not in an error, not in a log line.

A key travels in an HTTP header, which cannot hold a line break, and a payorch key is plain ASCII
without spaces (``engine.types.check_identifier``). A key that is not (a trailing newline of
``$(cat key)`` pasted whole, a non-breaking space copied from a chat) was sent as it was: httpx
refused it with an error that quoted the header, key and all, or failed unexplained on a
non-ASCII one. It is refused here instead, by where it came from.

On the command line (``--api-key``) a key is shown by ``ps`` to every user of the machine and kept
in the shell's history: a key file (``--api-key-file``, :func:`read_key_file`), the standard
input (``--api-key-file -``, :func:`read_key_stream`: ``pass show payorch/admin | payorch report
... --api-key-file -``, as ``docker login --password-stdin`` takes a secret) or the environment
(``PAYORCH_API_KEY``, which only its user and root can read in ``/proc``) keeps it off. payorch
never prompts for a key: a standard input that is a terminal is refused, not read, so that
nothing waits on a prompt that would echo the key or hang a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from ingest.private_files import read_small_file


def key_problem(key: str) -> str | None:
    """What makes ``key`` no API key (a phrase following where it came from), or ``None``."""
    if not key:
        return "is empty"
    if not (key.isascii() and key.isprintable()) or any(character.isspace() for character in key):
        return (
            "holds spaces, control or non-ASCII characters (a trailing newline?), which no API key "
            "has (the key is not shown)"
        )
    return None


#: A key file holds one key: anything larger is another file given by mistake (``/dev/zero``, the
#: config), not read further.
MAX_KEY_FILE_BYTES = 4096


class KeyFileError(Exception):
    """The key file cannot give a key; the message says why, after the file's name, in one line
    that never holds what the file holds."""


def read_key_file(path: Path) -> str:
    """The key held by the file at ``path``: its one line, without the line ending an editor or
    ``echo`` adds. A named pipe or ``<(pass show payorch/admin)`` is read as a file is; a pipe
    that nothing writes to is refused at once rather than waited on."""
    try:
        data, pipe = read_small_file(path, MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise KeyFileError("does not exist") from None
    except IsADirectoryError:
        raise KeyFileError("is a folder, not a file") from None
    except OSError as error:
        raise KeyFileError(f"cannot be read: {error.strerror or type(error).__name__}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
    if pipe and not data:
        raise KeyFileError("is a pipe that nothing was written to")
    return _one_key(data)


def read_key_stream(stream: BinaryIO) -> str:
    """The key piped into ``stream`` (the standard input of ``--api-key-file -``): its one line,
    as :func:`read_key_file` reads a file. A terminal is refused without reading, as is a stream
    that ends before any byte."""
    if stream.isatty():
        raise KeyFileError(
            "is a terminal: pipe the key in (pass show payorch/admin | payorch report ... "
            "--api-key-file -); payorch does not prompt for a key"
        )
    try:
        data = stream.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise KeyFileError(f"cannot be read: {error.strerror or type(error).__name__}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"holds more than {MAX_KEY_FILE_BYTES} bytes: not a key")
    if not data:
        raise KeyFileError("is empty: nothing was piped in")
    return _one_key(data)


def _one_key(data: bytes) -> str:
    """The key ``data`` holds: one line, without the line ending ``echo`` or an editor adds."""
    key = data.decode("utf-8", errors="replace").rstrip("\r\n")
    if "\n" in key:
        raise KeyFileError("holds more than one line: a key file holds the key alone (it is not shown)")
    problem = key_problem(key)
    if problem is not None:
        raise KeyFileError(problem)
    return key
