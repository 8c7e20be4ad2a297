"""Gradient accumulation inside one step: `microbatch` a gradient function.

When a batch's activations do not fit, the step computes the gradient piece by piece
and averages; with `lax.scan` the compiled step holds the activations of one piece
at a time, so its peak memory falls by about the number of pieces while the result
is the full-batch gradient of a mean loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_callable
from jaxnn._dtypes import accumulation_dtype


def _check_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"num_microbatches must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"num_microbatches must be a positive int, got {value!r}")
    return int(value)


def _split(batch: Any, n: int) -> Any:
    """Every leaf (B, ...) as (B // n, n, ...): piece i is `leaf[i::n]`."""

    def leaf(path, x):
        shape = np.shape(x)
        where = jax.tree_util.keystr(path) or "<root>"
        if not shape:
            raise ValueError(
                f"microbatch: batch leaf {where} is a scalar; every leaf of the "
                "batch needs a leading (example) axis to split"
            )
        if shape[0] % n:
            raise ValueError(
                f"microbatch: batch leaf {where} has leading dimension {shape[0]}, "
                f"which num_microbatches={n} does not divide"
            )
        return jnp.reshape(x, (shape[0] // n, n, *shape[1:]))

    return jax.tree_util.tree_map_with_path(leaf, batch)


def _accumulator_dtype(where: str, dtype: Any) -> Any:
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"microbatch averages grad_fn's outputs over the pieces, but output "
            f"{where} has dtype {dtype}, which cannot be averaged; return it as a "
            "float (or outside the microbatched function)"
        )
    return accumulation_dtype(dtype)


def microbatch(
    grad_fn: Callable[..., Any], num_microbatches: int
) -> Callable[..., Any]:
    """Computes `grad_fn` on pieces of the batch and averages, to save memory.

    `microbatch(grad_fn, n)(params, batch, *args)` splits every leaf of `batch`
    along axis 0 into `n` pieces of `B / n` examples, calls
    `grad_fn(params, piece, *args)` on each inside `lax.scan`, and returns the
    mean of the outputs over the pieces. Only one piece's activations are alive
    at a time, so the activation memory of the step falls about `n`-fold (the
    pieces run one after the other, so the step is no faster). The sums are
    accumulated in float32 (or wider: float64 stays float64) and the result is
    cast back to the dtypes `grad_fn` returns, so bfloat16 gradients do not lose
    precision in the sum. With `n = 1` it calls `grad_fn` directly.

    Piece `i` holds examples `i, i + n, i + 2n, ...` (strided, so that a batch
    sharded along axis 0 keeps every device busy on every piece).

    What the average means:

    - For a loss that is a mean over the examples, the average of the pieces'
      gradients is the full-batch gradient (to rounding), and so is the average
      of the losses. A loss that is a sum over examples comes back divided by
      `n` (multiply by `n`); a loss with a batch-level term (a penalty on the
      params, a normalization by the batch's count of valid tokens) is averaged
      over the pieces, which equals the full-batch value only when every piece
      has the same count.
    - BatchNorm in training mode normalizes each piece with the piece's own
      statistics ("ghost batch norm", Hoffer et al. 2017): the gradients are
      those of the model on batches of `B / n`, not of `B`. Running statistics
      returned through the output (e.g. `((loss, bn_state), grads)`) come back
      averaged over the pieces: the running mean is updated with the full
      batch's mean, the running variance with the mean of the pieces'
      variances (smaller than the full batch's by the variance between the
      pieces' means).
    - `*args` (a PRNG key, say) go unchanged to every piece, so dropout draws the
      same mask pattern for each piece; put per-example keys in `batch` to vary
      it.

    Args:
      grad_fn: `grad_fn(params, batch, *args) -> out`, `out` any pytree of
        floating arrays: the grads, `(loss, grads)`, `((loss, aux), grads)`.
      num_microbatches: the number of pieces, a positive int that divides the
        leading dimension of every leaf of the batch.

    Returns:
      A function with the signature and output structure of `grad_fn`.

    Raises:
      TypeError: if `grad_fn` is not callable or `num_microbatches` is not an
        int; (when called) if an output of `grad_fn` is not floating.
      ValueError: if `num_microbatches` < 1; (when called) if a leaf of the
        batch is a scalar or its leading dimension is not divisible (names the
        leaf and both sizes).

    References:
      Hoffer, Hubara & Soudry, "Train longer, generalize better", NeurIPS 2017
      (ghost batch norm).
    """
    check_callable("grad_fn", grad_fn)
    n = _check_count(num_microbatches)

    @functools.wraps(grad_fn)
    def wrapped(params, batch, *args, **kwargs):
        if n == 1:
            return grad_fn(params, batch, *args, **kwargs)
        pieces = _split(batch, n)

        def piece(i):
            return jax.tree.map(
                lambda x: jax.lax.dynamic_index_in_dim(x, i, 1, keepdims=False),
                pieces,
            )

        def call(i):
            return grad_fn(params, piece(i), *args, **kwargs)

        out_shapes = jax.eval_shape(call, jnp.zeros((), jnp.int32))
        flat_shapes, treedef = jax.tree_util.tree_flatten_with_path(out_shapes)
        acc_dtypes = [
            _accumulator_dtype(jax.tree_util.keystr(p) or "<root>", s.dtype)
            for p, s in flat_shapes
        ]

        def body(acc, i):
            out = jax.tree.leaves(call(i))
            return [a + o.astype(a.dtype) for a, o in zip(acc, out, strict=True)], None

        zeros = [
            jnp.zeros(s.shape, d)
            for (_, s), d in zip(flat_shapes, acc_dtypes, strict=True)
        ]
        total, _ = jax.lax.scan(body, zeros, jnp.arange(n, dtype=jnp.int32))
        mean = [
            (t / jnp.asarray(n, t.dtype)).astype(s.dtype)
            for t, (_, s) in zip(total, flat_shapes, strict=True)
        ]
        return jax.tree.unflatten(treedef, mean)

    return wrapped
