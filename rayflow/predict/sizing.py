"""From a prediction to a resource request, and from run history to a sizing report.

Owns the buffers, the buckets and the caps that turn predicted use into what a
component asks Ray for (``size``), the larger request after an OOM kill
(``oom_retry_memory``), and the requested-versus-used verdicts ``rayflow report``
prints (``report``). Pure: no ray, no scikit-learn, no I/O.

Buckets. Ray keeps one scheduling class per distinct resource shape, so requests are
rounded UP into a few sizes:

- CPUs: 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, ... (I/O-bound components, busy a tenth of
  the time, get a fraction of a core and pack many to a core);
- memory: 64 MiB x 2^k and 96 MiB x 2^k (64, 96, 128, 192, 256, 384 MiB, ...): at
  most 1.5x above the need, a dozen classes between 64 MiB and 4 GiB.

A request capped by the declared maximum or the largest node takes the cap as it is.

What Ray costs. Every task runs in a worker process of its own while it runs. Ray keeps
as many idle workers as the node has CPUs (its soft limit), starts at most that many at
once, about a second of CPU each on a small node, and kills idle ones above the limit
after about a second, so every run pays again for the extras. A fractional request lets
more tasks run at once than the node has CPUs, so Ray starts a worker for each: that
pays only when the task runs long enough (``FRACTIONAL_MIN_S``). ``size`` keeps a whole
core (or the declared request, when it is below one) for a shorter task unless no more
tasks than the node's CPUs may run at once (``concurrent``: then the workers Ray keeps
serve them all, reused from task to task). Memory is a logical scheduling resource in
Ray, not a limit: a request only keeps tasks that need much from sharing a node.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rayflow.predict.features import MAX_CPU_UTIL, is_oom
from rayflow.predict.rules import Prediction
from rayflow.store.port import ComponentRecord

MIB = 1 << 20
CPU_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)       # then powers of two
MEMORY_BASE = 64 * MIB
CPU_BUFFER = 1.2
MEMORY_BUFFER = 1.1
OVER_BELOW = 0.3        # used / requested under this: over-allocated
UNDER_ABOVE = 0.9       # peak memory / requested over this: under-allocated (OOM risk)
CPU_UNDER_ABOVE = 1.2   # cores busy / requested over this: under-allocated (it steals cores)
WORKER_START_S = 1.0    # Ray starting one worker process: about a second of a core on a small node
FRACTIONAL_MIN_S = 2 * WORKER_START_S   # a task shorter than this (p50) is not worth an extra worker:
# the start takes a core from the tasks already running, and the idle extra is killed after ~1 s


def cpu_bucket(cpus: float) -> float:
    """The smallest CPU bucket at least ``cpus``."""
    for bucket in CPU_BUCKETS:
        if cpus <= bucket:
            return bucket
    return float(2 ** math.ceil(math.log2(cpus)))


def memory_bucket(nbytes: float) -> int:
    """The smallest memory bucket (64 MiB x 2^k or 96 MiB x 2^k) at least ``nbytes``."""
    if nbytes <= MEMORY_BASE:
        return MEMORY_BASE
    k = math.floor(math.log2(nbytes / MEMORY_BASE))
    for candidate in (MEMORY_BASE << k, (MEMORY_BASE * 3 // 2) << k, MEMORY_BASE << (k + 1)):
        if candidate >= nbytes:
            return candidate
    return MEMORY_BASE << (k + 2)   # float rounding at the edge


@dataclass(frozen=True)
class Declared:
    """What a component declares: its request, and optional maxima sizing must not pass."""

    num_cpus: float = 1.0
    memory: int | None = None
    max_num_cpus: float | None = None
    max_memory: int | None = None

    @classmethod
    def of(cls, options: Any, *, max_num_cpus: float | None = None, max_memory: int | None = None) -> Declared:
        """From a ``ComponentOptions`` (or anything with ``num_cpus`` and ``memory``)."""
        return cls(float(options.num_cpus), options.memory, max_num_cpus, max_memory)


@dataclass(frozen=True)
class Sizing:
    """The request to submit with: CPUs, memory bytes (None: no memory request), and why."""

    num_cpus: float
    memory: int | None
    reason: str


def size(
    prediction: Prediction,
    declared: Declared,
    node_cpus: float,
    node_memory: int,
    *,
    concurrent: int | None = None,
    cpu_buffer: float = CPU_BUFFER,
    memory_buffer: float = MEMORY_BUFFER,
    fractional_min_s: float = FRACTIONAL_MIN_S,
) -> Sizing:
    """The request for a component predicted to use ``prediction``.

    From a model: CPUs = p90 utilisation x ``cpu_buffer`` (from one core up, at most the
    bucket of the utilisation itself: the buffer absorbs noise below a core, it does not
    add a core), memory = p90 peak x ``memory_buffer``, each rounded up into its bucket,
    then capped by the declared
    maximum and the largest node (``node_cpus``, ``node_memory``). What the rules
    predicted (no history, or a target never measured) keeps the declared value.

    A fraction of a core below the declared request is given only when it costs Ray no
    extra worker processes (``concurrent``, how many tasks may run at once beside this
    one, itself included, is at most ``node_cpus``; None: unknown, so it may) or the task's
    p50 duration is at least ``fractional_min_s``; else the request stays at one core
    (the declared one when it is below a core) and the reason says why."""
    if prediction.source != "model":
        return Sizing(declared.num_cpus, declared.memory,
                      f"declared request kept: no model ({prediction.reason or 'rules'})")
    if "cpu_util" in prediction.from_rules:
        cpus, cpu_why = declared.num_cpus, "cpu: declared (not measured)"
    else:
        cpus, cpu_why = _cpus(prediction, declared, node_cpus, cpu_buffer)
        cpus, cpu_why = _worth_a_worker(prediction, declared, cpus, cpu_why, node_cpus, concurrent,
                                        fractional_min_s)
    if "memory" in prediction.from_rules:
        memory, memory_why = declared.memory, "memory: declared (not measured)"
    else:
        need = prediction.memory_p90 * memory_buffer
        memory, capped = _capped(memory_bucket(need), [declared.max_memory, node_memory])
        memory_why = f"memory: p90 {_mib(prediction.memory_p90)} x {memory_buffer:g} -> {_mib(memory)}{capped}"
    return Sizing(cpus, None if memory is None else int(memory), f"{cpu_why}; {memory_why}")


def _cpus(prediction: Prediction, declared: Declared, node_cpus: float, cpu_buffer: float) -> tuple[float, str]:
    util = prediction.cpu_util_p90
    # the buffer covers noise around a fraction of a core; it must not turn a component
    # that keeps at most one core busy (util 0.9 on a busy node, or ~1.0) into a 2-CPU
    # request, which would halve how many run at once
    cpus, capped = _capped(cpu_need(util, cpu_buffer), [declared.max_num_cpus, node_cpus])
    kind = "I/O-bound, fractional CPU" if cpus < 1 else "CPU-bound"
    return cpus, f"cpu: p90 utilisation {util:.2f} x {cpu_buffer:g} -> {cpus:g} ({kind}{capped})"


def cpu_need(util: float, cpu_buffer: float = CPU_BUFFER) -> float:
    """The CPU bucket for ``util`` cores busy: ``util x cpu_buffer`` rounded up, never a core
    more than the utilisation's own bucket (at most one core busy: one core)."""
    whole = cpu_bucket(util * 0.9) if util >= 1.0 else 1.0   # 1.05 busy cores: one core
    return min(cpu_bucket(max(util, 0.0) * cpu_buffer), whole)


def _worth_a_worker(prediction: Prediction, declared: Declared, cpus: float, why: str, node_cpus: float,
                    concurrent: int | None, fractional_min_s: float) -> tuple[float, str]:
    """``cpus``, or the floor of one core (the declared request when below one) where a
    fraction would make Ray start worker processes the task is too short to pay for."""
    floor = min(float(declared.num_cpus), 1.0)
    if cpus >= floor:
        return cpus, why
    if concurrent is not None and concurrent <= node_cpus:
        return cpus, f"{why}; at most {concurrent} at once: the workers Ray keeps run them"
    if "duration" in prediction.from_rules:
        return floor, (f"kept num_cpus={floor:g}: a fractional request would start extra worker processes "
                       f"for a task of unknown duration (p90 utilisation {prediction.cpu_util_p90:.2f})")
    if prediction.duration_p50 < fractional_min_s:
        return floor, (f"kept num_cpus={floor:g}: a fractional request would start extra worker processes "
                       f"for a {_seconds(prediction.duration_p50)} task (p90 utilisation "
                       f"{prediction.cpu_util_p90:.2f}; a worker start pays from {fractional_min_s:g} s)")
    return cpus, f"{why}; {_seconds(prediction.duration_p50)} pays for a worker start"


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"


def _capped(value: float, caps: list[float | None]) -> tuple[float, str]:
    limit = min((c for c in caps if c is not None), default=math.inf)
    return (value, "") if value <= limit else (limit, f", capped at {limit:g}")


def oom_retry_memory(prediction: Prediction, last_request: int | None, largest_node: int) -> int:
    """Memory to ask for after an OOM kill: the larger of the p99 and twice the last
    request, bucketed, capped by the largest node. A result not above ``last_request``
    means no node has more to give: fail the component rather than retry."""
    want = max(prediction.memory_p99, 2.0 * (last_request or 0))
    return int(min(memory_bucket(want), largest_node))


# -- the report ----------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """Requested against used for one component id across runs, when out of line."""

    component_id: str
    runs: int
    requested_cpus: float
    used_cpus_p90: float | None           # cores busy (cpu_s / duration_s), p90 over runs
    cpu_verdict: str                      # "over-allocated", "under-allocated" or "ok"
    requested_memory: int | None
    peak_memory_p90: int | None
    memory_verdict: str                   # also "unrequested" when no memory was asked for
    oom_kills: int
    recommendation: str


def report(records: Iterable[ComponentRecord]) -> list[Allocation]:
    """The components whose CPU or memory request was out of line with their use, with
    the request to use instead; sorted by component id. Over-allocated: used/requested
    below ``OVER_BELOW``. Under-allocated: cores busy above ``CPU_UNDER_ABOVE`` x the
    request (a core fully busy on a 1-CPU request is right), peak memory above
    ``UNDER_ABOVE`` x the request, or any attempt killed for memory."""
    groups: dict[str, list[ComponentRecord]] = defaultdict(list)
    for r in records:
        if not r.cached:
            groups[r.component_id].append(r)
    out = [_allocation(cid, rs) for cid, rs in sorted(groups.items())]
    return [a for a in out if a is not None and (a.cpu_verdict != "ok" or a.memory_verdict not in ("ok", "unrequested"))]


def _allocation(cid: str, records: list[ComponentRecord]) -> Allocation | None:
    done = [r for r in records if r.state == "SUCCEEDED" and r.duration_s]
    ooms = sum(1 for r in records if is_oom(r.error))
    if not done and not ooms:
        return None
    utils = [min(r.cpu_s / r.duration_s, MAX_CPU_UTIL) for r in done if r.cpu_s is not None]
    peaks = [r.peak_rss_bytes for r in records if r.peak_rss_bytes]
    req_cpus = float(done[-1].resources.get("num_cpus", 1.0)) if done else 1.0
    req_mem = max((int(r.resources["memory"]) for r in records if r.resources.get("memory")), default=None)
    used, peak_p90 = _p90(utils), _p90(peaks)
    peak = None if peak_p90 is None else int(peak_p90)
    cpu_verdict = _verdict(used, req_cpus, CPU_UNDER_ABOVE)
    memory_verdict = "under-allocated" if ooms else (_verdict(peak, req_mem, UNDER_ABOVE) if req_mem else "unrequested")
    advice = []
    if used is not None and cpu_verdict != "ok":
        advice.append(f"num_cpus={cpu_need(used):g}")
    need = max(peak * MEMORY_BUFFER if peak else 0.0, 2.0 * req_mem if ooms and req_mem else 0.0)
    if need and memory_verdict not in ("ok", "unrequested"):
        advice.append(f"memory={_mib(memory_bucket(need))}")
    return Allocation(cid, len(done), req_cpus, used, cpu_verdict, req_mem, peak, memory_verdict, ooms,
                      ", ".join(advice) or "keep")


def _p90(values: list[float] | list[int]) -> float | None:
    return float(np.quantile(values, 0.9, method="higher")) if values else None


def _verdict(used: float | None, requested: float | None, under_above: float) -> str:
    if used is None or not requested:
        return "ok"
    ratio = used / requested
    return "over-allocated" if ratio < OVER_BELOW else "under-allocated" if ratio > under_above else "ok"


def _mib(nbytes: float | None) -> str:
    if nbytes is None:
        return "-"
    return f"{nbytes / 1024 ** 3:.1f}GiB" if nbytes >= 1024 ** 3 else f"{nbytes / MIB:.0f}MiB"
