"""The Python API of API.md: init, run, submit, explain, get_run, list_runs, resume;
and the composition root of a process.

Thin functions over the process's Service; no logic of their own beyond argument
handling. At import it registers the cluster's run tracker (``rayflow.server.tracker``)
as the service's ``RunHost``, loaded on the first hand-over only (so ``import rayflow``
does not import ray); the package ``rayflow`` imports this module, so every process
using rayflow is wired. Must not import ray itself.
"""

from __future__ import annotations

from typing import Any

from rayflow.plan import Plan
from rayflow.runs.handle import RunHandle
from rayflow.service import get_service, hosting
from rayflow.store.port import RunRecord


def _tracker_host() -> hosting.RunHost:
    from rayflow.server.tracker import TrackerHost  # ray loads with the first hand-over

    return TrackerHost()


hosting.register_run_host(_tracker_host)


def init(address: str | None = None, store: str | None = None, cache: str | None = None, *,
         num_cpus: int | None = None, checkpoints: str | None = None) -> None:
    """Configure rayflow and connect to Ray.

    Reuses a Ray session already started in this process; with none and no address,
    starts local Ray; ``address="auto"`` joins a running cluster, ``"ray://..."`` a
    remote one. ``store``: run-store URL (default RAYFLOW_STORE or
    ``sqlite:///~/.rayflow/rayflow.db``). ``cache``: result-cache URL. ``checkpoints``: where
    components' outputs are kept for resume: a directory or a ``pyarrow.fs`` URL such as
    ``s3://bucket/prefix`` (default RAYFLOW_CHECKPOINTS or ``~/.rayflow/checkpoints``;
    ``"off"`` keeps none).
    """
    service = get_service()
    service.configure(address=address, store=store, cache=cache, num_cpus=num_cpus, checkpoints=checkpoints)
    service.connect_ray()


def submit(target: Any, /, *, executor: str = "ray", run_id: str | None = None, **inputs: Any) -> RunHandle:
    """Start a run and return its handle at once. ``run_id`` of an existing run returns that run."""
    return get_service().submit(target, inputs, executor=executor, run_id=run_id)


def run(target: Any, /, *, executor: str = "ray", run_id: str | None = None,
        timeout: float | None = None, progress: bool | None = None, **inputs: Any) -> Any:
    """Run to the end and return the workflow's value; raise WorkflowFailed if it fails.

    ``executor="local"`` runs every component in this thread, one at a time (debugging).
    ``progress``: a bar of finished components; default: in notebooks and terminals.
    """
    from rayflow.runs.progress import wanted

    service = get_service()
    local = executor == "local"
    handle = service.submit(target, inputs, executor=executor, run_id=run_id, background=not local)
    return handle.result(timeout=timeout, progress=wanted(progress) and not local)


def explain(target: Any, /, **inputs: Any) -> Plan:
    """The plan without running anything: levels, parallel groups, critical path, bottlenecks."""
    return get_service().explain(target, inputs)


def get_run(run_id: str) -> RunHandle:
    """A handle for any run in the store, from any process."""
    return get_service().get_run(run_id)


def list_runs(status: str | None = None, limit: int = 100) -> list[RunRecord]:
    """Runs in the store, newest first; records with .run_id .name .status .created_at."""
    return get_service().list_runs(status=status, limit=limit)


def stats(limit: int = 100, name: str | None = None, status: str | None = None) -> dict[str, Any]:
    """Metrics across runs from the store: workflows and components per second, latency and
    queue-wait percentiles, queue depth, errors, retries, and per component the CPU time and
    memory requested against what was used (measured in the workers)."""
    return get_service().stats(limit=limit, name=name, status=status)


def shutdown() -> None:
    """Cancel runs this process still drives, flush the run store, and disconnect from Ray
    if rayflow connected (a Ray session you started yourself stays). rayflow can be used
    again afterwards; it reconnects on the next call."""
    import sys

    get_service().shutdown()
    if "ray" in sys.modules:
        from rayflow.execute.ray.session import shutdown as ray_shutdown

        ray_shutdown()


def resume(run_id: str, *, workflow: Any = None, force: bool = False, executor: str = "ray") -> RunHandle:
    """Finish a run that did not succeed (its driver crashed, or it failed or was cancelled),
    running only the components without a checkpoint; returns its handle at once.

    A SUCCEEDED run is returned as it is. Raises ``RunBusy`` while another live process
    drives the run (``force=True`` takes it over anyway). ``workflow``: the workflow object,
    when the one the run recorded cannot be imported here (defined in a script's
    ``__main__``)."""
    return get_service().resume(run_id, target=workflow, executor=executor, force=force)
