"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served whole by the service.

FastAPI's own pages load their scripts, styles and fonts from public CDNs (cdn.jsdelivr.net,
fonts.googleapis.com, fastapi.tiangolo.com): behind a firewall, or on a machine without the
internet, both pages came up blank. Their scripts, styles and icon come from the pinned
``fastapi-offline`` package instead, served under :data:`ASSETS`, and Redoc's page is built without
Google's fonts. Both pages read ``/openapi.json`` below the app's root path, as FastAPI's do.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

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


def install_docs(app: FastAPI) -> None:
    """``/docs``, ``/redoc`` (GET and HEAD) and their assets, on an app made with
    ``docs_url=None, redoc_url=None``."""
    folder = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    app.add_route("/docs", _swagger_ui, include_in_schema=False)
    app.add_route("/redoc", _redoc, include_in_schema=False)
