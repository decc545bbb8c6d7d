"""Generate the Python bindings of the schema module and check that committed ones are current.

``python -m tools.protogen --out proto/gen`` compiles every ``.proto`` under ``proto/`` with
``grpc_tools.protoc`` into ``*_pb2.py`` and ``*_pb2.pyi`` files and puts an empty ``__init__.py``
in every generated package directory, so ``proto/gen`` is an ordinary package root.

``python -m tools.protogen --check proto/gen`` generates into a temporary directory instead and
exits 1 with one line per file that differs, is missing or is stale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")
PACKAGE_MARKER = "__init__.py"
DESCRIPTION = "Generate the Python bindings of proto/ or check that they are up to date."


def proto_files(root: Path, exclude: Path) -> list[Path]:
    """Every ``.proto`` under ``root`` except those under ``exclude`` (the output directory)."""
    excluded = exclude.resolve()
    return sorted(
        path
        for path in root.resolve().rglob("*.proto")
        if excluded != path.parent and excluded not in path.parents
    )


def compile_protos(root: Path, out: Path) -> None:
    """Run protoc for every ``.proto`` under ``root`` and mark each output directory a package."""
    files = proto_files(root, exclude=out)
    if not files:
        raise SystemExit(f"protogen: no .proto files under {root}")
    out.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("grpc_tools") / "_proto") as well_known:
        arguments = [
            "grpc_tools.protoc",
            f"--proto_path={root.resolve()}",
            f"--proto_path={well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            *(str(path) for path in files),
        ]
        status: int = protoc.main(arguments)
    if status != 0:
        raise SystemExit(f"protogen: protoc failed with exit code {status}")
    _mark_packages(out)


def _mark_packages(out: Path) -> None:
    for generated in list(out.rglob("*_pb2.py")):
        directory = generated.parent
        while directory != out:
            (directory / PACKAGE_MARKER).touch()
            directory = directory.parent


def generated_files(out: Path) -> dict[str, bytes]:
    """The generated files under ``out`` by their ``/``-separated relative path."""
    files: dict[str, bytes] = {}
    for path in sorted(out.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.name == PACKAGE_MARKER or path.name.endswith(GENERATED_SUFFIXES):
            files[path.relative_to(out).as_posix()] = path.read_bytes()
    return files


def differences(expected: dict[str, bytes], actual: dict[str, bytes], out: Path) -> list[str]:
    """One line per file of ``out`` that is not exactly what protoc generates."""
    lines = []
    for name in sorted(expected.keys() | actual.keys()):
        shown = out / name
        if name not in actual:
            lines.append(f"{shown}: missing; run `make proto`")
        elif name not in expected:
            lines.append(f"{shown}: stale, no .proto generates it; run `make proto`")
        elif expected[name] != actual[name]:
            lines.append(f"{shown}: differs from the generated bindings; run `make proto`")
    return lines


def write(root: Path, out: Path) -> int:
    """Generate into ``out``: changed files are rewritten, stale generated files removed."""
    with tempfile.TemporaryDirectory(prefix="protogen-") as scratch:
        fresh = Path(scratch)
        compile_protos(root, fresh)
        expected = generated_files(fresh)
    current = generated_files(out) if out.exists() else {}
    for name in current.keys() - expected.keys():
        (out / name).unlink()
    for name, content in expected.items():
        if current.get(name) != content:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    print(f"generated {len(expected)} files in {out}")
    return 0


def check(root: Path, out: Path) -> int:
    """Exit status 0 when ``out`` holds exactly what protoc generates now, else 1."""
    with tempfile.TemporaryDirectory(prefix="protogen-") as scratch:
        fresh = Path(scratch)
        compile_protos(root, fresh)
        expected = generated_files(fresh)
    actual = generated_files(out) if out.is_dir() else {}
    lines = differences(expected, actual, out)
    if lines:
        print("\n".join(lines))
        return 1
    print("generated bindings are up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.protogen", description=DESCRIPTION)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="generate the bindings into this directory")
    target.add_argument("--check", type=Path, help="check that this directory holds current bindings")
    parser.add_argument("--proto", type=Path, default=PROTO_ROOT, help="the schema module (default: proto/)")
    args = parser.parse_args(argv)
    if args.check is not None:
        return check(args.proto, args.check)
    return write(args.proto, args.out)


if __name__ == "__main__":
    sys.exit(main())
