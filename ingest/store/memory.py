"""How much memory DuckDB may hold in a process of payorch, on every connection it opens.

DuckDB's buffer manager takes 80% of the host's memory unless told otherwise, per database it
opens, whatever the container's cgroup allows: a service sharing its host, or one in a container
of 1 GiB on a host of 64, grows until the kernel kills it. payorch sets ``memory_limit`` on the
writer's connection (which the admin reads share: they are its cursors) and on the read-only ones
of ``payorch report --data`` and ``payorch export``: ``store.memory_limit`` when the config gives
it, else :data:`DEFAULT_SHARE` of the memory the process may use (:func:`machine_memory`).

A quarter, because DuckDB's buffers are not all the process holds: the Arrow batches of a write,
the idempotency keys held whole, the Polars frames and rendered pages of an admin read, are
outside them. Measured on a store of 1.4M events (2 cores, 23.5 GiB, one thread), two runs each:
an admin read of the whole window took 2.5-2.9 s at 64 MiB, 1.8-2.5 s at 256 MiB, 0.7-1.1 s at
1 GiB and 1.1-1.2 s at a quarter (5.9 GiB) or at DuckDB's 80% (18.8 GiB); the writer's rate of
small transactions (32 payments in flight) did not follow the limit (9,000 to 18,600 events/s,
as noisy as the machine). Peak RSS 490 MiB at 64 MiB, 720 at 1 GiB and above. So a quarter of a
container of 4 GiB or more gives reads their full speed, and leaves three quarters to the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.config import StoreConfig
from engine.memory_size import MIN_BYTES, duckdb_setting

#: The default limit is this share of :func:`machine_memory`.
DEFAULT_SHARE = 0.25
#: Where a cgroup's memory limit is read: v2 (the process's own group, then the root one), v1.
_CGROUP_FILES = ("memory.max", "memory.limit_in_bytes")
_CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory"))


def machine_memory() -> int:
    """The bytes this process may use: the host's physical memory, or its cgroup's limit when that
    is lower (a container's)."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = [limit for limit in (_cgroup_limit(root) for root in _cgroup_folders()) if limit]
    return min([physical, *limits])


def _cgroup_folders() -> list[Path]:
    """The process's cgroup folders (v2: ``/proc/self/cgroup``'s ``0::/path``), then the roots."""
    folders: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" or "memory" in controllers.split(","):
            for root in _CGROUP_ROOTS:
                folders.append(root / path.lstrip("/"))
    return [*folders, *_CGROUP_ROOTS]


def _cgroup_limit(folder: Path) -> int | None:
    for name in _CGROUP_FILES:
        try:
            text = (folder / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" in v2; v1's "no limit" is a huge number, above the host's
            return int(text)
    return None


def memory_limit(store: StoreConfig, machine: int | None = None) -> str:
    """DuckDB's ``memory_limit`` for ``store`` (its value, else the default share of ``machine``,
    :func:`machine_memory` when not given)."""
    chosen = store.memory_limit_bytes()
    if chosen is None:
        chosen = max(MIN_BYTES, int((machine_memory() if machine is None else machine) * DEFAULT_SHARE))
    return duckdb_setting(chosen)


def check_fits(store: StoreConfig, machine: int) -> str | None:
    """What is wrong with ``store``'s limit on a machine of ``machine`` bytes (``None``: nothing)."""
    chosen = store.memory_limit_bytes()
    if chosen is None or chosen <= machine:
        return None
    return (
        f"is more than the {machine / 2**30:.1f} GiB of memory this machine gives the process "
        "(its cgroup's limit, or the host's memory)"
    )
