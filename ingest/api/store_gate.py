"""What the complaint routes and the reads answer when the store cannot take or show records now.

A complaint is a write of the one writer, as a payment is (``ingest.store.writer``), so it is
admitted as a payment is, before anything of it is stored or counted against its merchant's
limits: 503 ``service_unavailable`` with ``Retry-After`` while the writer is behind (a complaint
let in then waited behind the whole backlog for its commit, and added to it past the limit that
keeps the payments' 503 meaningful) and once the disk stopped the writer (its commit failed, a
500). While the writer is behind but short of that limit, a complaint of a merchant holding more
than its share of the work admitted is refused so already, as its payments are
(``ingest.store.shares``): one merchant's flood of complaints takes the writer from no other
merchant's payments. A complaint counts in its merchant's share while it is stored, and from its
admission on as the write it will queue (``ingest.store.admission``): complaints filed together
are let in only as far as their rows fit under the limit (200 filed at once to a held disk with
``admit_limit: 10`` were all let in, and queued 200 rows). A complaint
whose own commit fails (the disk refuses it, or the batch holding it fails) is
503 too, not 500: the batch was rolled back, nothing of it is kept. Refused, a complaint is not
stored; filed again with the same ``complaint_id`` it is stored once (also in the rare case of a
commit the disk refused after all of it was written, which the next start replays: the retry is
then its 200).

While the writer is only behind, a complaint filed before under that ``complaint_id`` is answered
as before (200, or 409 for other content): it writes nothing, as a payment's repeat replays while
the writer is behind, and a client retrying a 201 it lost is told that its complaint is kept.

The reads (a payment, complaints, violations, the analytics tables, the report) are 503 too once
the disk stopped the writer (``Retry-After: 5``, as for a payment): the batch the disk refused is
lost, and with it what the process had answered or was about to answer of it (a payment's result),
until the next start's crash recovery settles it. Read then, the database showed itself without
it: a payment that charged was a 404 "no payment" to the merchant told to look it up, and a report
or an analytics read silently lacked the last moments. The service is stopping meanwhile (exit 1).
A writer closed at the end of the shutdown is 503 as well: its reading connection is closed, and
a read was a 500 (``Connection already closed``).
"""

from __future__ import annotations

from engine.complaints import Complaint
from ingest.api.payments import STOPPED_RETRY_AFTER_S
from ingest.api.problems import ApiProblem
from ingest.records import Records
from ingest.store.admission import Admission
from ingest.store.shares import WriterShares
from ingest.store.writer import StoreSaturatedError, StoreShareError, StoreStoppedError, Writer

#: ``Retry-After`` while the writer is behind: its backlog is a commit or two, well under a second.
BEHIND_RETRY_AFTER_S = "1"
#: The writes a complaint is counted as from its admission: its row.
COMPLAINT_WRITES = 1


async def admit_complaint(
    records: Records, complaint: Complaint, shares: WriterShares
) -> Admission | Complaint:
    """The admission of ``complaint`` when it may be stored now (end it once it is stored or
    refused); the complaint its merchant filed before under its id when the writer is behind (to
    be answered as before); else 503."""
    try:
        return records.admit(
            over_share=shares.over_share(complaint.merchant_id, entered=False), writes=COMPLAINT_WRITES
        )
    except StoreStoppedError:
        raise _stopped() from None
    except StoreSaturatedError as error:
        if not records.healthy():  # closed at the end of the shutdown: nor can anything be read
            raise ApiProblem(
                "service_unavailable",
                "The service is stopping; this complaint was not stored. File it again with the "
                "same complaint_id once the service is back.",
                headers={"Retry-After": STOPPED_RETRY_AFTER_S},
            ) from None
        filed = await records.complaints_named(complaint.complaint_id, complaint.merchant_id)
        if filed:
            return filed[0]
        if isinstance(error, StoreShareError):
            raise ApiProblem(
                "service_unavailable",
                "The event writer is behind, and this merchant holds more than its share of the work "
                "waiting for it (the other merchants' are let in first); this complaint was not stored. "
                "File it again after Retry-After seconds, with the same complaint_id.",
                headers={"Retry-After": BEHIND_RETRY_AFTER_S},
            ) from None
        raise ApiProblem(
            "service_unavailable",
            "The event writer is behind; this complaint was not stored. File it again after "
            "Retry-After seconds, with the same complaint_id.",
            headers={"Retry-After": BEHIND_RETRY_AFTER_S},
        ) from None


async def record_complaint(records: Records, shares: WriterShares, complaint: Complaint) -> Complaint | None:
    """Store ``complaint`` (:meth:`Records.record_complaint`), counted meanwhile in its merchant's
    share of the writer's work."""
    shares.enter(complaint.merchant_id)
    try:
        return await records.record_complaint(complaint)
    finally:
        shares.leave(complaint.merchant_id)


def unstored_complaint(records: Records) -> ApiProblem:
    """The 503 of a complaint whose commit failed (:class:`~ingest.store.writer.StoreError`)."""
    try:
        records.admit()
    except StoreStoppedError:
        return _stopped()
    except StoreSaturatedError:
        pass  # behind: the failure was the batch's own, and the writer goes on
    return ApiProblem(
        "service_unavailable",
        "This complaint could not be recorded, and was not stored. File it again after Retry-After "
        "seconds, with the same complaint_id.",
        headers={"Retry-After": BEHIND_RETRY_AFTER_S},
    )


def _stopped() -> ApiProblem:
    return ApiProblem(
        "service_unavailable",
        "The service's disk refused to record, and the service is stopping; this complaint was "
        "not stored. File it again with the same complaint_id once the service is back.",
        headers={"Retry-After": STOPPED_RETRY_AFTER_S},
    )


def check_readable(writer: Writer | None) -> None:
    """503 unless ``writer``'s database shows every record of the service (see the module text);
    a process without the store (``writer`` is ``None``) reads its memory, always whole."""
    if writer is None or writer.alive:
        return
    if writer.failure is not None:
        raise ApiProblem(
            "service_unavailable",
            "The service's disk refused to record, and the service is stopping; what it recorded "
            "last is settled by its next start, and cannot be read until then. Retry once it is "
            "back (a payment it could not record is never charged twice).",
            headers={"Retry-After": STOPPED_RETRY_AFTER_S},
        )
    raise ApiProblem(
        "service_unavailable",
        "The service is stopping; its records cannot be read now. Retry once it is back.",
        headers={"Retry-After": STOPPED_RETRY_AFTER_S},
    )
