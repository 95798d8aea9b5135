"""A fused group's call: every member run in one worker, one after another, each through ``invoke``.

Owns the plain data a fused call carries (a function table and one ``Member`` per
component), running the members in topological order, what the call returns, and turning
its outcome back into one Completion per member on the driver. See rayflow/plan/fusion.py
for which components are fused; rayflow/execute/ray/fused.py submits the call on Ray.

Each member keeps what an unfused call has: its own ``timeout_s``, timings, peak memory
and checkpoint blob (``invoke``), and retries of its ``retry_exceptions`` (and timeouts)
up to its ``max_retries``, in the worker. A member that fails stops only the members that
read it, directly or not (they are upstream-failed); the others still run. The call
returns one object per export (its output, or for a member with ``num_outputs`` each of
its outputs) and then one blob with every member's outcome. An export without a value
(its member failed or was upstream-failed) is a ``FailedOutput``: a call outside the
group that reads it fails with the failing member's error, so it is UPSTREAM_FAILED
exactly as if Ray had propagated an error, while consumers of the exports that succeeded
run as usual. A member output too large to travel inline is written to the run's
checkpoints by the call itself (``save``). Must not import ray.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rayflow.core.records import Completion
from rayflow.execute.worker.capture import LogTarget
from rayflow.execute.worker.invoke import (
    CallInfo,
    ComponentFailure,
    FailedOutput,
    RetryableFailure,
    call_fields,
    invoke,
    pack_meta,
    pack_timings,
    unpack_meta,
    unpack_timings,
)
from rayflow.plan.fusion import call_inputs


@dataclass(frozen=True, slots=True)
class Member:
    """What the worker needs to run one member of a fused group."""

    info: CallInfo
    fn: int                                         # index in the call's function table
    reads: tuple[tuple[int, int | None], ...] | None   # per input: (member index, output index), or
    #                                                    (-1 - k, None) for the call's argument k; None: every argument, in order
    max_retries: int
    export: int                                     # objects the call returns for it (0: not exported)

    @classmethod
    def of(cls, wire: tuple) -> Member:
        """A member from its wire form (plain tuples pickle several times faster than objects)."""
        return cls(CallInfo(*wire[0]), *wire[1:])


def members_of(plan: Any, group: tuple[str, ...], exported: set[str],
               checkpoints: bool = False, log: LogTarget | None = None) -> tuple[list[Any], tuple[tuple, ...]]:
    """The function table (each distinct function, or its "module:callable") and the members
    of ``group`` in wire form (see ``Member.of``). The call's arguments are the inputs the
    group reads from outside, in ``call_inputs`` order."""
    table: list[Any] = []
    index: dict[Any, int] = {}
    pos = {cid: i for i, cid in enumerate(group)}
    arg = {key: -1 - k for k, key in enumerate(call_inputs(group, plan.tasks))}
    everything = tuple(range(-1, -1 - len(arg), -1))
    members = []
    for cid in group:
        task = plan.tasks[cid]
        key = id(task.fn) if task.fn is not None else task.fn_ref
        fn = index.get(key)
        if fn is None:
            fn = index[key] = len(table)
            table.append(task.fn if task.fn is not None else task.fn_ref)
        o = task.options
        reads: tuple | None = tuple([(pos[d], out) if d in pos else (arg[(d, out)], None)
                                     for d, out in task.inputs])
        if reads and tuple(j for j, _ in reads) == everything:
            reads = None   # reads exactly the call's arguments, in order (a tree's head)
        members.append((call_fields(task, checkpoints, log), fn, reads, o.max_retries,
                        (o.num_outputs or 1) if cid in exported else 0))
    return table, tuple(members)


Save = Callable[[str, Any], None]


def run_members(fns: list[Callable[..., Any]], wire: tuple[tuple, ...], deps: tuple | list,
                context: Callable[[], dict[str, Any]], save: Save | None = None) -> tuple[list[Any], bytes]:
    """Run every member; return the exports' objects and the outcomes blob (see ``completions``)."""
    members = tuple(Member.of(w) for w in wire)
    base = dict(context())   # the worker's place and the call's attempt: the same for every member
    values: list[Any] = [None] * len(members)
    failures: list[ComponentFailure | None] = [None] * len(members)   # what a member's output stands for
    outcomes: list[Any] = []
    returned: list[Any] = []
    last = _last_readers(members)
    for i, m in enumerate(members):
        failure = None if m.reads is None else next(
            (failures[j] for j, _ in m.reads if j >= 0 and failures[j] is not None), None)
        if failure is not None:
            outcome: Any = failure.component   # upstream-failed, inside the group
        else:
            args = deps if m.reads is None else [deps[-1 - j] if j < 0 else values[j] if o is None else values[j][o]
                                                 for j, o in m.reads]
            outcome, values[i], failure = _run_one(fns[m.fn], m, args, base, save)
        failures[i] = failure
        outcomes.append(outcome)
        if m.export:
            if failure is None:
                returned.extend(values[i] if m.info.num_outputs is not None else (values[i],))
            else:
                returned.extend([FailedOutput.of(failure)] * m.export)
        for j in (i, *(j for j, _ in m.reads or () if j >= 0)):
            if last[j] <= i:
                values[j] = None   # nothing later in the group reads it: free it early
    place = {k: base[k] for k in ("node_id", "worker_id") if base.get(k)}
    return returned, pickle.dumps((place, outcomes), protocol=pickle.HIGHEST_PROTOCOL)


def _last_readers(members: tuple[Member, ...]) -> list[int]:
    """For each member, the index of the last member reading it (its own when none does)."""
    last = list(range(len(members)))
    for k, m in enumerate(members):
        for j, _ in m.reads or ():
            if j >= 0:
                last[j] = k
    return last


def _run_one(fn: Callable[..., Any], m: Member, args: Any, base: dict[str, Any],
             save: Save | None) -> tuple[Any, Any, ComponentFailure | None]:
    """(outcome, value, failure) of one member: outcome is its packed meta (succeeded; its
    meta dict when it reported an outcome), a tuple (failed) or the id of the upstream whose
    failure it got (an input of the head)."""
    attempt = 0
    while True:
        ctx = base if not attempt else {**base, "attempt": base.get("attempt", 0) + attempt}
        try:
            value, meta = invoke(fn, m.info, args, lambda c=ctx: c)
        except RetryableFailure as failure:
            if failure.component == m.info.id and attempt < m.max_retries:
                attempt += 1
                continue
            return _failed(m, failure), None, failure
        except ComponentFailure as failure:
            return _failed(m, failure), None, failure
        if meta.get("checkpoint") == b"":
            _save_large(m, value, meta, save)
        return pack_timings(meta), value, None   # (a meta with a log or an outcome: as it is)


def _failed(m: Member, failure: ComponentFailure) -> Any:
    if failure.component != m.info.id:
        return failure.component   # the head read a FailedOutput: its upstream failed
    meta = pack_meta(failure.meta)
    return (failure.one_line(), failure.detail, meta, failure.timed_out)


def _save_large(m: Member, value: Any, meta: dict[str, Any], save: Save | None) -> None:
    """An output too large to travel inline, written to the checkpoints here. If that fails,
    an export is left for the driver to save from its object (b""); an internal output
    has no object to save from, so it has no checkpoint (a resume runs it again)."""
    try:
        if save is None:
            raise RuntimeError("no checkpoint location")
        save(m.info.id, value)
        del meta["checkpoint"]
    except Exception:  # noqa: BLE001 - a lost checkpoint costs a rerun on resume, not the run
        if not m.export:
            del meta["checkpoint"]


def completions(group: tuple[str, ...], blob: bytes) -> list[Completion]:
    """One Completion per member from a fused call's outcomes blob."""
    place, outcomes = pickle.loads(blob)
    out = []
    for cid, o in zip(group, outcomes, strict=True):
        kind = type(o)
        if kind is bytes:
            out.append(Completion(cid, True, unpack_timings(o, place)))
        elif kind is dict:   # a member that reported a log or an outcome beyond its timings
            out.append(Completion(cid, True, o))
        elif kind is str:
            out.append(Completion(cid, False, {}, f"upstream {o!r} failed", upstream=o))
        else:
            error, detail, meta, timed_out = o
            out.append(Completion(cid, False, unpack_meta(meta), error, detail, timed_out))
    return out
