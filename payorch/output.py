"""Where a command's text goes: stdout, or the path ``--out`` names, written as the path's kind asks.

- A regular file, or a path that does not exist yet (its folder is made): replaced atomically. The
  text goes to a hidden file beside it, reaches the disk, and is renamed over it, so a reader sees
  the old text or the new one, never half; a file that existed keeps its permissions.
- A symbolic link: followed, and its target replaced as above, beside the target; the link stays.
- Anything else (a FIFO, a terminal, a device such as ``/dev/stdout``) cannot be replaced without
  breaking whoever reads it: the text is written straight into it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from pathlib import Path

#: Room for the hidden name's dot, token and suffix within the usual 255-byte name limit.
_NAME_KEPT = 200


class OutputError(Exception):
    """The text could not be written; the message is one line for the operator."""


def write_text(text: str, out: Path | None) -> None:
    """``text`` to ``out`` (see the module docstring), or to stdout without.

    Stdout's reader gone (``payorch report | head -1``) is the :class:`BrokenPipeError`, left to
    the command line to end quietly as a Unix filter does; another failure (a full disk behind
    ``> file``) is an :class:`OutputError`. Either way what stdout still held is dropped
    (:func:`discard_stdout`)."""
    if out is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            discard_stdout()
            raise
        except OSError as error:
            discard_stdout()
            raise OutputError(f"cannot write to stdout: {error.strerror or type(error).__name__}") from None
        return
    try:
        _write(text, out)
    except OSError as error:
        raise OutputError(f"cannot write {out}: {error.strerror or type(error).__name__}") from None


def _write(text: str, out: Path) -> None:
    try:
        status: os.stat_result | None = out.stat()  # through any symbolic links
    except FileNotFoundError:
        status = None
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(0, "it is a folder")
    if status is not None and not stat.S_ISREG(status.st_mode):
        _write_into(text, out)
        return
    target = Path(os.path.realpath(out))
    if status is not None and not os.path.samestat(status, target.stat()):
        # A link that names no path of its own (``/proc/self/fd/1`` to a deleted file).
        _write_into(text, out)
        return
    _replace(text, target, status)


def _write_into(text: str, out: Path) -> None:
    with out.open("w", encoding="utf-8") as stream:
        stream.write(text)


def _replace(text: str, target: Path, status: os.stat_result | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name[:_NAME_KEPT]}.{secrets.token_hex(4)}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            if status is not None:
                os.fchmod(stream.fileno(), stat.S_IMODE(status.st_mode))
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def discard_stdout() -> None:
    """Point stdout at ``/dev/null``: the text it still buffers, which could not be written, is
    dropped there when Python flushes it on the way out, instead of failing again with "Exception
    ignored ... BrokenPipeError" on stderr. A stdout that is no file (a test's) is left alone."""
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)
