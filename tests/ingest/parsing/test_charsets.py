"""A body declared in a charset other than UTF-8: the API reads UTF-8 only (RFC 8259), and the
refusal names the charset declared. It said "not UTF-8: byte 0xff at position 0", which left a
client that sent ``charset=utf-16`` guessing, and UTF-16 text without a byte order mark, valid
UTF-8 full of NULs, was told its JSON was invalid."""

from __future__ import annotations

import pytest

from tests.ingest.parsing.support import parse

BODY = '{"amount": 1250, "currency": "EUR", "metadata": {"city": "K\u00f6ln"}}'


def refusal(body: bytes, content_type: str) -> tuple[str, str]:
    parsed = parse(body, content_type)
    assert parsed.context is None
    [issue] = [issue for issue in parsed.issues if issue.blocks]
    return issue.code, issue.message


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [
        ("utf-16", "utf-16"),
        ("utf-16-le", "UTF-16LE"),
        ("utf-32", "utf-32"),
        ("latin-1", "iso-8859-1"),
        ("latin-1", '"ISO-8859-1"'),
    ],
)
def test_a_body_in_another_charset_is_refused_naming_it(encoding: str, declared: str) -> None:
    code, message = refusal(BODY.encode(encoding), f"application/json; charset={declared}")

    assert code == "invalid_encoding"
    assert f'charset="{declared.strip(chr(34))}"' in message, message
    assert "send the body in UTF-8" in message


def test_a_body_not_utf8_without_a_charset_is_told_the_byte_alone() -> None:
    body = BODY.encode("latin-1")
    code, message = refusal(body, "application/json")

    assert code == "invalid_encoding"
    assert message == f"the body is not UTF-8 text: byte 0xf6 at position {body.index(0xF6)}"


@pytest.mark.parametrize("declared", ["utf-8", "UTF8", "us-ascii", "iso-8859-1", "utf-16"])
def test_a_utf8_body_declared_in_a_charset_it_also_reads_as_is_taken(declared: str) -> None:
    ascii_only = BODY.replace("\u00f6", "oe")

    parsed = parse(ascii_only.encode(), f"application/json; charset={declared}")

    assert parsed.context is not None, parsed.issues
    assert parsed.context.metadata["city"] == "Koeln"
