"""Lint the schema module and check it for breaking changes against earlier commits.

``python -m tools.schema_check [--repo DIR] [--base REF ...]`` runs ``buf lint proto``, then
for every base (default ``HEAD``, ``HEAD~1`` when it exists, and every earlier commit of
``HEAD``'s history that changed ``proto/``) ``buf breaking`` on the protos and
:mod:`tools.schema_diff` on every ``*.schema.json`` under ``proto/``. A base without an earlier
version of a file is skipped, not an error. Exit status 1 on any finding.

Every version of ``proto/`` the branch has held is one clients may have been built from, so each is
a base: comparing with the last two commits only, a breaking change followed by any other commit
passed (a branch's later commits, a fast-forward merge). A merged branch's own commits are not the
branch's versions (:func:`history`).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
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


def history(repo: Path) -> list[str]:
    """The commits of ``HEAD``'s first-parent history (the line the branch itself went through)
    that changed a file under ``proto/``, newest first. A merged branch's own commits are left
    out: two branches that each took the next field number, one renumbered at the merge, would
    otherwise fail against the version of the branch that gave its number up, which only that
    branch ever held. The merge itself is on the line, compared as any commit of it."""
    result = _git(repo, "log", "--first-parent", "--format=%H", "HEAD", "--", PROTO)
    return result.stdout.split() if result.returncode == 0 else []


def tree_of(repo: Path, commit: str) -> str | None:
    """The id of ``proto/``'s tree at ``commit`` (equal ids: equal contents), or ``None``."""
    result = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}:{PROTO}")
    return result.stdout.strip() if result.returncode == 0 else None


def lint(repo: Path, found: Findings) -> None:
    result = _run([BUF, "lint", PROTO], repo)
    lines = _output(result)
    if result.returncode != 0 or lines:
        found.problems.extend(f"buf lint: {line}" for line in lines or [f"exit status {result.returncode}"])
    for path in current_schemas(repo):
        name = path.relative_to(repo).as_posix()
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except (ValueError, SchemaError) as exc:
            first = str(exc).splitlines()[0]
            found.problems.append(f"{name}: not a valid JSON Schema: {first}")
            continue
        found.problems.extend(
            f"{name}: $ref {reference!r} names nothing in the schema" for reference in dangling(schema)
        )


def dangling(schema: object) -> list[str]:
    """The local ``$ref`` pointers (``#/$defs/...``) of ``schema`` that name nothing in it: a
    validator given the schema fails on them (check_schema does not follow references)."""
    found: list[str] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#") and not _names(schema, reference):
                found.append(reference)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return sorted(set(found))


def _names(schema: object, reference: str) -> bool:
    target = schema
    for token in reference[1:].split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            return False
    return True


def proto_breaking(repo: Path, ref: str, found: Findings) -> None:
    if not any(name.endswith(".proto") for name in files_at(repo, ref)):
        found.notes.append(f"{PROTO}/ at {ref}: {SKIPPED}")
        return
    # ``proto/`` as it was, unpacked: buf's own ``.git#ref=`` input clones the repository for
    # each base and finds only commits near a branch tip.
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, PROTO], cwd=repo, capture_output=True, check=False
    )
    if archive.returncode != 0:
        found.problems.append(f"git archive {ref}: {archive.stderr.decode(errors='replace').strip()}")
        return
    with tempfile.TemporaryDirectory(prefix="schema-check-") as earlier:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(earlier, filter="data")
        result = _run([BUF, "breaking", PROTO, "--against", Path(earlier) / PROTO], repo)
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
    """Lint, then compare the working tree with every base that names a commit and, unless the
    bases are ``explicit``, with every other version of ``proto/`` in ``HEAD``'s history."""
    found = Findings()
    if not BUF.is_file():
        found.problems.append(f"buf not found at {BUF}; run `make install`")
        return found
    lint(repo, found)
    checked: set[str | None] = set()
    for ref in bases:
        commit = commit_of(repo, ref)
        if commit is None:
            if explicit:
                found.problems.append(f"--base {ref}: names no commit")
            else:
                found.notes.append(f"{ref}: no such commit, {SKIPPED}")
            continue
        checked.add(tree_of(repo, commit))
        proto_breaking(repo, ref, found)
        json_breaking(repo, ref, found)
    if not explicit:
        _check_history(repo, checked, found)
    return found


def _check_history(repo: Path, checked: set[str | None], found: Findings) -> None:
    """Compare with each version of ``proto/`` in ``HEAD``'s history not yet ``checked``; a
    finding already made against a newer base is not repeated."""
    reported = {_unlabelled(problem) for problem in found.problems}
    earlier = 0
    for commit in history(repo):
        tree = tree_of(repo, commit)
        if tree in checked:
            continue
        checked.add(tree)
        earlier += 1
        base = Findings()
        proto_breaking(repo, commit[:12], base)
        json_breaking(repo, commit[:12], base)
        for problem in base.problems:
            if _unlabelled(problem) not in reported:
                reported.add(_unlabelled(problem))
                found.problems.append(problem)
    found.notes.append(f"also compared with {earlier} earlier version(s) of {PROTO}/ in the history of HEAD")


def _unlabelled(problem: str) -> str:
    """A finding without the base it was made against (``... against HEAD~1: ...``)."""
    before, _, after = problem.partition(" against ")
    return f"{before}: {after.partition(': ')[2]}" if after else problem


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
        "--base",
        action="append",
        help="a git ref to compare against (repeatable; default HEAD, HEAD~1 and every earlier version of "
        "proto/ in HEAD's history)",
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
