"""Errors of the HTTP API: one JSON shape, ``{"error": {"code", "message", "field"}}``.

Owns ``ApiError`` (what a route or a dependency raises to answer a given status), the
mapping of rayflow's exceptions onto statuses (BadRequest 400, SpecError 422, RunNotFound 404, Conflict
and RunBusy 409, Unavailable and StoreUnavailable 503) and the exception handlers that write every error,
FastAPI's own included, in that shape. An unexpected exception is logged (its traceback,
never a request header) and answered with a generic 500. Must not build messages from
request headers: a token never reaches a message or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rayflow.core.errors import ComponentNotFound, RunBusy, RunNotFound, SpecError, StoreUnavailable
from rayflow.server.plane import BadRequest, Conflict, Unavailable

log = logging.getLogger("rayflow.server.http")

_STARLETTE_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}


class ApiError(Exception):
    """An answer other than success: ``status``, a stable ``code``, a message naming the fix."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(code, message, field), status_code=status, headers=headers)


def dotted(loc: tuple | list) -> str:
    """A validation error's location as a dotted path: ("body", "inputs") -> "body.inputs"."""
    return ".".join(str(part) for part in loc)


def _validation(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {"loc": (), "msg": str(exc), "type": ""}
    field = dotted(first.get("loc", ())) or None
    if first.get("type") == "json_invalid":
        return error_response(400, "malformed_json", f"the request body is not valid JSON: {first.get('msg')}",
                              "body")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, "invalid_request", f"{field or 'request'}: {first.get('msg')}{more}", field)


def _spec(_: Request, exc: Exception) -> JSONResponse:
    component = getattr(exc, "component", None)
    field = f"spec.components.{component}" if component else "spec"
    return error_response(422, "invalid_spec", str(exc), field)


def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "run_not_found", str(exc), "run_id")


def _no_component(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "component_not_found", str(exc), "component_id")


def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc), getattr(exc, "field", None))


def _bad_request(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "bad_request", str(exc), getattr(exc, "field", None))


def _busy(_: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "run_busy", str(exc), "run_id")


def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "unavailable", str(exc) or "the server is not accepting work now",
                          headers={"Retry-After": "5"})


def _store_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("the run store is unavailable: %s", type(exc).__name__)
    return error_response(503, "store_unavailable", "the run store cannot be reached now; retry shortly",
                          headers={"Retry-After": "5"})


def _api(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STARLETTE_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404:
        message = "no such route (see /openapi.json for the API)"
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # method and path only: headers (Authorization) never reach the log
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "the server failed to answer this request; see its log")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(SpecError, _spec)
    app.add_exception_handler(RunNotFound, _not_found)
    app.add_exception_handler(ComponentNotFound, _no_component)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(RunBusy, _busy)
    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(StoreUnavailable, _store_down)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
