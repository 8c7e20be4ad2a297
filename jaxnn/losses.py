"""The losses the examples need: softmax cross-entropy and mean squared error.

Both softmax cross-entropies have optax's names, signatures and meaning:
`softmax_cross_entropy` takes class probabilities (one-hot or soft labels) and
`softmax_cross_entropy_with_integer_labels` takes class indices.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn._checks import check_axis, check_floating_array
from jaxnn._dtypes import accumulation_dtype, promote_types

Axis = int | tuple[int, ...]


def _class_axes(
    axis: Any, shape: tuple[int, ...], *, allow_none: bool
) -> tuple[int, ...]:
    """`axis` (an int, a tuple of ints, or None for all) as a tuple of axes >= 0."""
    if axis is None and allow_none:
        return tuple(range(len(shape)))
    if isinstance(axis, tuple | list):
        axes = tuple(check_axis("axis", a, shape) for a in axis)
        if len(set(axes)) != len(axes) or not axes:
            raise ValueError(f"axis must name distinct axes, got {axis!r}")
        return axes
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        kinds = (
            "an int, a tuple of ints or None"
            if allow_none
            else "an int or a tuple of ints"
        )
        raise TypeError(f"axis must be {kinds}, got {axis!r}")
    return (check_axis("axis", axis, shape),)


def _where_mask(where: Any, logits: jax.Array, axis: Any) -> jax.Array | None:
    """The mask `where` (logits' or the batch shape) broadcast to logits' shape."""
    if where is None:
        return None
    mask = jnp.asarray(where)
    if mask.ndim != logits.ndim:
        mask = jnp.expand_dims(mask, axis)
    try:
        return jnp.broadcast_to(mask.astype(jnp.bool_), logits.shape)
    except ValueError:
        raise ValueError(
            "where must have the shape of logits or of the batch (logits without "
            f"axis {axis!r}), got where {jnp.shape(where)} and logits {logits.shape}"
        ) from None


def _log_normalizer(
    z: jax.Array, axes: tuple[int, ...], mask: jax.Array | None
) -> tuple[jax.Array, jax.Array | None]:
    """The log Σ exp(z) over `axes` (kept as size 1), only where `mask`, stably.

    Returns the normalizer and, with a mask, whether each slice includes any
    element (a slice with none gets a finite placeholder, so gradients stay finite).
    """
    m = jnp.max(z, axis=axes, keepdims=True, where=mask, initial=-jnp.inf)
    m = lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
    shifted = z - m
    if mask is not None:
        shifted = jnp.where(mask, shifted, -jnp.inf)
    total = jnp.sum(jnp.exp(shifted), axis=axes, keepdims=True)
    if mask is None:
        return jnp.log(total) + m, None
    anything = jnp.any(mask, axis=axes, keepdims=True)
    return jnp.log(jnp.where(anything, total, 1.0)) + m, anything


def softmax_cross_entropy(
    logits: Any, labels: Any, axis: Axis | None = -1, where: Any = None
) -> jax.Array:
    r"""Cross-entropy of class probabilities `labels` under softmax(logits).

    ℓ = −Σ_j y_j log softmax(z)_j = −Σ_j y_j (z_j − logsumexp(z)), the sum over
    the class axis (or axes), with logsumexp(z) = m + log Σ exp(z − m),
    m = max z, so no exponential overflows. Computed in float32 or wider for
    half-precision logits. Same signature and meaning as
    `optax.softmax_cross_entropy`: `labels` are probabilities (one-hot or soft);
    for integer class indices use `softmax_cross_entropy_with_integer_labels`.

    Args:
      logits: floating array of unnormalized log-probabilities.
      labels: floating array of the shape of `logits`: the target distribution
        along `axis`.
      axis: the class axis, a tuple of class axes, or None for all axes.
      where: optional boolean mask of the elements to include, of the shape of
        `logits` or of the batch (the shape of `logits` without `axis`, which
        then applies to the whole slice). Excluded classes take no probability
        in the softmax and add nothing to the sum; a slice with no included
        class gives 0.

    Returns:
      Losses of the shape of `logits` without `axis`, in the promoted dtype of
      `logits` and `labels`.

    Raises:
      TypeError: if `logits` is not floating, if `labels` is integer (class
        indices: use `softmax_cross_entropy_with_integer_labels`) or not
        floating, or if `axis` is not an int, a tuple of ints or None.
      ValueError: if the shapes differ or `axis` is out of range.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    check_floating_array("logits", logits)
    if not jnp.issubdtype(labels.dtype, jnp.floating):
        raise TypeError(
            "labels must be class probabilities (a floating array of the shape of "
            f"logits), got dtype {labels.dtype} and shape {labels.shape}; for "
            "integer class indices use softmax_cross_entropy_with_integer_labels"
        )
    if logits.ndim < 1 or labels.shape != logits.shape:
        raise ValueError(
            "labels must have the shape of logits (probabilities over the classes), "
            f"got logits {logits.shape} and labels {labels.shape}"
        )
    axes = _class_axes(axis, logits.shape, allow_none=True)
    mask = _where_mask(where, logits, axis if axis is not None else axes)
    acc = promote_types(accumulation_dtype(logits.dtype), labels.dtype)
    z = logits.astype(acc)
    lse, _ = _log_normalizer(z, axes, mask)
    terms = labels.astype(acc) * (z - lse)
    loss = -jnp.sum(terms, axis=axes, where=mask)
    return loss.astype(promote_types(logits.dtype, labels.dtype))


def softmax_cross_entropy_with_integer_labels(
    logits: Any, labels: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    r"""Per-example cross-entropy of integer labels under softmax(logits).

    ℓ = −log softmax(z)_y = logsumexp(z) − z_y, with logsumexp computed as
    m + log Σ exp(z − m), m = max z, so no exponential overflows. Computed in
    float32 or wider for half-precision logits. Same signature and meaning as
    `optax.softmax_cross_entropy_with_integer_labels`; for probabilities
    (one-hot or soft labels) use `softmax_cross_entropy`.

    Args:
      logits: floating array of shape batch + classes.
      labels: integer array of the batch shape (`logits` without `axis`),
        values in [0, num_classes). With a tuple `axis`, num_classes is the
        number of elements of a slice over those axes and a label is a flat
        (row-major) index into the slice, as in optax.
      axis: the class axis, or a tuple of class axes.
      where: optional boolean mask of the classes to include in the softmax
        normalizer, of the shape of `logits` or of the batch; a slice with no
        included class gives 0 (as in optax).

    Returns:
      Losses of the batch shape, in the dtype of `logits`. Under jit an
      out-of-range label gives NaN (eagerly it raises).

    Raises:
      TypeError: if `logits` is not floating, if `labels` is not integer
        (probabilities: use `softmax_cross_entropy`), or if `axis` is not an int
        or a tuple of ints.
      ValueError: if the shapes do not match, `axis` is out of range or a
        concrete label is out of range.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    check_floating_array("logits", logits)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            "labels must be integer class indices, got dtype "
            f"{labels.dtype}; for class probabilities (one-hot or soft labels) use "
            "softmax_cross_entropy"
        )
    if logits.ndim < 1:
        raise ValueError(f"logits must have a class axis, got shape {logits.shape}")
    axes = _class_axes(axis, logits.shape, allow_none=False)
    mask = _where_mask(where, logits, axis)
    batch_axes = tuple(i for i in range(logits.ndim) if i not in axes)
    batch_shape = tuple(logits.shape[i] for i in batch_axes)
    if labels.shape != batch_shape:
        raise ValueError(
            "labels must have the shape of logits without the class axis "
            f"{axis!r}, got logits {logits.shape} and labels {labels.shape}"
        )
    # Class axes last, flattened to one (a label is a flat index into the slice).
    order = batch_axes + axes
    z = logits.astype(accumulation_dtype(logits.dtype))
    z = z.transpose(order).reshape((*batch_shape, -1))
    if mask is not None:
        mask = mask.transpose(order).reshape((*batch_shape, -1))
    num_classes = z.shape[-1]
    if not isinstance(labels, jax.core.Tracer) and labels.size:
        # NumPy, not jnp: under a trace jnp.min of a constant would be traced too.
        concrete = np.asarray(labels)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels must be in [0, {num_classes}), got values in [{lo}, {hi}]"
            )
    lse, anything = _log_normalizer(z, (-1,), mask)
    picked = jnp.take_along_axis(
        z, labels[..., None], axis=-1, mode="fill", fill_value=jnp.nan
    )
    loss = (lse - picked)[..., 0]
    if anything is not None:
        loss = jnp.where(anything[..., 0], loss, 0.0)
    return loss.astype(logits.dtype)


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
