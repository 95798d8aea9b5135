"""Streams: chains of batch components that run as one pipeline.

A stream is a chain ``b1 -> b2 -> ... -> bk`` (k >= 2) of ``kind="batch"`` components
in which each ``b(i+1)`` reads only ``b(i)``'s output, as its first argument (its other
arguments are literal config), ``b(i)`` feeds nothing else and is not a workflow output
(``bk`` may be). On Ray the members run as a pipeline: each stage on its own actor,
stage ``i+1`` working on batch ``j-1`` while stage ``i`` works on batch ``j``, with at
most ``buffer_size`` batches in flight through the stream (the smallest of its
members'; default ``DEFAULT_BUFFER``), so memory is bounded by the buffer, not the data.
Every member keeps its own state and timings. Pure; no ray.
"""

from __future__ import annotations

from collections.abc import Mapping

from rayflow.core.blueprint import Call
from rayflow.core.template import NodeRef, collect_refs
from rayflow.graph import Dag

DEFAULT_BUFFER = 4


def _streamable(call: Call) -> bool:
    """A batch component whose data is its one positional argument and whose other
    arguments are literal config."""
    o = call.options
    return (o.kind == "batch" and o.num_outputs is None and call.fn is not None
            and len(call.args) == 1 and not collect_refs(call.kwargs))


def _links(call: Call, upstream: str) -> bool:
    """``call`` reads ``upstream``'s whole output as its first argument, and nothing else."""
    return call.args[0] == NodeRef(upstream) and call.deps == (upstream,)


def find_streams(calls: Mapping[str, Call], dag: Dag, outputs: set[str]) -> tuple[tuple[str, ...], ...]:
    """The maximal streams of the DAG, each in order, heads in topological order."""
    def next_of(cid: str) -> str | None:
        children = dag.children(cid)
        if len(children) != 1 or cid in outputs:
            return None
        child = children[0]
        return child if _streamable(calls[child]) and _links(calls[child], cid) else None

    streams, seen = [], set()
    for cid in dag.nodes:
        if cid in seen or not _streamable(calls[cid]):
            continue
        chain = [cid]
        while (nxt := next_of(chain[-1])) is not None:
            chain.append(nxt)
        seen.update(chain)
        if len(chain) >= 2:
            streams.append(tuple(chain))
    return tuple(streams)
