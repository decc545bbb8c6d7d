"""The admin key a command sends to a running service (``payorch report --api``), checked before
anything is sent, and never shown: not in an error, not in a log line.

A key travels in an HTTP header, which cannot hold a line break, and a payorch key is plain ASCII
without spaces (``engine.types.check_identifier``). A key that is not (a trailing newline of
``$(cat key)`` pasted whole, a non-breaking space copied from a chat) was sent as it was: httpx
refused it with an error that quoted the header, key and all, or failed unexplained on a
non-ASCII one. It is refused here instead, by where it came from.
"""

from __future__ import annotations


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
