"""The committed bindings in ``proto/gen`` are exactly what ``tools.protogen`` generates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _protogen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.protogen", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_committed_bindings_are_up_to_date() -> None:
    result = _protogen("--check", "proto/gen")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "generated bindings are up to date"


def test_check_names_every_file_that_differs(tmp_path: Path) -> None:
    copy = tmp_path / "gen"
    shutil.copytree(ROOT / "proto/gen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "payments/plan/v1/plan_pb2.py").write_text("# edited by hand\n", encoding="utf-8")
    (copy / "payments/events/v1/events_pb2.pyi").unlink()
    (copy / "payments/old_pb2.py").write_text("", encoding="utf-8")
    result = _protogen("--check", str(copy))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert any("plan_pb2.py: differs" in line for line in lines)
    assert any("events_pb2.pyi: missing" in line for line in lines)
    assert any("old_pb2.py: stale" in line for line in lines)


def test_generation_writes_a_package_marker_in_every_directory(tmp_path: Path) -> None:
    result = _protogen("--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    directories = {path.parent for path in tmp_path.rglob("*_pb2.py")}
    assert directories
    for directory in directories:
        relative = directory.relative_to(tmp_path)
        for package in [relative, *relative.parents[:-1]]:
            assert (tmp_path / package / "__init__.py").is_file()
    assert not (tmp_path / "__init__.py").exists()
