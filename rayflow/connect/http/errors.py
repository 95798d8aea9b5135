"""The errors of HTTP components: each one line, its secrets scrubbed by whoever raises it.

``HttpError``: a request failed (a status that is not retried, the retries used up, no
answer, a response of the wrong shape); ``HttpConfigError``: a component is configured
wrongly (its URL template, batching, response kind). ``CircuitOpen`` (in
``rayflow.connect.http.breaker``) and the transport's ``TransportError`` are kinds of
``HttpError``. No I/O, no ray.
"""

from __future__ import annotations

from rayflow.core.errors import ConfigError, RayflowError


class HttpError(RayflowError):
    """An HTTP component's request failed. ``status``: the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(" ".join(message.split()))


class HttpConfigError(ConfigError):
    """An HTTP component is configured wrongly."""
