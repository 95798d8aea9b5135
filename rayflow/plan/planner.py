"""Blueprint -> Plan: the DAG, its analysis, submission priorities and feasibility.

Owns every decision made before execution: upstream order of each call, the
critical-path-first priority (HEFT upward rank), actor pool grouping, streams and fused
groups (rayflow.plan.streams, rayflow.plan.fusion), the predicted durations and
resource requests a ``PlanSizing`` gives (rayflow.plan.sizing; one pass), and the check
that each resource request fits some node of the cluster. Pure; no Ray.

A Plan is a value: its mappings (``tasks``, ``inputs``, each Task's ``kwargs``) are
read-only (rayflow.plan.frozen), and a changed plan is a new one (``Plan.with_task``,
``Plan.with_tasks``, ``dataclasses.replace``). What changes while a run goes on (a task
run again with a larger request) is kept in the run state, never in the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rayflow.core.blueprint import Blueprint, Call, check_signature
from rayflow.core.errors import InfeasibleResourceError, SpecError
from rayflow.core.groups import Group
from rayflow.core.kinds import CallKind, is_dynamic_map
from rayflow.core.options import ComponentOptions
from rayflow.core.template import collect_inputs, expand_outputs, to_slots
from rayflow.data.batches import DEFAULT_BATCH_SIZE, batch_function
from rayflow.graph import Analysis, Dag, analyze, upward_ranks
from rayflow.plan.frozen import FrozenDict, frozen
from rayflow.plan.fusion import find_fused
from rayflow.plan.sizing import PlanSizing
from rayflow.plan.streams import find_streams


@dataclass(frozen=True)
class ClusterShape:
    """The resources of each alive node (Ray's names: CPU, GPU, memory, custom)."""

    nodes: tuple[Mapping[str, float], ...]

    def largest(self, resource: str) -> float:
        return max((n.get(resource, 0.0) for n in self.nodes), default=0.0)


@dataclass(frozen=True)
class Task:
    """What an executor needs to run one component: no NodeRefs, only Slots."""

    id: str
    fn: Callable[..., Any] | None
    fn_ref: str | None
    args: tuple
    kwargs: Mapping[str, Any]        # read-only (a FrozenDict)
    deps: tuple[str, ...]
    options: ComponentOptions
    priority: float
    pool: str | None = None          # actor pool key for kind="actor"
    inputs: tuple[tuple[str, int | None], ...] = ()   # what the call reads: (id, output index)
    cache_key: str | None = None     # set when the result may come from / go to the cache
    kind: CallKind = CallKind.TASK   # how the call is made (rayflow.core.kinds)

    def __post_init__(self) -> None:
        if type(self.kwargs) is not FrozenDict:
            object.__setattr__(self, "kwargs", frozen(self.kwargs))


def _settle(task: Task, **fields: Any) -> None:
    """Set ``fields`` of a Task this planning pass made and nobody else has seen yet (its
    priority, cache key, kind: known only once every task exists). A plan of 10,000
    components copied each task once per field with ``replace`` (a tenth of the planning,
    and the garbage collector's walks over the copies)."""
    task.__dict__.update(fields)


@dataclass(frozen=True)
class Plan:
    """A workflow ready to execute, and what ``rf.explain`` returns. Read-only: ``tasks``
    and ``inputs`` are FrozenDicts (they pickle: a plan travels to Ray actors)."""

    name: str
    dag: Dag
    analysis: Analysis
    tasks: Mapping[str, Task]
    order: tuple[str, ...]            # submission order: highest upward rank first
    output: Any
    failure_strategy: str
    max_concurrency: int | None
    target: str = ""
    inputs: Mapping[str, Any] = field(default_factory=FrozenDict)
    streams: tuple[tuple[str, ...], ...] = ()   # chains of batch components run as pipelines
    fused: tuple[tuple[str, ...], ...] = ()     # groups run as one Ray task each (rayflow.plan.fusion)
    groups: tuple[Group, ...] = ()              # members with their own max_concurrency / failure strategy

    def __post_init__(self) -> None:
        if type(self.tasks) is not FrozenDict:
            object.__setattr__(self, "tasks", FrozenDict(self.tasks))
        if type(self.inputs) is not FrozenDict:
            object.__setattr__(self, "inputs", frozen(self.inputs))

    def with_task(self, task: Task) -> Plan:
        """This plan with ``task`` in place of the planned task of the same id."""
        return self.with_tasks({task.id: task})

    def with_tasks(self, tasks: Mapping[str, Task]) -> Plan:
        """This plan with each of ``tasks`` (id -> task) in place of the planned one."""
        unknown = [cid for cid in tasks if cid not in self.tasks]
        if unknown:
            raise KeyError(f"not components of plan {self.name!r}: {unknown}")
        return replace(self, tasks=FrozenDict({**self.tasks, **tasks}))

    @property
    def levels(self) -> list[list[str]]:
        return self.analysis.levels

    @property
    def parallel_groups(self) -> list[list[str]]:
        return self.analysis.parallel_groups

    @property
    def critical_path(self) -> list[str]:
        return self.analysis.critical_path

    @property
    def critical_path_length(self) -> float:
        return self.analysis.critical_path_length

    @property
    def bottlenecks(self) -> list:
        return self.analysis.bottlenecks

    @property
    def output_ids(self) -> tuple[str, ...]:
        from rayflow.core.template import collect_refs
        return tuple(collect_refs(self.output))

    def resources(self) -> dict[str, dict[str, Any]]:
        return {cid: t.options.describe() for cid, t in self.tasks.items()}

    def to_dict(self) -> dict[str, Any]:
        out = self.analysis.to_dict()
        out.update(
            name=self.name,
            components=len(self.tasks),
            edges=self.dag.edge_count(),
            failure_strategy=self.failure_strategy,
            max_concurrency=self.max_concurrency,
            resources=self.resources(),
            outputs=list(self.output_ids),
            streams=[list(s) for s in self.streams],
            fused=[list(g) for g in self.fused],
            groups=[g.to_dict() for g in self.groups],
        )
        return out


def make_plan(
    blueprint: Blueprint,
    *,
    cluster: ClusterShape | None = None,
    estimates: Mapping[str, float] | None = None,
    require_functions: bool = True,
    sizing: PlanSizing | None = None,
) -> Plan:
    """Check and analyse ``blueprint``; raise a SpecError subclass naming the culprit.

    ``estimates``: component id -> expected seconds (the order and fusion use them).
    ``sizing``: predictions, asked only once the blueprint checked out: its
    ``durations`` are added to ``estimates`` before the order is fixed, its
    ``resources`` change the options of the components it sizes (after streams and
    fusion were decided on the declared requests, before the cluster check)."""
    dag = Dag(blueprint.deps())
    for call in blueprint.calls.values():
        if call.fn is None and require_functions:
            raise SpecError(
                f"component {call.id!r} of type {call.type!r} has no function to run; "
                "set 'function: module:callable'",
                component=call.id,
            )
        check_signature(call)
    multi = {cid: c.options.num_outputs for cid, c in blueprint.calls.items() if c.options.num_outputs}
    calls = blueprint.calls
    tasks = {cid: _task(calls[cid], 0.0, multi) for cid in dag.nodes}   # settled below, once known
    if sizing is not None:   # the model is asked about the tasks before their priorities are known
        predicted = sizing.durations(tasks)
        if predicted:
            estimates = {**(estimates or {}), **predicted}
    analysis = analyze(dag, estimates)
    ranks = upward_ranks(dag, estimates)
    topo = {node: i for i, node in enumerate(dag.nodes)}
    order = tuple(sorted(dag.nodes, key=lambda n: (-ranks[n], topo[n])))
    for cid, task in tasks.items():
        _settle(task, priority=ranks[cid])
    if any(t.options.cache is not None for t in tasks.values()):
        from rayflow.plan.cachekeys import cache_keys

        for cid, key in cache_keys(dag, calls, tasks).items():
            _settle(tasks[cid], cache_key=key)
    outputs = set(blueprint.output_ids)
    streams = _unbounded(find_streams(calls, dag, outputs), blueprint.groups)
    # fusion needs every component submitted up front: not under max_concurrency (nor a group's)
    fused = (find_fused(tasks, dag, outputs, estimates, exclude=_bounded(blueprint.groups))
             if blueprint.max_concurrency is None else ())
    for group in fused:   # the members' kinds, now that the streams and groups are known
        for m in group:
            _settle(tasks[m], kind=CallKind.FUSED)
    for stream in streams:
        for m in stream:
            _settle(tasks[m], kind=CallKind.STREAM)
    plan = Plan(
        name=blueprint.name,
        dag=dag,
        analysis=analysis,
        tasks=tasks,
        order=order,
        output=blueprint.output,
        failure_strategy=blueprint.failure_strategy,
        max_concurrency=blueprint.max_concurrency,
        target=blueprint.target,
        inputs=frozen(blueprint.inputs),
        streams=streams,
        groups=blueprint.groups,
        fused=fused,
    )
    if sizing is not None:
        plan = _sized(plan, sizing)
    if cluster is not None:
        check_cluster(plan, cluster)
    return plan


def _sized(plan: Plan, sizing: PlanSizing) -> Plan:
    """``plan`` with the resource requests ``sizing`` gives (options changed, tasks replaced)."""
    overrides = sizing.resources(plan.tasks)
    if not overrides:
        return plan
    tasks = plan.tasks
    return plan.with_tasks({cid: replace(tasks[cid], options=replace(tasks[cid].options, **changes))
                            for cid, changes in overrides.items()})


def _unbounded(streams: tuple[tuple[str, ...], ...], groups: tuple[Group, ...]) -> tuple[tuple[str, ...], ...]:
    """The streams none of whose members is in a group with ``max_concurrency``: a stream's
    members run all at once, which such a bound forbids (they run one after another)."""
    bounded = _bounded(groups)
    return tuple(s for s in streams if not bounded.intersection(s))


def _bounded(groups: tuple[Group, ...]) -> set[str]:
    """The members of the groups with a ``max_concurrency`` of their own (never streamed
    nor fused: both run members at once, without asking the run state)."""
    return {m for g in groups if g.max_concurrency is not None for m in g.members}


def _task(call: Call, priority: float, multi: Mapping[str, int]) -> Task:
    deps = call.deps
    args, kwargs, inputs = call.args, call.kwargs, tuple((d, None) for d in deps)
    if deps:
        if multi:   # some component has several outputs: read exactly which each call takes
            args, kwargs = expand_outputs(args, multi), expand_outputs(kwargs, multi)
            inputs = tuple(collect_inputs(kwargs, collect_inputs(args, {})))
            for dep, out in inputs:
                n = multi.get(dep)
                if out is not None and (n is None or not 0 <= out < n):
                    has = f"{n} outputs (num_outputs={n})" if n else "one output (no num_outputs)"
                    raise SpecError(f"component {call.id!r} reads output {out} of {dep!r}, which has {has}",
                                    component=call.id)
        index = {key: i for i, key in enumerate(inputs)}
        args, kwargs = to_slots(args, index), to_slots(kwargs, index)
    pool = None
    fn = call.fn
    if call.options.kind == "actor":
        pool = pool_key(call)
    elif call.options.kind == "batch" and fn is not None:
        fn = batch_function(fn, call.options.batch_size or DEFAULT_BATCH_SIZE)
    return Task(
        id=call.id,
        fn=fn,
        fn_ref=call.fn_ref,
        args=args,
        kwargs=kwargs,
        deps=deps,
        options=call.options,
        priority=priority,
        pool=pool,
        inputs=inputs,
        kind=CallKind.ACTOR if pool is not None else CallKind.MAP if is_dynamic_map(fn) else CallKind.TASK,
    )


def pool_key(call: Call) -> str:
    """Calls of one actor component with the same init and resources share one pool."""
    o = call.options
    init = repr(sorted(o.init_kwargs.items()))
    return f"{call.name}|{init}|{o.concurrency}|{sorted(o.ray_resources().items())}"


def check_cluster(plan: Plan, cluster: ClusterShape) -> None:
    """Raise InfeasibleResourceError for the first task no node of ``cluster`` could run."""
    checked: set[int] = set()   # components usually share a few option objects: check each once
    for task in plan.tasks.values():
        if id(task.options) not in checked:
            check_feasible(task.id, task.options, cluster)
            checked.add(id(task.options))


def check_feasible(component: str, options: ComponentOptions, cluster: ClusterShape) -> None:
    """Reject a request no single node could ever satisfy (Ray would leave it pending forever)."""
    request = {k: v for k, v in options.ray_resources().items() if v > 0}
    if not request or not cluster.nodes:
        return
    if any(all(node.get(k, 0.0) >= v for k, v in request.items()) for node in cluster.nodes):
        return
    for resource, amount in request.items():
        largest = cluster.largest(resource)
        if largest == 0 and resource not in ("CPU", "memory"):
            raise InfeasibleResourceError(
                f"component {component!r} needs {_amount(resource, amount)}, no node has any "
                f"(nodes: {len(cluster.nodes)})",
                component=component,
            )
        if largest < amount:
            raise InfeasibleResourceError(
                f"component {component!r} needs {_amount(resource, amount)}, "
                f"largest node has {_amount(resource, largest, bare=True)}",
                component=component,
            )
    raise InfeasibleResourceError(
        f"component {component!r} needs {_describe(request)} on one node; no node has all of it",
        component=component,
    )


def _amount(resource: str, amount: float, *, bare: bool = False) -> str:
    num = f"{amount:g}"
    if resource == "CPU":
        return num if bare else f"{num} CPUs"
    if resource == "GPU":
        return num if bare else f"{num} GPUs"
    if resource == "memory":
        return f"{amount / 2**30:.2f} GiB" if bare else f"{amount / 2**30:.2f} GiB of memory"
    return f"{num} {resource!r}" if bare else f"{num} of resource {resource!r}"


def _describe(request: Mapping[str, float]) -> str:
    return ", ".join(_amount(k, v) for k, v in request.items())
