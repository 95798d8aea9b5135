"""Ctrl-C (SIGINT) and SIGTERM during ``rayflow run``: the run stops cleanly.

Owns the command's signal handlers while it runs (``Stopping``, a context manager). The
first signal asks the runs driven here to stop (``rayflow.service.interrupts``): in-flight
components are cancelled, the run is recorded CANCELLED with the signal as its error, its
lease is released, and ``rayflow resume RUN_ID`` finishes it from its checkpoints. Then
one line on stderr and exit code 128 + the signal (130 for SIGINT, 143 for SIGTERM). A
second signal exits at once, by that signal, leaving the run to be resumed once its
driver is gone. A signal the command started with ignored (``nohup``, a shell's
background job) stays ignored. Ray's ``ray.init`` installs a SIGTERM handler of its own:
``install`` again after connecting. Light at import: the service is loaded by the caller.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

import click

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by a first signal when nothing driven here would stop by itself."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopping:
    """``with Stopping(service) as stop:`` around a run the command drives and follows;
    ``stop.follow(handle)`` once the run has one, ``stop.check()`` after waiting for it."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.signum: int | None = None
        self.handle: Any = None
        self._stopped: list[Any] = []
        self._previous: dict[int, Any] = {}
        self._ignored = {sig for sig in SIGNALS if signal.getsignal(sig) is signal.SIG_IGN}
        self._service_side: Any = None   # rayflow.service.interrupts, loaded on entering

    def __enter__(self) -> Stopping:
        from rayflow.service import interrupts

        self._service_side = interrupts   # loaded here, never in a handler (which may interrupt an import)
        self.install()
        return self

    def install(self) -> None:
        for sig in SIGNALS:
            if sig not in self._ignored:
                self._previous.setdefault(sig, signal.getsignal(sig))
                signal.signal(sig, self._on_signal)

    def follow(self, handle: Any) -> None:
        self.handle = handle

    def check(self) -> None:
        """Raise Interrupted when a signal came (the run it stopped has ended by now)."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._exit_now(signum)
        self.signum = signum
        side = self._service_side
        self._stopped = side.ask_to_stop(self.service, f"interrupted by {signal.Signals(signum).name}")
        if not self._stopped or side.in_component(frame):
            raise Interrupted(signum)   # nothing here stops by itself: planning, a component in this thread

    def _run_id(self) -> str | None:
        return self.handle.run_id if self.handle else self._stopped[0].run.run_id if self._stopped else None

    def _exit_now(self, signum: int) -> None:
        run_id = self._run_id()
        run = f"; run {run_id} can be resumed once this process is gone" if run_id else ""
        if self._service_side is not None:
            self._service_side.release_output()
        click.echo(f"interrupted again by {signal.Signals(signum).name}: exiting now{run}", err=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if self.signum is None and not self._ray_sigterm(exc):
                return False
            status = self._service_side.settle(self.service, self._stopped, self.handle)
        finally:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
        click.echo(_line(signal.Signals(self.signum).name, self._run_id(), status), err=True)
        sys.exit(128 + self.signum)

    def _ray_sigterm(self, exc: BaseException | None) -> bool:
        """SIGTERM while ``ray.init`` ran: Ray's handler (``sys.exit(SIGTERM)``) had it. Taken
        as ours then: the runs driven here stop, and the command ends as for any SIGTERM."""
        if not (isinstance(exc, SystemExit) and exc.code == signal.SIGTERM
                and signal.getsignal(signal.SIGTERM) != self._on_signal):
            return False
        self.signum = signal.SIGTERM
        self._stopped = self._service_side.ask_to_stop(self.service, f"interrupted by {signal.SIGTERM.name}")
        return True


def _line(name: str, run_id: str | None, status: str | None) -> str:
    if run_id is None:
        return f"interrupted by {name} before the run started"
    if status == "SUCCEEDED":
        return f"interrupted by {name}: run {run_id} had SUCCEEDED already"
    if status in ("CANCELLED", "FAILED"):
        return f"interrupted by {name}: run {run_id} {status}; `rayflow resume {run_id}` finishes it"
    return f"interrupted by {name}: run {run_id} is {status}; it can be resumed once it stops"
