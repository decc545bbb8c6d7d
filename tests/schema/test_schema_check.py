"""``python -m tools.schema_check`` on a throwaway git repository holding a copy of ``proto/``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAN = "proto/payments/plan/v1/plan.proto"
EVENTS = "proto/payments/events/v1/events.proto"
RESULT = "proto/payments/result/v1/composite_result.schema.json"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "--allow-empty", "-m", message)


def _check(repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.schema_check", "--repo", str(repo), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text(encoding="utf-8")
    assert old in text
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "--quiet")
    shutil.copytree(ROOT / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("gen"))
    _commit(tmp_path, "schema module")
    return tmp_path


def test_unchanged_schemas_pass(repo: Path) -> None:
    result = _check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAD~1: no such commit" in result.stdout
    assert "schema check passed" in result.stdout


def test_deleting_a_proto_field_fails_naming_file_and_field(repo: Path) -> None:
    _edit(repo, PLAN, "  optional int64 max_amount_cents = 5;\n", "")
    result = _check(repo)
    assert result.returncode == 1
    assert "plan.proto" in result.stdout
    assert '"max_amount_cents"' in result.stdout


def test_changing_a_proto_field_type_fails(repo: Path) -> None:
    _edit(repo, EVENTS, "  uint64 latency_ms = 3;", "  string latency_ms = 3;")
    result = _check(repo)
    assert result.returncode == 1
    assert "events.proto" in result.stdout
    assert "latency_ms" in result.stdout


def test_a_committed_breaking_change_fails_against_the_previous_commit(repo: Path) -> None:
    _edit(repo, PLAN, "  optional int64 max_amount_cents = 5;\n", "")
    _commit(repo, "drop the cap")
    result = _check(repo)
    assert result.returncode == 1
    assert "against HEAD~1" in result.stdout
    assert "max_amount_cents" in result.stdout


def test_removing_a_json_schema_property_fails(repo: Path) -> None:
    path = repo / RESULT
    schema = json.loads(path.read_text(encoding="utf-8"))
    del schema["properties"]["remaining_amount"]
    schema["required"].remove("remaining_amount")
    path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    result = _check(repo)
    assert result.returncode == 1
    assert f"{RESULT} against HEAD: remaining_amount: property removed" in result.stdout


def test_adding_an_optional_field_passes(repo: Path) -> None:
    _edit(
        repo,
        PLAN,
        "  optional int64 max_amount_cents = 5;\n",
        "  optional int64 max_amount_cents = 5;\n  // A note for operators.\n  optional string note = 6;\n",
    )
    path = repo / RESULT
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"]["note"] = {"type": ["string", "null"]}
    path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    result = _check(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_decline_code_is_an_addition_the_checks_accept(repo: Path) -> None:
    # The schemas as they were before StepFailed.decline_code and StepResult.decline_code...
    events = repo / EVENTS
    text = events.read_text(encoding="utf-8")
    field = "  optional string decline_code = 7;\n"
    start = text.index("  // Why the card was refused")
    events.write_text(text[:start] + text[text.index(field) + len(field) :], encoding="utf-8")
    path = repo / RESULT
    schema = json.loads(path.read_text(encoding="utf-8"))
    del schema["$defs"]["StepResult"]["properties"]["decline_code"]
    del schema["$defs"]["NullableDeclineCode"]
    path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    _commit(repo, "before decline codes")
    # ... and now: a new optional field with a new number, and a new optional property.
    for name in (EVENTS, RESULT):
        shutil.copyfile(ROOT / name, repo / name)

    result = _check(repo)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "schema check passed" in result.stdout


def test_an_enum_without_an_unspecified_zero_fails_lint(repo: Path) -> None:
    addition = (
        "\n// A colour.\nenum Colour {\n  // Red.\n  COLOUR_RED = 0;\n  // Blue.\n  COLOUR_BLUE = 1;\n}\n"
    )
    (repo / PLAN).write_text((repo / PLAN).read_text(encoding="utf-8") + addition, encoding="utf-8")
    result = _check(repo)
    assert result.returncode == 1
    assert "buf lint:" in result.stdout
    assert "COLOUR_RED" in result.stdout


def test_a_base_without_proto_is_skipped(tmp_path: Path) -> None:
    _git(tmp_path, "init", "--quiet")
    (tmp_path / "README").write_text("before the schema module\n", encoding="utf-8")
    _commit(tmp_path, "start")
    shutil.copytree(ROOT / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("gen"))
    _commit(tmp_path, "schema module")
    result = _check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "proto/ at HEAD~1: no earlier version to compare: skipped" in result.stdout


def test_an_explicit_base_that_names_no_commit_fails(repo: Path) -> None:
    result = _check(repo, "--base", "no-such-branch")
    assert result.returncode == 1
    assert "--base no-such-branch: names no commit" in result.stdout


def test_a_breaking_change_fails_after_later_commits_too(repo: Path) -> None:
    """Every version of proto/ in the history is a base: compared with HEAD and HEAD~1 only, a
    breaking commit followed by any other (a branch's next commit, a fast-forward merge) passed."""
    _edit(repo, PLAN, "  optional int64 max_amount_cents = 5;\n", "")
    _commit(repo, "drop the cap")
    (repo / "README").write_text("notes\n", encoding="utf-8")
    _commit(repo, "an unrelated change")
    (repo / "README").write_text("more notes\n", encoding="utf-8")
    _commit(repo, "another one")

    result = _check(repo)

    assert result.returncode == 1, result.stdout
    assert "max_amount_cents" in result.stdout
    assert "also compared with 1 earlier version(s) of proto/" in result.stdout


def test_a_json_schema_tightened_fails_after_later_commits_too(repo: Path) -> None:
    path = repo / RESULT
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"]["payment_id"]["maxLength"] = 40
    path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    _commit(repo, "shorter ids")
    for note in ("notes\n", "more notes\n"):
        (repo / "README").write_text(note, encoding="utf-8")
        _commit(repo, "an unrelated change")

    result = _check(repo)

    assert result.returncode == 1, result.stdout
    assert f"{RESULT} against " in result.stdout
    assert "payment_id: maxLength tightened to 40" in result.stdout


def test_an_explicit_base_deep_in_the_history_is_compared(repo: Path) -> None:
    """buf's own git input found only commits near a branch tip: an abbreviated id further back
    failed with ``could not clone``."""
    first = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    _edit(repo, PLAN, "  optional int64 max_amount_cents = 5;\n", "")
    for number in range(60):
        (repo / "README").write_text(f"change {number}\n", encoding="utf-8")
        _commit(repo, f"change {number}")

    result = _check(repo, "--base", first)

    assert result.returncode == 1, result.stdout
    assert "could not clone" not in result.stdout
    assert f"buf breaking against {first}: " in result.stdout
    assert "max_amount_cents" in result.stdout


def test_a_reference_to_a_removed_definition_fails(repo: Path) -> None:
    """check_schema does not follow ``$ref``: a schema naming a definition it lacks passed the check,
    and every validator given it then failed (``PointerToNowhere``)."""
    path = repo / RESULT
    schema = json.loads(path.read_text(encoding="utf-8"))
    del schema["$defs"]["PaymentMethod"]
    path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    _commit(repo, "no method list")

    result = _check(repo)

    assert result.returncode == 1, result.stdout
    assert f"{RESULT}: $ref '#/$defs/PaymentMethod' names nothing in the schema" in result.stdout


def test_a_field_number_two_branches_took_renumbered_at_the_merge_passes(repo: Path) -> None:
    """Two branches each took field 6; the merge kept one and renumbered the other to 7. The
    merged branch's own commit (field 6 under the other name) was never the main line's: it is
    no base. A field renumbered on the main line itself still fails (the next test)."""
    added = "  optional int64 max_amount_cents = 5;\n"
    _git(repo, "checkout", "--quiet", "-b", "side")
    _edit(repo, PLAN, added, added + "  // A side note.\n  optional string side_note = 6;\n")
    _commit(repo, "side: field 6")
    _git(repo, "checkout", "--quiet", "-")
    _edit(repo, PLAN, added, added + "  // A main note.\n  optional string main_note = 6;\n")
    _commit(repo, "main: field 6")
    merged = subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "merge", "--quiet", "--no-commit", "side"],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    assert merged.returncode == 1  # both took field 6: a conflict, resolved by hand below
    path = repo / PLAN
    text = path.read_text(encoding="utf-8")
    start, end = text.index("<<<<<<<"), text.index(">>>>>>>")
    resolved = (
        "  // A main note.\n  optional string main_note = 6;\n"
        "  // A side note.\n  optional string side_note = 7;\n"
    )
    path.write_text(text[:start] + resolved + text[text.index("\n", end) + 1 :], encoding="utf-8")
    _commit(repo, "merge side, its field renumbered 7")

    result = _check(repo)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_field_renumbered_on_the_main_line_fails(repo: Path) -> None:
    added = "  optional int64 max_amount_cents = 5;\n"
    _edit(repo, PLAN, added, added + "  // A note.\n  optional string note = 6;\n")
    _commit(repo, "field 6")
    _edit(repo, PLAN, "  optional string note = 6;\n", "  optional string note = 7;\n")
    _commit(repo, "renumbered")
    (repo / "README").write_text("notes\n", encoding="utf-8")
    _commit(repo, "an unrelated change")

    result = _check(repo)

    assert result.returncode == 1, result.stdout
    assert "buf breaking" in result.stdout and '"note"' in result.stdout
    assert "buf lint" not in result.stdout
