"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served whole by the service.

FastAPI's own pages load their scripts, styles and fonts from public CDNs (cdn.jsdelivr.net,
fonts.googleapis.com, fastapi.tiangolo.com): behind a firewall, or on a machine without the
internet, both pages came up blank. Their scripts, styles and icon come from the pinned
``fastapi-offline`` package instead, served under :data:`ASSETS`, and Redoc's page is built without
Google's fonts. Both pages read ``/openapi.json`` below the app's root path, as FastAPI's do.

The assets are served by Starlette's ``StaticFiles``, each at its own path only (:class:`_Assets`),
and but for the refusals of a ``Range`` header (:class:`_AssetFile`): Starlette answered them in
plain text, where every error of the service is problem+json, and refused a header it cannot read
(``items=0-1``, ``bytes=a-b``) 400, where RFC 9110 section 14.2 has a server ignore it (and MUST,
for a unit it does not know).
"""

from __future__ import annotations

from importlib import resources
from os import PathLike, stat_result

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Message, Receive, Scope, Send

from ingest.api.problems import ApiProblem

#: Where the pages' scripts, styles and icon are served.
ASSETS = "/docs/assets"
TITLE = "payorch API"


def _root(request: Request) -> str:
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


async def _swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title=TITLE,
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
    )


async def _redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title=TITLE,
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )


class _AssetFile(FileResponse):
    """An asset, whose ``Range`` header is ignored when it cannot be read (the whole file is sent,
    200) and refused as problem+json ``range_not_satisfiable`` (416) when no range of it begins
    within the file. ``FileResponse`` answers only these two refusals 400 and 416."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 416):
                refused.append(message["status"])
            elif not refused:  # not the refusal's plain text either
                await send(message)

        await super().__call__(scope, receive, sending)
        if not refused:
            return
        if refused[0] == 400:
            without = [(name, value) for name, value in scope["headers"] if name != b"range"]
            await super().__call__({**scope, "headers": without}, receive, send)
            return
        size = self.headers["content-length"]
        detail = f"No range of the Range header begins within the file's {size} bytes."
        raise ApiProblem("range_not_satisfiable", detail, headers={"Content-Range": f"bytes */{size}"})


class _Assets(StaticFiles):
    """Starlette's ``StaticFiles``, answering with :class:`_AssetFile`, and finding an asset only at
    its own path: Starlette served it too with a trailing slash, and under any path its
    normalisation made the same (``./favicon.png``, ``x/../favicon.png``, ``/favicon.png``), where
    a path with a trailing slash is a 404 everywhere else (the 404 names the path without it)."""

    def get_path(self, scope: Scope) -> str:
        path: str = scope["path"]
        if any(part in ("", ".", "..") for part in path.split("/")[1:]):
            raise HTTPException(status_code=404)
        return super().get_path(scope)

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = _AssetFile(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def install_docs(app: FastAPI) -> None:
    """``/docs``, ``/redoc`` (GET and HEAD) and their assets, on an app made with
    ``docs_url=None, redoc_url=None``."""
    folder = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, _Assets(directory=str(folder)), name="docs-assets")
    app.add_route("/docs", _swagger_ui, include_in_schema=False)
    app.add_route("/redoc", _redoc, include_in_schema=False)
