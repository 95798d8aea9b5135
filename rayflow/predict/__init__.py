"""Predict: what a component will use, learned from the run history, and what to ask for.

features (pure) -> model (scikit-learn, the only importer) -> sizing and ordering (pure).
The engine builds ``Sample``s from its plan and the run store, fits a ``ResourceModel``
off the critical path, and asks it for a ``Prediction`` per component; ``size`` turns
one into a request and ``choose_node``/``upward_ranks`` order and place the work. No ray.
"""

from rayflow.predict.features import Sample, is_oom, numeric_config, sample_from_record, to_matrix
from rayflow.predict.model import ModelMismatch, ResourceModel
from rayflow.predict.ordering import (
    NodeCapacity,
    NodeLoad,
    Request,
    Running,
    WeightedRoundRobin,
    choose_node,
    least_loaded,
    predictive,
    resource_aware,
    suggest_strategy,
    upward_ranks,
)
from rayflow.predict.rules import Prediction
from rayflow.predict.sizing import Allocation, Declared, Sizing, oom_retry_memory, report, size

__all__ = [
    "Allocation", "Declared", "ModelMismatch", "NodeCapacity", "NodeLoad", "Prediction", "Request",
    "ResourceModel", "Running", "Sample", "Sizing", "WeightedRoundRobin", "choose_node", "least_loaded",
    "is_oom", "numeric_config", "oom_retry_memory", "predictive", "report", "resource_aware", "sample_from_record",
    "size", "suggest_strategy", "to_matrix", "upward_ranks",
]
