"""The HTTP client the Stripe SDK sends through: an ``httpx.AsyncClient``.

stripe 16.1's own ``HTTPXClient`` hands the form-encoded body to httpx as ``data=<str>``, which
httpx 0.28 deprecates with a ``DeprecationWarning`` on every POST (and under warnings-as-errors
that warning becomes a failed request). This client takes the SDK's documented extension point,
a subclass of ``stripe.HTTPClient``, and sends the body as ``content=`` instead.

Like the SDK's clients it raises transport failures as ``stripe.APIConnectionError`` chained to
the httpx exception (``__cause__``), which tells whether the request could have been sent.
It is async only: the SDK's synchronous methods must not be used with it.

Every answer's ``Request-Id`` (``req_...``, the id Stripe's support and dashboard know a request
by) is kept on the span open around the call, the attempt's for a charge, as the attribute
:data:`REQUEST_ID`: one id per call made under the span (a create then its capture, a status
query's searches), in the order of the calls, separated by spaces.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Mapping
from typing import ClassVar

import httpx
import stripe

from ingest.observe import spans

#: The span attribute holding the ``Request-Id`` of each Stripe call made under the span.
REQUEST_ID = "stripe.request_id"
_MAX_REQUEST_ID = 255


class StripeHttpClient(stripe.HTTPClient):
    """httpx for the SDK's ``*_async`` calls, with one timeout for connect, read, write and pool."""

    name: ClassVar[str] = "httpx"

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        # httpx logs every request at INFO (logger "httpx"); payorch records each call itself, and
        # the line would be written at once on the event loop, outside the bounded log pipe. Its
        # own level, not the inherited one: ``payorch serve`` lowers the root's after start-up.
        httpx_logger = logging.getLogger("httpx")
        if httpx_logger.level < logging.WARNING:
            httpx_logger.setLevel(logging.WARNING)
        # Stripe's own CA bundle, as the SDK's clients use.
        context = ssl.create_default_context(cafile=stripe.ca_bundle_path)
        self._client = httpx.AsyncClient(timeout=timeout_s, verify=context)

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: str | bytes | None = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._client.request(method, url, headers=headers, content=post_data)
        except httpx.TransportError as error:
            message = f"Network error communicating with Stripe: {type(error).__name__}"
            # APIConnectionError.__init__ carries no annotations in stripe 16.1.
            raise stripe.APIConnectionError(message, should_retry=True) from error  # type: ignore[no-untyped-call]
        _keep_request_id(response.headers.get("request-id"))
        return response.content, response.status_code, response.headers

    async def close_async(self) -> None:
        await self._client.aclose()

    def close(self) -> None:
        """Nothing to close synchronously: there is no synchronous client."""

    def sleep_async(self, secs: float) -> Awaitable[None]:
        return asyncio.sleep(secs)


def _keep_request_id(request_id: str | None) -> None:
    """Add Stripe's id of a request to the current span (see the module text)."""
    span = spans.current.get()
    if span is None or not request_id or len(request_id) > _MAX_REQUEST_ID:
        return
    if not request_id.isascii() or not request_id.isprintable() or " " in request_id:
        return  # not an id Stripe gives: nothing from outside goes on a span unchecked
    earlier = span._attributes.get(REQUEST_ID)
    span._attributes[REQUEST_ID] = request_id if earlier is None else f"{earlier} {request_id}"
