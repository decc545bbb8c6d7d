"""The import-linter contracts are live: a tree that breaks them fails ``lint-imports``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("engine", "ingest", "analytics", "dashboard", "payorch")


def lint(tree: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for package in (*PACKAGES, "ingest/parsing", "ingest/api"):
        (tree / package).mkdir()
        (tree / package / "__init__.py").write_text("", encoding="utf-8")
    for path, source in extra.items():
        (tree / path).write_text(source, encoding="utf-8")
    (tree / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_tree_that_keeps_the_layers_passes(tmp_path: Path) -> None:
    done = lint(
        tmp_path,
        {"ingest/api/app.py": "import engine\nimport fastapi\n", "payorch/cli.py": "import ingest\n"},
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("engine/store.py", "import duckdb\n", "engine is not allowed to import duckdb"),
        ("engine/frames.py", "import polars\n", "engine is not allowed to import polars"),
        ("engine/web.py", "from fastapi import FastAPI\n", "engine is not allowed to import fastapi"),
        ("engine/leak.py", "import ingest\n", "engine.leak -> ingest"),
        ("analytics/peek.py", "import ingest\n", "analytics.peek -> ingest"),
        ("ingest/parsing/web.py", "import fastapi\n", "ingest.parsing is not allowed to import fastapi"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    done = lint(tmp_path, {module: source})
    assert done.returncode == 1
    assert "BROKEN" in done.stdout or "Broken contracts" in done.stdout
    assert expected in done.stdout
