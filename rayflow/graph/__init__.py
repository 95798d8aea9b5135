"""Graph: the frozen DAG value and pure analysis over it. No Ray, no I/O."""

from rayflow.graph.analysis import Analysis, Bottleneck, analyze, upward_ranks
from rayflow.graph.dag import Dag

__all__ = ["Analysis", "Bottleneck", "Dag", "analyze", "upward_ranks"]
