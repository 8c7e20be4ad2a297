"""The losses the examples need: softmax cross-entropy and mean squared error."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn._checks import check_floating_array, check_integer_array
from jaxnn._dtypes import accumulation_dtype


def softmax_cross_entropy(logits: Any, labels: Any) -> jax.Array:
    """Per-example cross-entropy of integer labels under softmax(logits).

    ℓ = −log softmax(z)_y = logsumexp(z) − z_y, with logsumexp computed as
    m + log Σ exp(z − m), m = max z, so no exponential overflows. Computed in
    float32 or wider for half-precision logits.

    Args:
      logits: array of shape (..., num_classes), floating.
      labels: integer array of shape (...), values in [0, num_classes).

    Returns:
      Losses of shape (...), in the dtype of `logits`. Under jit an out-of-range
      label gives NaN (eagerly it raises).

    Raises:
      TypeError: if `logits` is not floating or `labels` is not integer.
      ValueError: if the shapes do not match or a concrete label is out of range.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    check_floating_array("logits", logits)
    check_integer_array(
        "labels", labels, "integer class indices (one-hot labels: take argmax first)"
    )
    if logits.ndim < 1 or logits.shape[:-1] != labels.shape:
        raise ValueError(
            "logits must have shape labels.shape + (num_classes,), got logits "
            f"{logits.shape} and labels {labels.shape}"
        )
    num_classes = logits.shape[-1]
    if not isinstance(labels, jax.core.Tracer) and labels.size:
        # NumPy, not jnp: under a trace jnp.min of a constant would be traced too.
        concrete = np.asarray(labels)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels must be in [0, {num_classes}), got values in [{lo}, {hi}]"
            )
    z = logits.astype(accumulation_dtype(logits.dtype))
    m = lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(z - m), axis=-1)) + m[..., 0]
    picked = jnp.take_along_axis(
        z, labels[..., None], axis=-1, mode="fill", fill_value=jnp.nan
    )[..., 0]
    return (lse - picked).astype(logits.dtype)


def mean_squared_error(predictions: Any, targets: Any) -> jax.Array:
    """Mean over all elements of (predictions − targets)².

    The shapes must be equal: broadcasting an (N, 1) prediction against (N,)
    targets is a classic silent bug, so it is an error here.

    Args:
      predictions: floating array.
      targets: array of the same shape.

    Returns:
      A scalar in the promoted dtype (at least float32).

    Raises:
      ValueError: if the shapes differ.
      TypeError: if `predictions` is not floating.
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    check_floating_array("predictions", predictions)
    if predictions.shape != targets.shape:
        raise ValueError(
            "predictions and targets must have the same shape, got "
            f"{predictions.shape} and {targets.shape}"
        )
    acc = accumulation_dtype(predictions.dtype)
    diff = predictions.astype(acc) - targets.astype(acc)
    return jnp.mean(jnp.square(diff))
