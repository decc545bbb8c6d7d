"""Lint the schema module and check it for breaking changes against earlier commits.

``python -m tools.schema_check [--repo DIR] [--base REF ...]`` runs ``buf lint proto``, then
for every base (default ``HEAD`` and, when it exists, ``HEAD~1``) ``buf breaking`` on the
protos and :mod:`tools.schema_diff` on every ``*.schema.json`` under ``proto/``. A base without
an earlier version of a file is skipped, not an error. Exit status 1 on any finding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tools.schema_diff import breaking_changes

BUF = Path(sys.executable).parent / "buf"
PROTO = "proto"
SCHEMA_SUFFIX = ".schema.json"
DEFAULT_BASES = ("HEAD", "HEAD~1")
SKIPPED = "no earlier version to compare: skipped"


@dataclass
class Findings:
    """What a check found: problems fail the check, notes only inform."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _run(command: Sequence[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(["git", *args], repo)


def _output(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def commit_of(repo: Path, ref: str) -> str | None:
    """The commit ``ref`` names in ``repo``, or ``None`` when it names none."""
    result = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return result.stdout.strip() if result.returncode == 0 else None


def files_at(repo: Path, ref: str) -> set[str]:
    """Paths of the files under ``proto/`` at ``ref``."""
    result = _git(repo, "ls-tree", "-r", "--name-only", ref, "--", PROTO)
    return set(result.stdout.splitlines()) if result.returncode == 0 else set()


def lint(repo: Path, found: Findings) -> None:
    result = _run([BUF, "lint", PROTO], repo)
    lines = _output(result)
    if result.returncode != 0 or lines:
        found.problems.extend(f"buf lint: {line}" for line in lines or [f"exit status {result.returncode}"])
    for path in current_schemas(repo):
        try:
            Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, SchemaError) as exc:
            first = str(exc).splitlines()[0]
            found.problems.append(f"{path.relative_to(repo).as_posix()}: not a valid JSON Schema: {first}")


def proto_breaking(repo: Path, ref: str, found: Findings) -> None:
    if not any(name.endswith(".proto") for name in files_at(repo, ref)):
        found.notes.append(f"{PROTO}/ at {ref}: {SKIPPED}")
        return
    result = _run([BUF, "breaking", PROTO, "--against", f".git#ref={ref},subdir={PROTO}"], repo)
    lines = _output(result)
    if result.returncode != 0 or lines:
        shown = lines or [f"exit status {result.returncode}"]
        found.problems.extend(f"buf breaking against {ref}: {line}" for line in shown)


def current_schemas(repo: Path) -> list[Path]:
    return sorted((repo / PROTO).rglob(f"*{SCHEMA_SUFFIX}"))


def json_breaking(repo: Path, ref: str, found: Findings) -> None:
    earlier = {name for name in files_at(repo, ref) if name.endswith(SCHEMA_SUFFIX)}
    current = {path.relative_to(repo).as_posix(): path for path in current_schemas(repo)}
    for name in sorted(earlier - current.keys()):
        found.problems.append(f"{name} against {ref}: schema deleted")
    for name, path in sorted(current.items()):
        if name not in earlier:
            found.notes.append(f"{name} at {ref}: {SKIPPED}")
            continue
        try:
            old = json.loads(_git(repo, "show", f"{ref}:{name}").stdout)
            new = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            found.problems.append(f"{name} against {ref}: not valid JSON: {exc}")
            continue
        found.problems.extend(f"{name} against {ref}: {change}" for change in breaking_changes(old, new))


def check(repo: Path, bases: Sequence[str], explicit: bool) -> Findings:
    """Lint, then compare the working tree with every base that names a commit."""
    found = Findings()
    if not BUF.is_file():
        found.problems.append(f"buf not found at {BUF}; run `make install`")
        return found
    lint(repo, found)
    for ref in bases:
        if commit_of(repo, ref) is None:
            if explicit:
                found.problems.append(f"--base {ref}: names no commit")
            else:
                found.notes.append(f"{ref}: no such commit, {SKIPPED}")
            continue
        proto_breaking(repo, ref, found)
        json_breaking(repo, ref, found)
    return found


def toplevel() -> Path:
    result = _run(["git", "rev-parse", "--show-toplevel"], Path.cwd())
    if result.returncode != 0:
        raise SystemExit("schema_check: not inside a git repository; pass --repo")
    return Path(result.stdout.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.schema_check", description="Lint proto/ and check it for breaking changes."
    )
    parser.add_argument("--repo", type=Path, help="the git repository (default: the one holding the cwd)")
    parser.add_argument(
        "--base", action="append", help="a git ref to compare against (repeatable; default HEAD, HEAD~1)"
    )
    args = parser.parse_args(argv)
    repo: Path = (args.repo or toplevel()).resolve()
    bases: list[str] = args.base or list(DEFAULT_BASES)
    found = check(repo, bases, explicit=bool(args.base))
    for note in found.notes:
        print(note)
    for problem in found.problems:
        print(problem)
    if found.problems:
        print(f"schema check failed: {len(found.problems)} problem(s)")
        return 1
    print("schema check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
