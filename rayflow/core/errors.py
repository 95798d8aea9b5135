"""The one exception tree of rayflow.

Owns every error type a user can catch. Must not import anything heavy.

    RayflowError
    ├── SpecError                   invalid workflow, raised before anything runs
    │   ├── CycleError              carries ``cycle``: the ids along the cycle
    │   ├── SelfLoopError           a component that depends on itself
    │   ├── UnknownComponentError   a connection or output names an id that does not exist
    │   ├── DuplicateIdError        two components share an id
    │   ├── FunctionImportError     ``module:callable`` that cannot be imported
    │   ├── SignatureError          missing required arguments or unknown ports
    │   ├── ResourceError           negative, NaN or unparseable resources
    │   └── InfeasibleResourceError no node of the cluster could ever satisfy a request
    ├── WorkflowFailed              a run ended FAILED; carries ``errors``: id -> message
    ├── RunCancelled                a run was cancelled while the caller waited for it
    ├── RunNotFound                 no run with that id in the store
    ├── RunBusy                     another live process holds the run's lease (resume)
    ├── NotResumable                this run cannot be resumed here (its inputs or its workflow
    │                               were not kept in a form another process can use)
    ├── DriverLost                  a run's driver is gone and the waiting process cannot resume it
    ├── ConfigError                 bad store/cache URL or option
    ├── StoreError                  the run store refused or failed a read or write
    │   └── StoreUnavailable        the run store cannot be reached now (server down or
    │                               restarting, no free connection); the writer retries it
    ├── ModelMismatch               stored resource-model bytes from another format or
    │                               scikit-learn version: retrain from the run history
    ├── CacheUnavailable            a cache tier could not do an explicit clear (its backend
    │                               is down); lookups and writes never raise it: they miss
    └── ComponentTimeout            a component ran past its ``timeout_s`` (raised in the worker)

Every message names the culprit (component id, field), the expected and the actual value.
"""

from __future__ import annotations


class RayflowError(Exception):
    """Base class of every rayflow error."""


class SpecError(RayflowError, ValueError):
    """An invalid workflow: raised before anything runs, naming the component(s)."""

    def __init__(self, message: str, *, component: str | None = None) -> None:
        super().__init__(message)
        self.component = component


class CycleError(SpecError):
    """The workflow has a cycle; ``cycle`` lists the ids along it, first id repeated last."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join(self.cycle)
        super().__init__(f"cycle between components: {path}", component=self.cycle[0])


class SelfLoopError(SpecError):
    """A component is connected to itself."""


class UnknownComponentError(SpecError):
    """A connection or output refers to a component id that does not exist."""


class DuplicateIdError(SpecError):
    """Two components share one id."""


class FunctionImportError(SpecError):
    """A ``module:callable`` reference cannot be imported."""


class SignatureError(SpecError):
    """A component's arguments do not fit its function (missing required, unknown port)."""


class ResourceError(SpecError):
    """A resource value is negative, NaN, or cannot be parsed."""


class InfeasibleResourceError(SpecError):
    """No node of the cluster could ever satisfy a component's resource request."""


class WorkflowFailed(RayflowError):
    """A run ended FAILED. ``errors`` maps each failed component id to its error: the one-line
    reason, then its traceback (the user's frames first) and the last lines of its log, where
    known (``tracebacks`` and ``logs`` hold those alone). The message's first line names the
    failed components; below it come the first failure's traceback and log tail."""

    def __init__(self, run_id: str, errors: dict[str, str], states: dict[str, str] | None = None,
                 tracebacks: dict[str, str] | None = None, logs: dict[str, str] | None = None) -> None:
        self.run_id = run_id
        self.reasons = {cid: (msg.splitlines() or [""])[0] for cid, msg in errors.items()}
        self.tracebacks = {cid: t for cid, t in (tracebacks or {}).items() if t}
        self.logs = {cid: t for cid, t in (logs or {}).items() if t}
        self.errors = {cid: _with_detail(msg, self.tracebacks.get(cid), self.logs.get(cid))
                       for cid, msg in errors.items()}
        self.failed = sorted(self.errors)
        self.states = dict(states or {})
        first = ", ".join(f"{cid}: {msg}" for cid, msg in list(self.reasons.items())[:3])
        more = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        head = f"run {run_id} failed in {len(self.errors)} component(s): {first}{more}"
        detail = next((self.errors[c][len(self.reasons[c]):] for c in self.errors
                       if c in self.tracebacks or c in self.logs), "")
        super().__init__(head + (f"\n{detail.strip(chr(10))}" if detail else ""))


def _with_detail(reason: str, traceback: str | None, log: str | None) -> str:
    text = reason
    if traceback:
        text += "\n" + traceback.rstrip("\n")
    if log:
        text += "\n--- the last lines it printed or logged ---\n" + log.rstrip("\n")
    return text


class RunCancelled(RayflowError):
    """The run was cancelled before it finished."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} was cancelled")


class RunNotFound(RayflowError, KeyError):
    """No run with this id exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r} in the run store")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ComponentNotFound(RayflowError, KeyError):
    """A run has no such component (or no such attempt of it)."""

    def __init__(self, message: str, *, component: str) -> None:
        super().__init__(message)
        self.component = component

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class RunBusy(RayflowError):
    """The run is driven by another process whose lease (heartbeat) is still live."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunExists(RunBusy):
    """A new run was asked for under an id the store already holds."""


class NotResumable(RayflowError):
    """A run cannot be resumed (here): its inputs were not JSON values, or its workflow was
    defined where another process cannot import it. Submit it again, or resume it with
    the workflow object."""


class DriverLost(RayflowError):
    """The process driving a run stopped renewing its lease, and the process asking could
    not resume it: ``rayflow resume RUN_ID`` (with the workflow, where needed) does."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class ConfigError(RayflowError, ValueError):
    """A configuration value (store or cache URL, option) is invalid."""


class StoreError(RayflowError):
    """The run store failed a read or write (a database error, a statement timeout)."""


class StoreUnavailable(StoreError):
    """The run store cannot be reached right now: its server is down or restarting, or no
    pooled connection came free in time. Transient: the StoreWriter keeps the records and
    retries with backoff."""


class CacheUnavailable(RayflowError):
    """A result-cache tier could not do what a user asked explicitly (``clear``): its
    backend (Redis, an object store) cannot be reached. Lookups and writes never raise
    it: an unreachable tier answers misses and drops writes."""


class ModelMismatch(RayflowError):
    """Stored model bytes were written by another format or scikit-learn version: retrain
    from the run history instead of trusting estimators unpickled across versions."""


class ComponentTimeout(RayflowError, TimeoutError):
    """A component ran longer than its ``timeout_s``."""

    def __init__(self, component: str, timeout_s: float) -> None:
        self.component = component
        self.timeout_s = timeout_s
        super().__init__(f"component {component!r} ran past its timeout_s={timeout_s:g}")

    def __reduce__(self):
        return (ComponentTimeout, (self.component, self.timeout_s))
