"""The HTTP client of a ``rayflow server`` (``rf.Client``), usable without Ray.

``http`` holds the ``Client`` (the one importer of httpx in rayflow), ``handle`` the
``RemoteRun`` it answers, ``errors`` the exceptions its error answers become, ``sse`` the
event-stream reader and ``specs`` what a target becomes on the wire. Imports nothing of
rayflow but ``rayflow.core``: no ray, no FastAPI, no server, service, runs or execute.
"""

from rayflow.client.errors import (
    ClientAuthError,
    RemoteConflict,
    RemoteNotFound,
    RemoteSpecError,
    ServerError,
)
from rayflow.client.handle import RemoteRun
from rayflow.client.http import Client

__all__ = ["Client", "ClientAuthError", "RemoteConflict", "RemoteNotFound", "RemoteRun", "RemoteSpecError",
           "ServerError"]
