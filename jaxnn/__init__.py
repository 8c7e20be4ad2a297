"""jaxnn: pure-functional JAX building blocks that make deep networks train.

Every public name is re-exported here; users write `jaxnn.adamw`, `jaxnn.batchnorm`.
"""

from jaxnn._masks import MaskedNode
from jaxnn._norms import global_norm
from jaxnn.activations import (
    leaky_relu,
    leaky_relu_derivative,
    relu,
    relu_derivative,
    sigmoid,
    sigmoid_derivative,
    tanh,
    tanh_derivative,
)
from jaxnn.batchnorm import BatchNormParams, BatchNormState, batchnorm, batchnorm_init
from jaxnn.diagnostics import GradientReport, gradient_norms, gradient_report
from jaxnn.dropout import dropout
from jaxnn.initializers import (
    constant,
    he_normal,
    he_uniform,
    lecun_normal,
    normal,
    uniform,
    variance_scaling,
    xavier_normal,
    xavier_uniform,
    zeros,
)
from jaxnn.layers import dense, dense_init
from jaxnn.losses import (
    mean_squared_error,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
)
from jaxnn.microbatching import microbatch
from jaxnn.optim.adaptive import (
    ScaleByAdamState,
    ScaleByCenteredRmsState,
    ScaleByCenteredRmsWithCountState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRssState,
    scale_by_adam,
    scale_by_rms,
    scale_by_rss,
)
from jaxnn.optim.base import (
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    Schedule,
    apply_updates,
    chain,
    identity,
    safe_increment,
    stateless,
    with_extra_args_support,
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
from jaxnn.optim.loss_scaling import (
    DynamicLossScaleState,
    dynamic_loss_scale,
    loss_scale,
)
from jaxnn.optim.masking import MaskedState, masked
from jaxnn.optim.optimizers import (
    adagrad,
    adam,
    adamw,
    gd,
    momentum,
    nadam,
    nesterov,
    rmsprop,
    sgd,
)
from jaxnn.optim.partition import PartitionState, label_by_path, partition
from jaxnn.optim.regularization import add_decayed_weights, add_l1
from jaxnn.optim.safety import SkipNonfiniteState, all_finite, skip_nonfinite
from jaxnn.optim.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    piecewise_constant_schedule,
    warmup_cosine_decay_schedule,
)
from jaxnn.optim.transforms import (
    ScaleByScheduleState,
    TraceState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    trace,
)
from jaxnn.regularizers import l1_penalty, l2_penalty

__version__ = "0.1.0"

__all__ = [
    "BatchNormParams",
    "BatchNormState",
    "ClipByLayerNormState",
    "ClipState",
    "DynamicLossScaleState",
    "EmptyState",
    "GradientReport",
    "GradientTransformation",
    "MaskedNode",
    "MaskedState",
    "PartitionState",
    "ScalarOrSchedule",
    "ScaleByAdamState",
    "ScaleByCenteredRmsState",
    "ScaleByCenteredRmsWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByRssState",
    "ScaleByScheduleState",
    "Schedule",
    "SkipNonfiniteState",
    "TraceState",
    "adagrad",
    "adam",
    "adamw",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_l1",
    "all_finite",
    "apply_updates",
    "batchnorm",
    "batchnorm_init",
    "chain",
    "clip_by_global_norm",
    "clip_by_layer_norm",
    "clip_by_value",
    "constant",
    "constant_schedule",
    "cosine_decay_schedule",
    "dense",
    "dense_init",
    "dropout",
    "dynamic_loss_scale",
    "exponential_decay",
    "gd",
    "global_norm",
    "gradient_norms",
    "gradient_report",
    "he_normal",
    "he_uniform",
    "identity",
    "l1_penalty",
    "l2_penalty",
    "label_by_path",
    "leaky_relu",
    "leaky_relu_derivative",
    "lecun_normal",
    "loss_scale",
    "masked",
    "mean_squared_error",
    "microbatch",
    "momentum",
    "nadam",
    "nesterov",
    "normal",
    "partition",
    "piecewise_constant_schedule",
    "relu",
    "relu_derivative",
    "rmsprop",
    "safe_increment",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "sgd",
    "sigmoid",
    "sigmoid_derivative",
    "skip_nonfinite",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "stateless",
    "tanh",
    "tanh_derivative",
    "trace",
    "uniform",
    "unitwise_norm",
    "variance_scaling",
    "warmup_cosine_decay_schedule",
    "with_extra_args_support",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
