"""The FastAPI application class of the merchant API: ``POST /v1/payments`` goes to the front first.

Every request passes FastAPI's own middleware stack before the app's (:class:`~ingest.api.front.Front`):
Starlette's ``ServerErrorMiddleware``, FastAPI's ``ExceptionTelemetryMiddleware`` and its
``AppBodyLimitMiddleware``. For a payment none of them does anything the front does not do already:

- the front answers every error of the payment route itself (a refusal, a 500, a stop's 503), so
  the 500 of ``ServerErrorMiddleware`` is reached only by an error that escapes the front, which
  :meth:`PayorchAPI.__call__` hands to the same handler here;
- FastAPI's exception telemetry is off (``telemetry=...`` in ``create_app``: it observes nothing
  unless a request carries FastAPI's telemetry, which no request does then);
- the app sets no ``max_body_size``, so the body-limit layer passes a request on untouched unless
  an app it is mounted under set one (such a request still goes through the stack).

Going round them saves three coroutine calls a request and a wrapper on each ``send``: about
17,000 instructions of a payment's 1,430,000 (callgrind, in process).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.api.front import PAYMENTS_PATH, STATUS_KEY, Front, route_path


class PayorchAPI(FastAPI):
    """FastAPI, with the payment route taken straight to the app's :class:`Front`."""

    _front: Front | None = None
    _errors: ServerErrorMiddleware | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if isinstance(stack, ServerErrorMiddleware):
            layer: object = stack
            while layer is not None and not isinstance(layer, Front):
                layer = getattr(layer, "app", None)
            if isinstance(layer, Front):
                self._front, self._errors = layer, stack
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self._front
        if (
            front is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or MAX_BODY_SIZE_SCOPE_KEY in scope
            or route_path(scope) != PAYMENTS_PATH
        ):
            await super().__call__(scope, receive, send)
            return
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        try:
            await front(scope, receive, send)
        except Exception as exc:
            if STATUS_KEY in scope.get("state", {}):
                raise  # the answer had begun: only closing the connection can end it
            await self._crashed(scope, receive, send, exc)
            raise

    async def _crashed(self, scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
        """Answer ``error``, which escaped the front before any answer, as ``ServerErrorMiddleware``
        answers it (with the app's handler for ``Exception``); it raises ``error`` again."""
        errors = self._errors
        assert errors is not None  # noqa: S101 - set with the front

        async def failing(scope: Scope, receive: Receive, send: Send) -> None:
            raise error

        await ServerErrorMiddleware(failing, handler=errors.handler, debug=errors.debug)(scope, receive, send)
