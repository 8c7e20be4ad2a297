"""jaxnn: pure-functional JAX building blocks that make deep networks train.

Every public name is re-exported here; users write `jaxnn.adamw`, `jaxnn.batchnorm`.
"""

from jaxnn.optim.base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    global_norm,
    identity,
    stateless,
)
from jaxnn.optim.clipping import (
    ClipByLayerNormState,
    ClipState,
    adaptive_grad_clip,
    clip_by_global_norm,
    clip_by_layer_norm,
    clip_by_value,
    unitwise_norm,
)
from jaxnn.optim.optimizers import gd, sgd
from jaxnn.optim.safety import SkipNonfiniteState, all_finite, skip_nonfinite
from jaxnn.optim.transforms import (
    ScaleByScheduleState,
    TraceState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    trace,
)

__version__ = "0.1.0"

__all__ = [
    "ClipByLayerNormState",
    "ClipState",
    "EmptyState",
    "GradientTransformation",
    "ScaleByScheduleState",
    "SkipNonfiniteState",
    "TraceState",
    "adaptive_grad_clip",
    "all_finite",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "clip_by_layer_norm",
    "clip_by_value",
    "gd",
    "global_norm",
    "identity",
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "sgd",
    "skip_nonfinite",
    "stateless",
    "trace",
    "unitwise_norm",
]
