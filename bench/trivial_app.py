"""The baseline app of bench_api: ``POST /v1/payments`` reads its body and answers a small fixed
JSON object encoded with orjson, on the same FastAPI and uvicorn stack and options as payorch.
What it costs is what the framework, the server and the load generator cost; what payorch costs
beyond it is payorch's own work.

``uvicorn bench.trivial_app:app``
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

ANSWER = {"id": "pay_trivial", "status": "succeeded", "amount": 10000, "currency": "USD"}

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/v1/payments")
async def create_payment(request: Request) -> Response:
    await request.body()
    return Response(orjson.dumps(ANSWER), media_type="application/json")
