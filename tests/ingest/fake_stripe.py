"""A fake Stripe API for the adapter's tests: real HTTP on 127.0.0.1, standard library only.

It speaks Stripe's wire format: form-encoded requests with bracketed keys (``metadata[k]=v``,
``expand[0]=x``), ``Authorization: Bearer sk_...``, JSON answers shaped like Stripe's objects,
and Stripe's error bodies with their HTTP statuses (402 card errors, 400 invalid requests, among them
an amount under Stripe's minimum for the currency (``amount_too_small``), and idempotency
errors, 404 unknown objects, 429 rate limits, 500 API errors).

Endpoints: ``POST /v1/payment_intents`` (with ``confirm=true``, or unconfirmed), ``GET
/v1/payment_intents`` (newest first, ``created[gte]``, ``limit``, ``starting_after``), ``GET
/v1/payment_intents/search`` (``metadata['k']:'v'`` queries), ``GET /v1/payment_intents/{id}``,
``POST /v1/payment_intents/{id}/capture``, ``POST /v1/payment_intents/{id}/cancel`` and ``POST
/v1/refunds``; ``expand`` of ``latest_charge``. ``capture_method=manual`` (or ``authorize_only``,
a Stripe that leaves even automatic captures to the caller) stops a charge at ``requires_capture``.

Idempotency as Stripe keeps it: a POST's ``Idempotency-Key`` stores the first answer (errors
included); the same key with the same parameters replays it byte for byte with
``Idempotent-Replayed: true``; with other parameters (or another endpoint) it is a 400
``idempotency_error``; while the first request with a key is still being carried out (held
back by :meth:`FakeStripe.delay_next`), another with that key is refused 409 ``idempotency_error``
(``idempotency_key_in_use``) and nothing of it is stored, as Stripe refuses concurrent requests.

Faults, each consumed by the next request(s): :meth:`FakeStripe.refuse_next` (a 400 invalid
request with the given message, code and parameter), :meth:`FakeStripe.fail_next` (500 or 429, before
anything is done or stored, like a load balancer; or, with ``Stripe-Should-Retry: false``, stored
under the key and replayed), :meth:`FakeStripe.hang_next` (the request is
carried out and stored at once, then its answer is held back: a client that times out has still
been charged) and :meth:`FakeStripe.malform_next` (the request is carried out, its answer garbled).
:meth:`FakeStripe.delay_next` holds the next request back before carrying it out (a request still
in flight). ``search_visible = False`` hides everything from the Search API, as its indexing lag
would (the List API, like Stripe's, is not affected). :meth:`FakeStripe.forget` drops a request
and what it made, as if it had never arrived.
"""

from __future__ import annotations

import copy
import itertools
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from tests.ingest.fake_stripe_wire import (
    PAYMENT_METHODS,
    Json,
    MalformKind,
    Reply,
    StripeApiError,
    check_amount_step,
    check_minimum_amount,
    garble,
    invalid,
    json_reply,
    masked,
    parse_search_query,
    positive_int,
    unflatten,
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    idempotency_key: str | None
    status: int
    replayed: bool
    request_id: str = ""  # the answer's Request-Id header


class FakeStripe:
    """The fake API's state, fault switches and server; use as a context manager."""

    def __init__(self) -> None:
        self.payment_intents: dict[str, Json] = {}
        self.charges: dict[str, Json] = {}
        self.refunds: dict[str, Json] = {}
        self.requests: list[RecordedRequest] = []
        self.unexpected_errors: list[BaseException] = []
        self.search_visible = True
        self.authorize_only = False
        self.capture_fails = False  # captures are answered 500 without being done
        self.list_fails = False  # lists of PaymentIntents are answered 500
        self.forbidden = False  # every request is refused 403, as for a restricted key lacking rights
        # A misbehaving Stripe: successful charges take ``overcharge_factor`` times the amount asked
        # for, in ``charge_currency`` when it is set.
        self.overcharge_factor = 1
        self.charge_currency: str | None = None
        self._stored: dict[str, tuple[tuple[object, ...], Reply]] = {}
        self._in_flight: set[str] = set()
        self._failures: list[tuple[int, bool | None]] = []
        self._refusals: list[StripeApiError] = []
        self._hang_s: float | None = None
        self._delay_s: float | None = None
        self._malform: MalformKind | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def fail_next(self, count: int = 1, *, status: int = 500, should_retry: bool | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (500 or 429), doing nothing.

        With ``should_retry`` the answer carries ``Stripe-Should-Retry``; ``False`` is Stripe
        telling that a repeat would only be answered the same: the failure is stored under the
        request's ``Idempotency-Key`` and replayed to every repeat with it."""
        with self._lock:
            self._failures.extend([(status, should_retry)] * count)

    def refuse_next(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        """Refuse the next request as Stripe refuses an invalid one: a 400 ``invalid_request_error``
        with ``message``, ``code`` and ``param``, stored under its ``Idempotency-Key``."""
        with self._lock:
            self._refusals.append(invalid(message, code=code, param=param))

    def hang_next(self, seconds: float) -> None:
        """Carry out the next request at once but hold its answer back for ``seconds``."""
        with self._lock:
            self._hang_s = seconds

    def delay_next(self, seconds: float) -> None:
        """Hold the next request back for ``seconds`` before carrying it out."""
        with self._lock:
            self._delay_s = seconds

    def take_delay(self) -> float:
        with self._lock:
            delay, self._delay_s = self._delay_s or 0.0, None
            return delay

    def forget(self, idempotency_key: str) -> None:
        """Drop the request stored under ``idempotency_key`` and the intent it made, as if the
        request had never arrived (a crash before it was sent)."""
        with self._lock:
            self._stored.pop(idempotency_key, None)
            for intent_id, intent in list(self.payment_intents.items()):
                if intent["metadata"].get("payorch_idempotency_key") == idempotency_key:
                    del self.payment_intents[intent_id]
                    self.charges.pop(intent["latest_charge"] or "", None)

    def malform_next(self, kind: MalformKind = "truncated") -> None:
        """Carry out the next request but garble its answer: cut JSON, or an object lacking fields."""
        with self._lock:
            self._malform = kind

    def intents_with_status(self, status: str) -> list[Json]:
        with self._lock:
            return [dict(i) for i in self.payment_intents.values() if i["status"] == status]

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: str) -> Reply:
        """One request, start to finish (the handler threads call this; header names in lower case)."""
        split = urlsplit(target)
        pairs = parse_qsl(body if method == "POST" else split.query, keep_blank_values=True)
        key = headers.get("idempotency-key") if method == "POST" else None
        with self._lock:
            reply, replayed = self._answer(method, split.path, headers, pairs, key)
            # Every answer has an id of its own, a replayed one too.
            request_id = self._new_id("req")
            stamped = {**reply.headers, "Request-Id": request_id}
            reply = Reply(reply.status, reply.body, stamped, reply.delay_s)
            self.requests.append(RecordedRequest(method, split.path, key, reply.status, replayed, request_id))
            if self._hang_s is not None:
                reply = Reply(reply.status, reply.body, dict(reply.headers), self._hang_s)
                self._hang_s = None
            if self._malform is not None:
                reply = Reply(reply.status, garble(reply.body, self._malform), dict(reply.headers))
                self._malform = None
        return reply

    def claim(self, idempotency_key: str | None) -> bool:
        """Mark a request with ``idempotency_key`` as being carried out; False when one already is."""
        with self._lock:
            if idempotency_key is None:
                return True
            if idempotency_key in self._in_flight:
                return False
            self._in_flight.add(idempotency_key)
            return True

    def release(self, idempotency_key: str | None) -> None:
        with self._lock:
            self._in_flight.discard(idempotency_key or "")

    def conflict(self, method: str, target: str, idempotency_key: str) -> Reply:
        """Stripe's answer to a request whose key is held by one still in progress (nothing stored)."""
        message = (
            "There is currently another in-progress request using this Idempotent Key (that probably "
            "means you submitted twice, and the other request is still going through): "
            f"{idempotency_key}. Please try again later."
        )
        error = {"type": "idempotency_error", "code": "idempotency_key_in_use", "message": message}
        with self._lock:
            request_id = self._new_id("req")
            path = urlsplit(target).path
            self.requests.append(RecordedRequest(method, path, idempotency_key, 409, False, request_id))
        return Reply(409, json_reply(409, {"error": error}).body, {"Request-Id": request_id})

    def wait_released(self, seconds: float) -> None:
        self._released.wait(seconds)

    def _answer(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        pairs: list[tuple[str, str]],
        key: str | None,
    ) -> tuple[Reply, bool]:
        signature = (method, path, tuple(sorted(pairs)))
        if self._failures:
            status, should_retry = self._failures.pop(0)
            error = {"type": "api_error", "message": "An unknown error occurred."}
            if status == 429:
                error = {
                    "type": "invalid_request_error",
                    "code": "rate_limit",
                    "message": "Too many requests.",
                }
            reply = json_reply(status, {"error": error})
            if should_retry is not None:
                reply.headers["Stripe-Should-Retry"] = str(should_retry).lower()
            if should_retry is False and key is not None:
                self._stored[key] = (signature, reply)
            return reply, False
        api_key = headers.get("authorization", "").removeprefix("Bearer ")
        if not api_key.startswith("sk_"):
            # Stripe names the key it refused, masked but for its last characters.
            error = {
                "type": "invalid_request_error",
                "message": f"Invalid API Key provided: {masked(api_key)}",
            }
            return json_reply(401, {"error": error}), False
        if self.forbidden:
            message = f"The provided key '{masked(api_key)}' does not have the required permissions."
            return json_reply(403, {"error": {"type": "invalid_request_error", "message": message}}), False
        if key is not None and key in self._stored:
            first, stored = self._stored[key]
            if first != signature:
                message = "Keys for idempotent requests can only be used with the same parameters."
                return json_reply(400, {"error": {"type": "idempotency_error", "message": message}}), False
            return Reply(stored.status, stored.body, {**stored.headers, "Idempotent-Replayed": "true"}), True
        try:
            if self._refusals:
                raise self._refusals.pop(0)
            reply = json_reply(200, self._route(method, path, unflatten(pairs)))
        except StripeApiError as error:
            reply = json_reply(error.status, {"error": error.error})
        if key is not None:
            reply.headers["Idempotency-Key"] = key
            self._stored[key] = (signature, reply)
        return reply, False

    def _route(self, method: str, path: str, params: Json) -> Json:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "payment_intents"]:
            return self._create_intent(params)
        if method == "GET" and parts == ["v1", "payment_intents"]:
            return self._list(params)
        if method == "GET" and parts == ["v1", "payment_intents", "search"]:
            return self._search(params)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "payment_intents"]:
            return self._expanded(self._intent(parts[2]), params.get("expand", []), "latest_charge")
        if method == "POST" and len(parts) == 4 and parts[1] == "payment_intents" and parts[3] == "cancel":
            return self._cancel(self._intent(parts[2]))
        if method == "POST" and len(parts) == 4 and parts[1] == "payment_intents" and parts[3] == "capture":
            return self._capture(self._intent(parts[2]))
        if method == "POST" and parts == ["v1", "refunds"]:
            return self._refund(params)
        raise invalid(f"Unrecognized request URL ({method}: {path}).", status=404)

    def _create_intent(self, params: Json) -> Json:
        amount = positive_int(params, "amount")
        check_amount_step(str(params.get("currency", "")), amount)
        check_minimum_amount(str(params.get("currency", "")), amount)
        confirm = params.get("confirm") == "true"
        method = str(params.get("payment_method"))
        if confirm and method not in PAYMENT_METHODS:
            raise invalid(
                f"No such PaymentMethod: '{method}'", code="resource_missing", param="payment_method"
            )
        intent: Json = {
            "id": self._new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": str(params.get("currency", "")),
            "status": "requires_confirmation" if "payment_method" in params else "requires_payment_method",
            "payment_method": params.get("payment_method"),
            "created": int(time.time()),
            "capture_method": str(params.get("capture_method", "automatic_async")),
            "metadata": dict(params.get("metadata", {})),
            "latest_charge": None,
            "last_payment_error": None,
            "livemode": False,
        }
        self.payment_intents[intent["id"]] = intent
        if not confirm:
            return copy.deepcopy(intent)
        outcome = PAYMENT_METHODS[method]
        if outcome == "requires_action":
            intent["status"] = "requires_action"
            return copy.deepcopy(intent)
        charge = self._new_charge(intent, failed=outcome is not None)
        if isinstance(outcome, tuple):
            code, decline_code, message = outcome
            error = {"type": "card_error", "code": code, "message": message, "charge": charge["id"]}
            if decline_code is not None:
                error["decline_code"] = decline_code
            intent.update(status="requires_payment_method", last_payment_error=error)
            raise StripeApiError(402, {**error, "payment_intent": copy.deepcopy(intent)})
        if self.overcharge_factor != 1 or self.charge_currency is not None:
            amount *= self.overcharge_factor
            intent.update(amount=amount, currency=self.charge_currency or intent["currency"])
            charge.update(amount=amount, amount_captured=amount)
        if self.authorize_only or intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=amount)
            charge.update(captured=False, amount_captured=0)
        else:
            intent.update(status="succeeded", amount_received=amount)
        return copy.deepcopy(intent)

    def _new_charge(self, intent: Json, *, failed: bool) -> Json:
        charge: Json = {
            "id": self._new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0 if failed else intent["amount"],
            "amount_refunded": 0,
            "captured": not failed,
            "refunded": False,
            "paid": not failed,
            "status": "failed" if failed else "succeeded",
            "payment_intent": intent["id"],
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        return charge

    def _search(self, params: Json) -> Json:
        name, value = parse_search_query(str(params.get("query", "")))
        expand = params.get("expand", [])
        found = [
            self._expanded(intent, expand, "data.latest_charge")
            for intent in reversed(self.payment_intents.values())
            if self.search_visible and intent["metadata"].get(name) == value
        ]
        limit = int(params.get("limit", 10))
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
        }

    def _list(self, params: Json) -> Json:
        if self.list_fails:
            raise StripeApiError(500, {"type": "api_error", "message": "An unknown error occurred."})
        created = params.get("created", {})
        since = int(created.get("gte", 0)) if isinstance(created, dict) else 0
        newest_first = [i for i in reversed(self.payment_intents.values()) if i["created"] >= since]
        after = params.get("starting_after")
        if after is not None:
            ids = [i["id"] for i in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", 10))
        expand = params.get("expand", [])
        return {
            "object": "list",
            "url": "/v1/payment_intents",
            "data": [self._expanded(i, expand, "data.latest_charge") for i in newest_first[:limit]],
            "has_more": len(newest_first) > limit,
        }

    def _capture(self, intent: Json) -> Json:
        if self.capture_fails:
            raise StripeApiError(500, {"type": "api_error", "message": "An unknown error occurred."})
        if intent["status"] != "requires_capture":
            message = (
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}."
            )
            raise invalid(message, code="payment_intent_unexpected_state")
        charge = self.charges[intent["latest_charge"]]
        amount = intent["amount_capturable"]
        charge.update(captured=True, amount_captured=amount)
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return copy.deepcopy(intent)

    def _cancel(self, intent: Json) -> Json:
        if intent["status"] not in ("requires_payment_method", "requires_capture", "requires_confirmation"):
            message = f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}."
            raise invalid(message, code="payment_intent_unexpected_state")
        if intent["status"] == "requires_capture":
            charge = self.charges[intent["latest_charge"]]
            charge.update(refunded=True, amount_refunded=charge["amount"])
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="requested_by_customer")
        return copy.deepcopy(intent)

    def _refund(self, params: Json) -> Json:
        intent = self._intent(str(params.get("payment_intent", "")))
        if intent["status"] != "succeeded":
            raise invalid(
                "This PaymentIntent has no successful charge to refund.", code="charge_not_refundable"
            )
        charge = self.charges[intent["latest_charge"]]
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining == 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = positive_int(params, "amount") if "amount" in params else remaining
        check_amount_step(intent["currency"], amount)
        if amount > remaining:
            raise invalid(
                "Refund amount is greater than unrefunded amount on charge.", code="amount_too_large"
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        refund: Json = {
            "id": self._new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "currency": intent["currency"],
            "metadata": dict(params.get("metadata", {})),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return copy.deepcopy(refund)

    def _intent(self, intent_id: str) -> Json:
        intent = self.payment_intents.get(intent_id)
        if intent is None:
            raise invalid(f"No such payment_intent: '{intent_id}'", code="resource_missing", status=404)
        return intent

    def _expanded(self, intent: Json, expand: object, path: str) -> Json:
        answer = copy.deepcopy(intent)
        if isinstance(expand, list) and path in expand and intent["latest_charge"] is not None:
            answer["latest_charge"] = copy.deepcopy(self.charges[intent["latest_charge"]])
        return answer

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"


class _Server(ThreadingHTTPServer):
    """Handler threads are joined on close, so no socket outlives the fake."""

    daemon_threads = False

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError):
            self.fake.unexpected_errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 5.0

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake records requests in ``FakeStripe.requests`` instead."""

    def _serve(self, method: str) -> None:
        fake = self.server.fake if isinstance(self.server, _Server) else None
        if fake is None:
            raise TypeError("the handler must run in the fake's server")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        headers = {name.lower(): value for name, value in self.headers.items()}
        key = headers.get("idempotency-key") if method == "POST" else None
        if key is not None and not fake.claim(key):
            reply = fake.conflict(method, self.path, key)
        else:
            try:
                delay = fake.take_delay()
                if delay:
                    fake.wait_released(delay)
                reply = fake.handle(method, self.path, headers, body)
            finally:
                fake.release(key)
        if reply.delay_s:
            fake.wait_released(reply.delay_s)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except ConnectionError:
            pass  # the client gave up waiting (a timeout test); the charge stands
