"""The errors of ``rf.Client``: a server's answers (and its silence) as rayflow exceptions.

Owns the mapping from an HTTP error answer, ``{"error": {"code", "message", "field"}}``,
onto the exception tree of ``rayflow.core.errors``, so code that catches ``rf.RunNotFound``
or ``rf.SpecError`` around a local run catches the same failure over HTTP:

    ServerError (RayflowError)     any other answer (400, 413, 429, 5xx) or no answer;
    │                              ``status`` is None when the server could not be reached
    ├── RemoteNotFound             404, also a ``RunNotFound``
    ├── RemoteSpecError            422, also a ``SpecError`` (``component`` from the field)
    ├── RemoteConflict             409, also a ``RunBusy`` (a replay with another body, a busy run)
    └── ClientAuthError            401 and 403: a missing, unknown or revoked token, or one
                                   whose scope is too small

Every error carries the server's ``status``, ``code``, ``field`` and ``message``. Messages
come from the server's body or from the URL and the transport's reason: never from request
headers, so a token cannot reach a message. Must not import httpx (``http.py`` does).
"""

from __future__ import annotations

from typing import Any

from rayflow.core.errors import RayflowError, RunBusy, RunNotFound, SpecError

COMPONENT_FIELD = "spec.components."


class ServerError(RayflowError):
    """An error answer of a rayflow server, or none at all (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None) -> None:
        RayflowError.__init__(self, message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        return self.message


class RemoteNotFound(ServerError, RunNotFound):
    """404: no such run (or component, or workflow) on the server."""

    def __init__(self, message: str, *, run_id: str | None = None, **detail: Any) -> None:
        ServerError.__init__(self, message, **detail)
        self.run_id = run_id


class RemoteSpecError(ServerError, SpecError):
    """422: the server refused the spec, the inputs or the request, naming the culprit."""

    def __init__(self, message: str, **detail: Any) -> None:
        ServerError.__init__(self, message, **detail)
        field = detail.get("field") or ""
        self.component = field[len(COMPONENT_FIELD):] if field.startswith(COMPONENT_FIELD) else None


class RemoteConflict(ServerError, RunBusy):
    """409: the request contradicts what the server holds (a busy run, a reused key)."""

    def __init__(self, message: str, *, run_id: str | None = None, **detail: Any) -> None:
        ServerError.__init__(self, message, **detail)
        self.run_id = run_id


class ClientAuthError(ServerError):
    """401 or 403: the token is missing, unknown or revoked, or its scope is too small."""


_BY_STATUS: dict[int, type[ServerError]] = {404: RemoteNotFound, 422: RemoteSpecError, 409: RemoteConflict,
                                            401: ClientAuthError, 403: ClientAuthError}


def from_answer(status: int, payload: Any, *, reason: str = "", run_id: str | None = None) -> ServerError:
    """The exception for an error answer: ``payload`` is its parsed JSON body (or None)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    field = error.get("field") if isinstance(error.get("field"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    message = message or f"the server answered {status} {reason}".rstrip()
    cls = _BY_STATUS.get(status, ServerError)
    if cls in (RemoteNotFound, RemoteConflict):
        return cls(message, run_id=run_id, status=status, code=code, field=field)
    return cls(message, status=status, code=code, field=field)
