"""The web UI's routes: ``/`` (the page) and ``/ui/<asset>`` (its scripts and styles).

Owns serving the assets that ship inside the package (``rayflow/server/http/ui``: plain
HTML, CSS and ES modules, no build step) with a Content-Security-Policy that lets the
page run only its own scripts and talk only to this server. The assets hold no data and
need no token; every call the page makes goes through the API's own auth and scopes.
Must not render data into the page: the page fetches it from ``/v1``.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from rayflow.server.http.errors import ApiError

router = APIRouter(include_in_schema=False)
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}


def _assets() -> dict[str, bytes]:
    root = resources.files("rayflow.server.http").joinpath("ui")
    return {entry.name: entry.read_bytes() for entry in root.iterdir()
            if entry.is_file() and any(entry.name.endswith(ext) for ext in TYPES)}


ASSETS = _assets()


def _asset(name: str) -> Response:
    body = ASSETS.get(name)
    if body is None:
        raise ApiError(404, "not_found", f"no UI asset {name!r}")
    media = next(t for ext, t in TYPES.items() if name.endswith(ext))
    return Response(body, media_type=media, headers=HEADERS)


@router.get("/")
def index() -> Response:
    """The web UI."""
    return _asset("index.html")


@router.get("/ui/{name}")
def asset(name: str) -> Response:
    """One of the UI's scripts or styles."""
    return _asset(name)
