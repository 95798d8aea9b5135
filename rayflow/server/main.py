"""``rayflow server``: one long-lived process that is the cluster's control plane.

Owns assembling a server (``build``: the service, the runner, the control plane, the
HTTP app and its metrics) and running it (``serve``: connect to Ray, serve HTTP with
uvicorn until SIGTERM or SIGINT, then stop accepting, hand the runs driven here back
with their leases released, and exit). The server is a Ray driver whose job lasts as
long as it does, so the worker processes of the runs it drives stay warm. It binds
loopback by default and refuses any other address unless tokens are required.
uvicorn is imported here alone.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import signal
import socket
from dataclasses import dataclass
from typing import Any

from rayflow.core.errors import ConfigError
from rayflow.server import tokens
from rayflow.server.plane import ControlPlane
from rayflow.server.runner import Runner

log = logging.getLogger("rayflow.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
DEFAULT_MAX_RUNS = 64
AUTH_MODES = ("auto", "token", "none")


@dataclass
class Server:
    """A built server: ``app`` serves HTTP; ``start`` begins claiming runs, ``stop`` ends."""

    app: Any
    plane: ControlPlane
    runner: Runner
    service: Any
    auth: str
    metrics: Any

    def start(self) -> None:
        self.runner.start()

    def stop(self, *, hand_back: bool = True) -> int:
        """Stop accepting and claiming; hand the runs driven here back. How many."""
        self.plane.accepting = False
        handed = self.runner.stop(hand_back=hand_back)
        self.service.flush()
        return handed


def build(store_url: str | None = None, *, executor: str = "ray", auth: str = "auto", limits: Any = None,
          address: str | None = None, max_runs: int = DEFAULT_MAX_RUNS, lease_s: float | None = None,
          url: str = "", service: Any = None) -> Server:
    """Assemble a server over its own ``Service`` (a fresh one unless given)."""
    from rayflow.server.http import ServerMetrics, create_app
    from rayflow.server.http.limits import Limits
    from rayflow.service import Service, Settings

    if auth not in AUTH_MODES:
        raise ConfigError(f"--auth {auth!r}: expected one of {', '.join(AUTH_MODES)}")
    if service is None:
        service = Service(Settings(store_url=store_url, address=address, lease_s=lease_s))
    store = service.store
    if auth == "auto":
        auth = "token" if tokens.any_tokens(store) else "none"
    lease = service.lease_s
    server_id = f"{socket.gethostname()}-{secrets.token_hex(3)}"
    runner = Runner(service, server_id=server_id, url=url, executor=executor, max_runs=max_runs, lease_s=lease)
    plane = ControlPlane(service, runner, executor=executor)
    metrics = ServerMetrics()
    pool = getattr(store, "pool_stats", None)
    metrics.set_sources(plane.in_flight, pool)
    app = create_app(plane, auth=auth, limits=limits or Limits(), metrics=metrics)
    server = Server(app=app, plane=plane, runner=runner, service=service, auth=auth, metrics=metrics)

    def finished(active: Any) -> None:
        runner.finished(active.run.run_id)
        if active.lost or active.handing_back:
            return
        metrics.observe_run(active.run, active.recorder.records(features=False),
                            cache=active.cache.counts() if active.cache is not None else None)

    service.finished_hooks.append(finished)
    return server


def check_bind(host: str, auth: str) -> None:
    """A non-loopback address serves anyone who can reach it: only with tokens required."""
    if auth == "token" or _loopback(host):
        return
    raise ConfigError(f"--host {host}: a non-loopback address needs --auth token (and a token: "
                      "`rayflow token create --scope admin`); without tokens the server binds 127.0.0.1 only")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, address: str | None = None,
          store_url: str | None = None, auth: str = "auto", max_runs: int = DEFAULT_MAX_RUNS,
          lease_s: float | None = None, executor: str = "ray") -> None:
    """Run a server until SIGTERM/SIGINT (blocking); see the module docstring."""
    import uvicorn

    from rayflow.core import gcpause

    if not logging.getLogger().handlers:   # a server's log is its operators' view: say what it does
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    url = f"http://{host}:{port}"
    server = build(store_url, executor=executor, auth=auth, address=address, max_runs=max_runs,
                   lease_s=lease_s, url=url)
    check_bind(host, server.auth)
    if server.auth == "token" and not tokens.any_tokens(server.service.store):
        raise ConfigError("--auth token: the store holds no token yet; make one with "
                          "`rayflow token create --scope admin`")
    gcpause.own_process()   # a long-lived process of rayflow's: the collector is ours to tune
    if executor == "ray":
        server.service.connect_ray()
    server.start()
    log.info("rayflow server %s at %s (auth %s, store %s)", server.runner.server_id, url, server.auth,
             server.service.store.url)
    config_ = uvicorn.Config(server.app, host=host, port=port, log_level="info", access_log=False,
                             timeout_graceful_shutdown=5)
    # uvicorn handles SIGTERM/SIGINT while it serves, then restores the handlers it found and
    # raises the signal again: with the defaults that would end the process before the runs
    # are handed back, so the handlers it finds (and restores) ignore it
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.Server(config_).run()   # returns after SIGTERM/SIGINT, once HTTP has drained
    finally:
        handed = server.stop(hand_back=True)
        log.info("rayflow server %s stopped; %d run(s) handed back", server.runner.server_id, handed)
        server.service.shutdown()
