"""Which service a data folder belongs to, so that a copy of the folder does not settle the payments
of the service it was copied from.

A data folder copied while ``payorch serve`` runs (a backup or volume snapshot taken live, ``cp -a``
to another host) holds that service's payments in flight as a crash would leave them. Started
elsewhere, the copy's crash recovery would settle them with the processors (void or refund a charge
the original then completes, or complete a payment the original completes too), while the original
goes on. Nothing in the copy's files tells it from the original's: the database says who it was.

Every start adds a row to ``owners`` (migration 10): a new instance id, the name the service goes
by (``--instance-name``, else the host name), the host, the data folder's resolved path, the pid
and the time. A start is *in place* when the newest row has its name and folder: a restart, a
container restarted in its pod. Any other start is *elsewhere*: another host, another folder, a
pod of a Deployment whose host name is new at every start (name it with ``--instance-name``).

The rule (:func:`claim`), at a start elsewhere:

- nothing to settle (no interrupted payment): it starts and the folder is its own from then on (a
  folder moved, or restored from a backup, after a clean stop); said in one WARNING line;
- interrupted payments: it refuses to start, in one line naming the service it last belonged to
  and the confirmation (``--take-over INSTANCE``) that that service is gone for good, which only
  an operator can know. The confirmation names the instance, not a mere yes: left in a unit file or
  a pod's environment, it takes over that one instance's folder once, never a later copy.

Why not less: the host name alone misses a copy to another folder of the same host, the folder
alone misses the same path on another host (containers). Why not more: a file's inode or the
filesystem's id are kept by a volume snapshot and the pid is new at every restart, so they cannot
tell a copy from the original; and no file in the folder can (a copy has them all). A database
written before this version has no row: its first start owns it.
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingest.errors import IngestError

#: The table of migration 10 (``ingest.store.schema``).
CREATE_TABLE = """CREATE TABLE owners (
    start_no BIGINT NOT NULL,
    instance_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    host VARCHAR NOT NULL,
    data_dir VARCHAR NOT NULL,
    pid BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    taken_over_from VARCHAR
)"""

#: The option (and its variable) that confirms a take-over, as the refusal names them.
TAKE_OVER_OPTION = "--take-over"
TAKE_OVER_ENV = "PAYORCH_TAKE_OVER"
INSTANCE_NAME_OPTION = "--instance-name"


class DataFolderMovedError(IngestError):
    """A start elsewhere found payments to settle in a folder another service last started on."""


@dataclass(frozen=True, slots=True)
class Owner:
    """One start of a service on a data folder."""

    instance_id: str
    #: What a start in place shares with the one before: ``--instance-name``, else the host name.
    name: str
    host: str
    data_dir: str
    pid: int
    started_at: datetime

    def same_place(self, other: Owner) -> bool:
        """Whether ``other`` started where this one did (the same service, restarted)."""
        return (self.name, self.data_dir) == (other.name, other.data_dir)

    def where(self) -> str:
        """Its name (and host, when they differ) and folder, for the operator."""
        host = self.name if self.name == self.host else f"{self.name} (host {self.host})"
        return f"{host} at {self.data_dir}"


def this_start(data_dir: Path, instance_name: str | None, host: str | None = None) -> Owner:
    """The owner a start on ``data_dir`` would be; ``host``: the host's name (tests name others)."""
    host = host or socket.gethostname()
    return Owner(
        instance_id=secrets.token_hex(8),
        name=instance_name or host,
        host=host,
        data_dir=str(data_dir.resolve()),
        pid=os.getpid(),
        started_at=datetime.now(UTC),
    )


class Claim(enum.Enum):
    """What a start may do with the folder (see the module text)."""

    OWN = "own"  # its own folder, or a database no start recorded yet
    MOVED = "moved"  # last started elsewhere, nothing to settle
    TAKEN_OVER = "taken_over"  # last started elsewhere, the operator confirmed it is gone


def claim(last: Owner | None, here: Owner, interrupted: int, take_over: str | None) -> Claim:
    """May ``here`` start, given the ``last`` start recorded and the ``interrupted`` payments it
    would settle? Raises :class:`DataFolderMovedError` when it must not."""
    if last is None or last.same_place(here):
        return Claim.OWN
    if take_over is not None and take_over.strip() == last.instance_id:
        return Claim.TAKEN_OVER
    if interrupted == 0:
        return Claim.MOVED
    raise DataFolderMovedError(refusal(last, here, interrupted, take_over))


def refusal(last: Owner, here: Owner, interrupted: int, take_over: str | None) -> str:
    """The one line a refused start says: what was found, the risk, and how to confirm."""
    payments, them = ("payment", "it") if interrupted == 1 else ("payments", "them")
    started = last.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    named = "" if take_over is None else f" ({TAKE_OVER_OPTION} {take_over!r} names another instance)"
    return (
        f"the data folder {here.data_dir} was last started by instance {last.instance_id} on "
        f"{last.where()} (pid {last.pid}, {started}), not here on {here.where()}, and holds "
        f"{interrupted} interrupted {payments}{named}: if it is a copy of the folder that service "
        f"still runs on (a backup or snapshot taken while it ran, cp -a), settling {them} here would "
        "void, refund or complete payments it is finishing. Once that service is stopped for good "
        f"(the folder moved, or restored after its host died), start with {TAKE_OVER_OPTION} "
        f"{last.instance_id} ({TAKE_OVER_ENV}={last.instance_id}); a host whose name changes at "
        "every start (a container made anew, a Kubernetes Deployment's pod) is named once with "
        f"{INSTANCE_NAME_OPTION}"
    )


def moved_line(last: Owner, here: Owner, result: Claim) -> str:
    """The WARNING line of a start elsewhere that was let in."""
    why = (
        f"taken over ({TAKE_OVER_OPTION} {last.instance_id})"
        if result is Claim.TAKEN_OVER
        else "nothing was left to settle"
    )
    return (
        f"data folder {here.data_dir}: last started by instance {last.instance_id} on {last.where()}; "
        f"it is this service's ({here.instance_id} on {here.where()}) from now on: {why}"
    )


def last_owner(connection: duckdb.DuckDBPyConnection) -> Owner | None:
    """The newest start recorded, if any."""
    rows = connection.execute(
        "SELECT instance_id, name, host, data_dir, pid, started_at FROM owners ORDER BY start_no DESC LIMIT 1"
    ).fetchall()
    if not rows:
        return None
    instance_id, name, host, data_dir, pid, started_at = rows[0]
    return Owner(str(instance_id), str(name), str(host), str(data_dir), int(pid), started_at)


def record_owner(connection: duckdb.DuckDBPyConnection, owner: Owner, taken_over_from: str | None) -> None:
    """Note ``owner`` as the newest start; ``taken_over_from``: the instance it took the folder from."""
    connection.execute(
        "INSERT INTO owners SELECT coalesce(max(start_no), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM owners",
        [
            owner.instance_id,
            owner.name,
            owner.host,
            owner.data_dir,
            owner.pid,
            owner.started_at,
            taken_over_from,
        ],
    )
