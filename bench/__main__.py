"""``python -m bench``: run every ``bench_*`` module and print one line per comparison."""

from __future__ import annotations

import importlib
import pkgutil

import bench


def main() -> None:
    for module_info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda info: info.name):
        if not module_info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"bench.{module_info.name}")
        for comparison in module.run():
            print(comparison.line(), flush=True)


main()
