"""HTTP connector components (``type: http``): requests from a component's items, pooled
per host, rate-limited, behind a circuit breaker, retried.

``http_call`` is the code of a plain HTTP component, ``http_batch`` the code of a
batch-kind stage (``rayflow.connect.http.call``). Per host and per process there is one
pooled client (``client``, the one module importing httpx), one token bucket
(``ratelimit``) and one circuit breaker (``breaker``); ``stats()`` reports their counters
and ``reset()`` forgets them (tests). ``template`` reads URL templates and cuts items into
requests, ``request`` sends one request with its retries. No ray.
"""

from __future__ import annotations

from rayflow.connect.http.breaker import CircuitOpen
from rayflow.connect.http.call import http_batch, http_call
from rayflow.connect.http.client import reset, stats
from rayflow.connect.http.errors import HttpConfigError, HttpError

__all__ = ["CircuitOpen", "HttpConfigError", "HttpError", "http_batch", "http_call", "reset", "stats"]
