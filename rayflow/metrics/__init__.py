"""Metrics: recording a run's transitions and summarising runs (critical path, queue wait)."""

from rayflow.metrics.summary import percentile, run_metrics

__all__ = ["percentile", "run_metrics"]
