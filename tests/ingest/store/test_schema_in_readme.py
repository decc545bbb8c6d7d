"""The README's store section quotes the log lines and refusals of the database's schema version:
the numbers it gives are the code's latest migration's. It said "created at schema version 10"
while a new database was created at 11, the sentences written when migration 10 was the last."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.store.schema import CURRENT_VERSION

README = Path(__file__).parents[3] / "README.md"


def readme_text() -> str:
    """The README with each run of white space one space: its sentences wrap anywhere."""
    return " ".join(README.read_text(encoding="utf-8").split())


def test_the_readme_creates_and_migrates_to_the_latest_schema_version() -> None:
    text = readme_text()
    created = [int(version) for version in re.findall(r"created at schema version (\d+)", text)]
    migrated = re.findall(r"migrated to schema version (\d+) \(migrations? ([\d, ]+) applied now\)", text)

    assert created and migrated  # what the test reads is still there
    assert created == [CURRENT_VERSION] * len(created)
    for version, applied in migrated:
        numbers = [int(number) for number in applied.split(", ")]
        assert int(version) == numbers[-1] == CURRENT_VERSION
        assert numbers == list(range(numbers[0], CURRENT_VERSION + 1))


def test_the_readmes_refusals_of_a_newer_schema_name_the_latest_version() -> None:
    """Either this payorch refusing a newer database, or an earlier one refusing this one's."""
    refusals = re.findall(
        r"the database has schema version (\d+), newer than this payorch knows \((\d+)\)", readme_text()
    )

    assert refusals
    for found, known in ((int(found), int(known)) for found, known in refusals):
        this_refusing_newer = (found, known) == (CURRENT_VERSION + 1, CURRENT_VERSION)
        earlier_refusing_this = found == CURRENT_VERSION and known < CURRENT_VERSION
        assert this_refusing_newer or earlier_refusing_this, (found, known)
