"""The Arrow data plane: batch components and their inputs."""

from rayflow.data.batches import (
    DEFAULT_BATCH_SIZE,
    BatchFunction,
    apply_batches,
    batch_function,
    iter_batches,
)

__all__ = ["DEFAULT_BATCH_SIZE", "BatchFunction", "apply_batches", "batch_function", "iter_batches"]
