"""A real rayflow server for a test, in this process: ``rayflow.server.main.build`` (local
executor, a SQLite store in the test's folder) served by uvicorn on a free loopback port,
in a thread. ``live_server`` is the fixture; ``LiveServer.url`` is what a client dials.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

START_S = 20.0


@dataclass
class LiveServer:
    url: str
    store_url: str
    server: Any            # rayflow.server.main.Server
    uvicorn: Any           # uvicorn.Server
    thread: threading.Thread

    @property
    def store(self) -> Any:
        return self.server.service.store

    def token(self, scope: str = "admin") -> str:
        """A new token of ``scope`` in the server's store (plain text, as created)."""
        from rayflow.server import tokens

        return tokens.create(self.store, scope, f"test-{scope}")[0]

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=10)
        self.server.stop(hand_back=True)
        self.server.service.shutdown()


def start_server(store_url: str, *, auth: str = "none", executor: str = "local") -> LiveServer:
    """Build a server over ``store_url`` and serve it until ``LiveServer.stop``."""
    import uvicorn

    from rayflow.server.main import build

    server = build(store_url, executor=executor, auth=auth)
    server.start()
    config = uvicorn.Config(server.app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not served.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.stop(hand_back=False)
            raise RuntimeError("the test's rayflow server did not start")
        time.sleep(0.02)
    port = served.servers[0].sockets[0].getsockname()[1]
    return LiveServer(f"http://127.0.0.1:{port}", store_url, server, served, thread)


@pytest.fixture
def live_server(tmp_path):
    """A rayflow server (no auth, local executor) on a free loopback port for one test."""
    live = start_server(f"sqlite:///{tmp_path / 'server.db'}")
    yield live
    live.stop()


@pytest.fixture
def token_server(tmp_path):
    """As ``live_server``, with ``--auth token``."""
    live = start_server(f"sqlite:///{tmp_path / 'server.db'}", auth="token")
    yield live
    live.stop()
