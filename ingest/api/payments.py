"""Taking one payment request: parse, deduplicate, orchestrate, record, answer.

The order matters for money:

1. The body is parsed into a context or issues. A refused request (422, or 403 for another
   merchant's id) is recorded (``PaymentReceived`` with ``accepted=False`` and an
   ``api/validation`` violation) and charges nothing. A query parameter is such a refusal too:
   the fields are read from the body only, as Stripe reads a POST's.
2. An idempotency key (header, else body) is claimed for the merchant before anything is charged.
   A repeat replays the stored answer, one in flight is 409, one with another body is 422.
3. A merchant with ``max_in_flight`` payments running is refused 429 ``rate_limited`` (nothing
   charged, the key released), so that one merchant's flood cannot take the process from the
   others; then the writer's admission: 503 while it is behind, for a merchant holding more
   than its share of the work admitted first (``ingest.store.shares``), for every merchant once
   it is far behind. Let in, the payment counts as the writes it will queue until it queues
   them or ends (``ingest.store.admission``), so a burst arriving together is let in only as far
   as its writes fit.
4. The payment runs in its own task, shielded from the HTTP request: a client that disconnects
   cannot cancel a payment half way (it would leave a charge without its terminal event). The
   task records the result and completes the key itself, so the answer is stored even when
   nobody is left to receive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

from engine.config import MerchantConfig
from engine.context import CoreRequestContext
from engine.events import PaymentReceived
from engine.guard import STOPWATCH, Stopwatch
from engine.monitor import ContractMonitor
from engine.orchestrator import CompositePaymentService
from engine.policy import PaymentPolicyEnforcer, PolicyDecision
from engine.ports import Clock
from engine.types import MerchantId, PaymentId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from ingest.api.encoding import dumps
from ingest.api.idempotency import (
    Claimed,
    IdempotencyStore,
    InFlight,
    KeyKeeper,
    Mismatch,
    Replay,
    StoredResponse,
    body_fingerprint,
    earlier_fingerprint,
)
from ingest.api.metrics import ApiMetrics
from ingest.api.problems import ApiProblem, FieldError, problem_document
from ingest.api.timing import server_timing
from ingest.codec.result_json import composite_result_to_json, refusal_to_json
from ingest.parsing import ParsedRequest, parse_payment_request
from ingest.parsing.issues import error, field_name
from ingest.parsing.masking import mask_card_numbers
from ingest.records import Records
from ingest.store.admission import Admission
from ingest.store.records import ChargeNotSentError
from ingest.store.shares import WriterShares
from ingest.store.writer import StoreError, StoreSaturatedError, StoreShareError, StoreStoppedError

VALIDATION = "api/validation"
#: ``Retry-After`` once the disk stopped the store: the service exits, and a supervisor restarts
#: it (its start settles the payments cut short) in a few seconds.
STOPPED_RETRY_AFTER_S = "5"
#: ``Retry-After`` of a merchant over its payments in flight: its payments end within seconds.
RATE_LIMITED_RETRY_AFTER_S = "1"
KEY_REUSED = "idempotency/key-reused"
#: Where a request gave its idempotency key, as a 409 or a 422 about the key names it.
HEADER_KEY, BODY_KEY = "the Idempotency-Key header", "the body's idempotency_key"
LATENCY_SLO = "payment/latency-slo"
#: ``payorch_payments_total``'s status for a payment answered 500: it ran, but its outcome could not
#: be recorded (nor, for an answer the disk refused, known to be the one the store keeps). Counted
#: under its result's status, it was a success the merchant was never told of, or not counted at all;
#: the start that settles it counts it with its status, as every payment crash recovery finishes.
UNRECORDED = "error"
#: The writes a payment is counted as, from its admission until it queues them: what a one-step
#: payment under an Idempotency-Key queues over its life (its key held, PaymentReceived,
#: PlanBuilt, StepAttempted, StepSucceeded, its ending with its result, its key answered, the
#: commit it waits for); 6 without a key, 10 for a split in two.
PAYMENT_WRITES = 8
#: Warnings for optional fields left out (the merchant id, the method, the currency): the contract
#: lets merchants omit them, so they are counted in metrics but are not ``api/validation``
#: violations. Every other warning is a correction, and every error a refusal: both are.
OMISSIONS = frozenset({"missing", "defaulted"})

logger = logging.getLogger("payorch.api")


class _RandomHex:
    """Hex digits from ``os.urandom``, drawn 4 KiB at a time: one system call per 341 ids rather
    than one each (system calls are slow on virtual machines: 5% of a request's time here). Used
    from the event loop's thread."""

    __slots__ = ("_at", "_digits")

    def __init__(self) -> None:
        self._digits = ""
        self._at = 0

    def take(self, count: int) -> str:
        at = self._at
        if at + count > len(self._digits):
            self._digits, at = secrets.token_hex(4096), 0
        self._at = at + count
        return self._digits[at : at + count]


_RANDOM_HEX = _RandomHex()


#: Thirteen decimal digits in a row. Hex digits hold no separator, so a card number in them is
#: thirteen or more digits in a row: digits without such a run are no card number, and the masking's
#: own search (2.3 µs on 24 hex digits, against 0.4 for this one, twice a payment) is not needed.
_THIRTEEN_DIGITS = re.compile(r"[0-9]{13}")


def new_id(prefix: str) -> str:
    """A random, unguessable id: ``pay_`` + 24 hex digits (96 bits), never one that holds what
    looks like a card number (about 1 in 800 would: 13 or more digits in a row passing Luhn),
    which every place that masks card numbers would then mask, and refuse where one cannot be."""
    while True:
        digits = _RANDOM_HEX.take(24)
        # Any thirteen in a row of the 24 cover positions 11 and 12 (the last run starts at 11):
        # when either is a letter (5 ids in 8), there is no such run, and no search (3,700
        # instructions).
        if (
            digits[11] > "9"
            or digits[12] > "9"
            or _THIRTEEN_DIGITS.search(digits) is None
            or mask_card_numbers(digits) == digits
        ):
            return f"{prefix}_{digits}"


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    response: StoredResponse
    replayed: bool = False
    server_timing: str | None = None
    retry_after: str | None = None  # the ``Retry-After`` header of a 503


def _fingerprints(body: bytes, content_type: str | None) -> tuple[str, str | None]:
    """What a key's repeat is compared by (:meth:`PaymentDesk._claim`): made only for a request
    that has a key, in its header or its body. A request without one is never compared with
    anything, and its fingerprint (a JSON document decoded, sorted and hashed) cost 1.2-1.75 µs."""
    return body_fingerprint(body, content_type), earlier_fingerprint(body, content_type)


def _refused_by_policy(parsed: ParsedRequest, decision: PolicyDecision) -> ParsedRequest:
    issue = ValidationIssue(
        field=decision.field or "request",
        code=decision.code or "policy_rejected",
        message=decision.reason or "a merchant policy refused the payment",
        severity=IssueSeverity.ERROR,
    )
    return replace(parsed, context=None, issues=(*parsed.issues, issue))


def _refused_for_query(parsed: ParsedRequest, query: bytes) -> ParsedRequest:
    """``parsed`` refused for the parameters of ``query``, each an ``unknown_parameter`` issue.

    ``POST /v1/payments?amount=999999`` charged the body's amount and said nothing: a client that
    put a field in the query (or the whole request, as some HTTP libraries do with ``params=``)
    had it silently ignored. Stripe reads a POST's parameters from its body only, and payorch
    refuses a query parameter a GET does not take (422 ``unknown_parameter``); so a POST's query
    is refused, recorded as any refusal, nothing charged. A query with no parameter in it (``?``,
    ``?&``) is nothing to ignore."""
    if not query:
        return parsed
    names = dict.fromkeys(name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    if not names:
        return parsed
    message = (
        "is a query parameter, and a payment's fields are read from the body only (JSON or form "
        "fields): send it in the body"
    )
    raw = query.decode("latin-1")
    found = tuple(
        error(field_name(name) if name else "query", "unknown_parameter", message, raw)
        for name in list(names)[:20]
    )
    return replace(parsed, context=None, issues=(*parsed.issues, *found))


def _hand_over(answer: asyncio.Future[PaymentAnswer], done: asyncio.Task[PaymentAnswer]) -> None:
    """Give the request waiting on ``answer`` what its payment's task ``done`` ended with.

    The request waits on ``answer``, not on the task: a request cancelled (its server stopping)
    cancels ``answer`` only, and the payment goes on. That is what ``asyncio.shield`` does, but
    shield's outer future has a callback of its own (a second turn of the event loop) and builds
    two closures a call: 30,000 instructions a payment, 2.6 % of the benchmark's. Called by the
    task's one done callback, after the desk has let the payment go."""
    if answer.cancelled():  # nobody waits for it any more
        if not done.cancelled():
            done.exception()  # taken, so that asyncio does not log it as never retrieved
        return
    if done.cancelled():
        answer.cancel()
        return
    error = done.exception()
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(done.result())


@dataclass(frozen=True, slots=True)
class CutShort:
    """A payment whose answer the stopping server did not wait for."""

    payment_id: str
    keyed: bool  # whether it ran under an idempotency key (a retry with it gets its outcome)


#: Set when the server stopped before a payment's answer was ready.
CUT_SHORT: ContextVar[CutShort | None] = ContextVar("payorch_cut_short", default=None)


class PaymentDesk:
    """Takes payment requests for every merchant of the process."""

    __slots__ = (
        "_clock",
        "_idempotency",
        "_keeper",
        "_metrics",
        "_monitor",
        "_policy",
        "_records",
        "_root_path",
        "_running",
        "_service",
        "_shares",
        "_tasks",
    )

    def __init__(
        self,
        service: CompositePaymentService,
        records: Records,
        idempotency: IdempotencyStore,
        metrics: ApiMetrics,
        clock: Clock,
        keeper: KeyKeeper,
        policy: PaymentPolicyEnforcer,
        *,
        root_path: str,
    ) -> None:
        self._service = service
        self._root_path = root_path  # a proxy's prefix: the problem documents' type links name it
        self._policy = policy
        self._keeper = keeper
        self._records = records
        self._idempotency = idempotency
        self._metrics = metrics
        self._clock = clock
        self._monitor = ContractMonitor(records, clock)
        self._tasks: set[asyncio.Task[PaymentAnswer]] = set()
        #: Each merchant's payments taken and not yet ended (see ``MerchantConfig.max_in_flight``).
        self._running: dict[MerchantId, int] = {}
        self._shares = WriterShares()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def running(self, merchant_id: MerchantId) -> int:
        """The merchant's payments taken and not yet ended, whether or not a client still waits."""
        return self._running.get(merchant_id, 0)

    @property
    def shares(self) -> WriterShares:
        """Each merchant's work admitted to the writer (its payments here, its complaints too)."""
        return self._shares

    @property
    def keeper(self) -> KeyKeeper:
        """How this desk keeps idempotency keys (crash recovery names them the same way)."""
        return self._keeper

    async def take(
        self,
        merchant: MerchantConfig,
        body: bytes,
        content_type: str | None,
        idempotency_key: str | None,
        request_id: RequestId,
        *,
        content_encoding: str | None = None,
        query: bytes = b"",
    ) -> PaymentAnswer:
        """The answer to one ``POST /v1/payments``; raises :class:`ApiProblem` for a refusal.

        ``content_encoding`` is the ``Content-Encoding`` header: the parser refuses any coding
        but ``identity``, as it refuses a body it cannot read (422). ``query`` is the request's
        query string: any parameter in it refuses the request (422 ``unknown_parameter``)."""
        started = time.perf_counter()  # the answer's latency, as the merchant sees it, runs from here
        payment_id = PaymentId(new_id("pay"))
        claimed: str | None = None  # the key this request holds, once it holds one
        note: ValidationIssue | None = None
        if idempotency_key is not None:
            # A header key is looked up first: a repeat replays its stored answer whatever this
            # process would make of the body now (the config may have changed since) and however
            # busy the writer is. Only a request that is new under its key goes on.
            kept, note = self._keeper.kept(idempotency_key)
            replay = await self._claim(
                merchant, kept, _fingerprints(body, content_type), request_id, HEADER_KEY
            )
            if replay is not None:
                return replay
            claimed = kept
        merchant_id = merchant.merchant_id
        admission: Admission | None = None  # once the payment is let in
        try:
            admission = self._enter(merchant)
            parsed = _refused_for_query(
                parse_payment_request(
                    body,
                    content_type,
                    merchant=merchant,
                    request_id=request_id,
                    payment_id=payment_id,
                    idempotency_key=idempotency_key,
                    content_encoding=content_encoding,
                ),
                query,
            )
            if parsed.context is None:
                await self._refuse(merchant, parsed, request_id, payment_id)
            ctx = parsed.context
            assert ctx is not None  # noqa: S101 - _refuse raised otherwise
            decision = self._policy.check(ctx, merchant)
            if not decision.allowed:
                # A method the merchant does not take, a currency no processor of it accepts: the
                # request cannot be processed at all, so it is a 422 saying why, like any refusal
                # (the engine would answer a bare ``policy_rejected``).
                await self._refuse(merchant, _refused_by_policy(parsed, decision), request_id, payment_id)
            if claimed is None and ctx.idempotency_key is not None:  # the body's key
                kept, note = self._keeper.kept(ctx.idempotency_key)
                replay = await self._claim(
                    merchant, kept, _fingerprints(body, content_type), request_id, BODY_KEY
                )
                if replay is not None:
                    self._leave(merchant_id, admission)  # a replay runs nothing: it gives its place back
                    return replay
                claimed = kept
            if note is not None:  # a card number in the key: from here on it is kept masked
                ctx = replace(ctx, idempotency_key=claimed, validation_errors=(*ctx.validation_errors, note))
            await self._note_issues(ctx.validation_errors, ctx)
            if claimed is not None:  # it goes on to charge: its claim is made durable first
                self._idempotency.hold(merchant_id, claimed)
            task = asyncio.create_task(self._run(ctx, merchant, started))
        except BaseException:
            if admission is not None:
                self._leave(merchant_id, admission)
            if claimed is not None:  # a refused request keeps no key
                await self._idempotency.release(merchant_id, claimed)
            raise
        try:
            return await self._follow(task, merchant_id, admission)
        except asyncio.CancelledError:
            # The server is stopping without waiting: see ingest.api.front.
            CUT_SHORT.set(CutShort(ctx.payment_id, keyed=claimed is not None))
            raise

    def _follow(
        self, task: asyncio.Task[PaymentAnswer], merchant_id: MerchantId, admission: Admission
    ) -> asyncio.Future[PaymentAnswer]:
        """The future the payment running in ``task`` gives its answer in (:func:`_hand_over`);
        the payment counts until the task ends, also when its client has gone."""
        self._tasks.add(task)
        answer: asyncio.Future[PaymentAnswer] = task.get_loop().create_future()

        def ended(done: asyncio.Task[PaymentAnswer]) -> None:
            # One callback, for the desk and for the answer: every callback is a turn of the
            # event loop (a second one cost about 11,000 instructions a payment).
            try:
                self._tasks.discard(done)
                self._leave(merchant_id, admission)
            finally:
                _hand_over(answer, done)

        task.add_done_callback(ended)
        return answer

    def _enter(self, merchant: MerchantConfig) -> Admission:
        """Count one more payment of ``merchant`` and let it in to the writer (its admission, to
        end with :meth:`_leave`); 429 when it has its limit running, 503 from :meth:`_admit`."""
        running = self._running.get(merchant.merchant_id, 0)
        if running >= merchant.max_in_flight:
            raise ApiProblem(
                "rate_limited",
                f"This merchant has {running} payments in flight, its limit; nothing was charged. "
                "Retry after Retry-After seconds, with the same Idempotency-Key if you sent one.",
                headers={"Retry-After": RATE_LIMITED_RETRY_AFTER_S},
            )
        self._running[merchant.merchant_id] = running + 1
        self._shares.enter(merchant.merchant_id)
        try:
            return self._admit(merchant.merchant_id)
        except BaseException:
            self._leave(merchant.merchant_id, None)
            raise

    def _admit(self, merchant_id: MerchantId) -> Admission:
        """503 while the writer is behind (sooner for a merchant past its share) or the disk
        stopped it; else the payment's admission (end it when the payment ends)."""
        try:
            return self._records.admit(
                over_share=self._shares.over_share(merchant_id, entered=True), writes=PAYMENT_WRITES
            )
        except StoreStoppedError:
            raise ApiProblem(
                "service_unavailable",
                "The service's disk refused to record payments, and the service is stopping; "
                "nothing was charged. Retry once it is back.",
                headers={"Retry-After": STOPPED_RETRY_AFTER_S},
            ) from None
        except StoreShareError:
            raise ApiProblem(
                "service_unavailable",
                "The event writer is behind, and this merchant holds more than its share of the work "
                "waiting for it (the other merchants' payments are let in first); nothing was charged. "
                "Retry after Retry-After seconds, with the same Idempotency-Key if you sent one.",
                headers={"Retry-After": "1"},
            ) from None
        except StoreSaturatedError:
            raise ApiProblem(
                "service_unavailable",
                "The event writer is behind; nothing was charged. Retry shortly.",
                headers={"Retry-After": "1"},
            ) from None

    def _leave(self, merchant_id: MerchantId, admission: Admission | None) -> None:
        if admission is not None:  # what the payment has not queued will not come
            admission.end()
        left = self._running[merchant_id] - 1
        if left:
            self._running[merchant_id] = left
        else:
            del self._running[merchant_id]
        self._shares.leave(merchant_id)

    async def _claim(
        self,
        merchant: MerchantConfig,
        key: str,
        fingerprints: tuple[str, str | None],
        request_id: RequestId,
        given_as: str,
    ) -> PaymentAnswer | None:
        """Claim ``key`` for this request: ``None`` once it holds it, the stored answer for a
        repeat; 409 while the first request runs, 422 for the key with another body. ``given_as``
        names where the request gave the key (:data:`HEADER_KEY`, :data:`BODY_KEY`), as the 409
        and the 422 say it: a key sent in the body was called "this Idempotency-Key", a header
        the client never sent.

        ``fingerprints`` are the body's and, for a form, the one an earlier payorch gave it (see
        :func:`~ingest.api.idempotency.earlier_fingerprint`): a key stored under that one is
        still this request's (else a retry of a form payment made before the upgrade was 422)."""
        fingerprint, earlier = fingerprints
        claim = await self._idempotency.claim(merchant.merchant_id, key, fingerprint)
        if isinstance(claim, Mismatch) and earlier is not None:
            claim = await self._idempotency.claim(merchant.merchant_id, key, earlier)
        if isinstance(claim, Replay):
            self._metrics.replays.inc()
            return PaymentAnswer(claim.response, replayed=True)
        if isinstance(claim, InFlight):
            raise ApiProblem(
                "idempotency_key_in_use",
                f"A request with this idempotency key ({given_as}) is still being processed; retry "
                "after it ends.",
                headers={"Retry-After": "1"},
            )
        if isinstance(claim, Mismatch):
            await self._monitor.record_violation(
                KEY_REUSED,
                request_id,
                # The header's wording as it always was; a body's key is named as the body gave it
                # (the violation said "Idempotency-Key" for a key the client sent in its body).
                "Idempotency-Key reused with a different request body"
                if given_as == HEADER_KEY
                else "idempotency_key (in the body) reused with a different request body",
                merchant_id=merchant.merchant_id,
            )
            raise ApiProblem(
                "idempotency_key_reused",
                f"This idempotency key ({given_as}) was already used with a different request body; "
                "use a new key for a new payment.",
            )
        assert isinstance(claim, Claimed)  # noqa: S101 - the outcomes are exhaustive
        return None

    async def drain(self, timeout_s: float) -> int:
        """Wait for payments in flight (at shutdown); returns how many did not end in time."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return len(pending)

    async def _run(self, ctx: CoreRequestContext, merchant: MerchantConfig, taken: float) -> PaymentAnswer:
        """Run the payment taken at ``taken`` (``time.perf_counter()``) and make its answer."""
        stopwatch = Stopwatch()
        STOPWATCH.set(stopwatch)
        started = time.perf_counter()
        try:
            result = await self._service.pay(ctx)
            paid = time.perf_counter()
            document = dumps(composite_result_to_json(result))
            await self._records.save_result(result, document)
        except ChargeNotSentError:
            return await self._not_sent(ctx)
        except Exception:
            # A fault of ours, not a refusal: money may have moved, so the key keeps this answer
            # and a retry with it cannot charge again. The client sees no detail of the fault.
            logger.exception("payment %s could not be completed", ctx.payment_id)
            problem = problem_document(
                "internal_error",
                "The payment could not be completed; look it up before retrying with a new key.",
                ctx.request_id,
                extra={"payment_id": ctx.payment_id},
                root_path=self._root_path,
            )
            response = StoredResponse(500, dumps(problem), "application/problem+json")
            await self._complete(ctx, response)
            with contextlib.suppress(StoreError):
                await self._records.sync()
            await self._answered(ctx, merchant, UNRECORDED, taken)
            return PaymentAnswer(response)
        response = StoredResponse(200, document)
        await self._complete(ctx, response)
        try:
            # The answer leaves only once the payment's events, result and key are durable.
            await self._records.sync()
        except StoreError:
            logger.exception("payment %s: its records could not be made durable", ctx.payment_id)
            problem = problem_document(
                "internal_error",
                "The payment's outcome could not be recorded: the service's disk failed, and the "
                "service is stopping. Do not pay again under a new key: once the service is back, "
                "look the payment up, or repeat the request with the same Idempotency-Key, for the "
                "outcome its next start settled (nothing is charged twice).",
                ctx.request_id,
                extra={"payment_id": ctx.payment_id},
                root_path=self._root_path,
            )
            await self._answered(ctx, merchant, UNRECORDED, taken)
            return PaymentAnswer(StoredResponse(500, dumps(problem), "application/problem+json"))
        timing = server_timing(paid - started, stopwatch.processor_s, time.perf_counter() - paid)
        await self._answered(ctx, merchant, result.status._value_, taken)  # see ingest.codec.result_json
        return PaymentAnswer(response, server_timing=timing)

    async def _answered(
        self, ctx: CoreRequestContext, merchant: MerchantConfig, status: str, taken: float
    ) -> None:
        """The payment's answer is ready: it counts in ``payorch_payments_total`` under ``status``
        (its result's, or :data:`UNRECORDED` for a 500), its latency, from the request in hand to
        this answer, goes into ``payorch_payment_latency_seconds``, and past the merchant's
        ``latency_slo_ms`` it is a ``payment/latency-slo`` violation. One figure for both: the
        engine's own time left out the parsing and the commit the answer waits for, so a merchant
        answered in 900 ms against an objective of 800 ms could see the histogram over it and no
        violation. Recorded after the answer's commit, it delays no answer."""
        self._metrics.count_payment(status)
        seconds = time.perf_counter() - taken
        self._metrics.observe_payment(status, seconds)
        objective = merchant.latency_slo_ms
        if objective is not None and seconds * 1000 > objective:
            message = f"payment answered in {seconds * 1000:.0f} ms, objective {objective} ms"
            with contextlib.suppress(StoreError):  # a stopped store: the answer is what matters
                await self._monitor.violated(ctx, LATENCY_SLO, message)

    async def _not_sent(self, ctx: CoreRequestContext) -> PaymentAnswer:
        """The answer to a payment the disk stopped before its first charge was sent: as a busy
        writer's 503, nothing was charged, and its key is freed (a retry with it is a new payment)."""
        logger.warning(
            "payment %s: its first attempt could not be recorded, so no processor was called; "
            "answered 503, nothing charged",
            ctx.payment_id,
        )
        if ctx.idempotency_key is not None:
            with contextlib.suppress(StoreError):  # a stopped store: the next start frees it
                await self._idempotency.release(ctx.merchant_id, ctx.idempotency_key)
        problem = problem_document(
            "service_unavailable",
            "The payment could not be recorded before it was sent to a processor; nothing was "
            "charged. Retry shortly, with the same Idempotency-Key if you sent one.",
            ctx.request_id,
            root_path=self._root_path,
        )
        return PaymentAnswer(StoredResponse(503, dumps(problem), "application/problem+json"), retry_after="1")

    async def _complete(self, ctx: CoreRequestContext, response: StoredResponse) -> None:
        if ctx.idempotency_key is not None:
            await self._idempotency.complete(ctx.merchant_id, ctx.idempotency_key, response)

    async def _note_issues(self, issues: tuple[ValidationIssue, ...], ctx: CoreRequestContext) -> None:
        if not issues:
            return
        self._metrics.count_issues(issues)
        corrections = tuple(issue for issue in issues if issue.code not in OMISSIONS)
        if corrections:
            await self._monitor.violated(ctx, VALIDATION, _summary(corrections))

    async def _refuse(
        self, merchant: MerchantConfig, parsed: ParsedRequest, request_id: RequestId, payment_id: PaymentId
    ) -> None:
        key, issues = parsed.idempotency_key, parsed.issues
        if key is not None:
            key, note = self._keeper.kept(key)
            issues = issues if note is None else (*issues, note)
        self._metrics.count_issues(issues)
        self._metrics.count_payment("rejected")
        amount = parsed.amount_cents
        if amount is not None and mask_card_numbers(str(amount)) != str(amount):
            amount = None  # a card number typed as the amount: the issues hold it masked, nothing else
        received = PaymentReceived(
            payment_id=payment_id,
            request_id=request_id,
            merchant_id=merchant.merchant_id,
            timestamp=self._clock.now(),
            accepted=False,
            amount_cents=amount,
            currency=parsed.currency,
            method=parsed.method,
            idempotency_key=key,
            validation_issues=issues,
        )
        await self._records.emit(received)
        # The refusal can be looked up by its payment id (status ``rejected``), which its answer
        # and its violation give.
        await self._records.save_refusal(received, dumps(refusal_to_json(received)))
        await self._monitor.record_violation(
            VALIDATION,
            request_id,
            _summary(issues),
            payment_id=payment_id,
            merchant_id=merchant.merchant_id,
        )
        # As for a payment: the refusal is answered once its record is durable, so what a client
        # was told is in every read made after (and survives a crash).
        try:
            await self._records.sync()
        except StoreError:
            logger.exception("request %s: its refusal could not be made durable", request_id)
        errors = [FieldError(i.field, i.code, i.message, i.severity.value) for i in issues]
        extra: dict[str, object] = {"payment_id": payment_id}
        if parsed.merchant_mismatch:
            raise ApiProblem(
                "forbidden",
                "The body names another merchant; a key may only pay for its own merchant.",
                errors=errors,
                extra=extra,
            )
        raise ApiProblem("validation_failed", _refusal_detail(issues), errors=errors, extra=extra)


#: The blocking issues a refusal's ``detail`` spells out, and how much of each message it keeps.
_DETAIL_ISSUES = 3
_DETAIL_MESSAGE = 300


def _refusal_detail(issues: tuple[ValidationIssue, ...]) -> str:
    """A 422's ``detail``, naming the fields that blocked it and why.

    It said only how many fields could not be used, and ``errors`` lists the warnings too, in the
    body's order: a developer reading the detail (what a client library shows, what a log keeps)
    or the first error (``merchant_id``, missing: a warning) was not told what to fix.
    """
    blocking = [issue for issue in issues if issue.blocks]
    count = len(blocking)
    named = [f"{issue.field}: {_cut(issue.message)}" for issue in blocking[:_DETAIL_ISSUES]]
    if count > _DETAIL_ISSUES:
        named.append(f"and {count - _DETAIL_ISSUES} more in errors")
    fields = f"{count} field{'s' if count != 1 else ''}"
    return f"{fields} could not be used ({'; '.join(named)}); nothing was charged."


def _cut(message: str) -> str:
    return message if len(message) <= _DETAIL_MESSAGE else message[: _DETAIL_MESSAGE - 3] + "..."


def _summary(issues: tuple[ValidationIssue, ...]) -> str:
    parts = [f"{issue.field}: {issue.code} ({issue.severity.value})" for issue in issues[:20]]
    more = f"; and {len(issues) - 20} more" if len(issues) > 20 else ""
    text = "; ".join(parts) + more
    return text if len(text) <= 2000 else text[:1997] + "..."
