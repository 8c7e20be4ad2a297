"""Batch normalization with explicit parameters and running-statistics state.

For each feature c, over the m elements of the batch (every axis but `axis`):
  μ = (1/m) Σ xᵢ,  σ² = (1/m) Σ (xᵢ − μ)²,  x̂ᵢ = (xᵢ − μ) / √(σ² + ε),
  yᵢ = γ x̂ᵢ + β.
Training normalizes with the batch's (μ, σ²) and returns running averages
  running ← momentum · running + (1 − momentum) · batch_statistic
(the flax convention: momentum weights the old value; biased variance; the state
starts at mean 0, var 1). Inference normalizes with the running statistics.

Numerics beyond flax.linen.BatchNorm (whose default computes σ² = E[x²] − E[x]²):
  * σ² is accurate on data with a large offset. The moments are taken of
    d = x − k, with k the first element of each feature in the batch (the "shifted
    data" algorithm): E[d²] − E[d]² has no catastrophic cancellation because k lies
    within the data's spread, and the cost is one single pass like flax's.
  * Statistics are reduced in float32 (or wider) for bf16/fp16 inputs; the output
    keeps the dtype of `x`.
  * Training mode has an analytic backward pass (`jax.custom_vjp`),
    dx = γ/√(σ²+ε) · (g − mean(g) − x̂ · mean(g·x̂)), dγ = Σ g·x̂, dβ = Σ g,
    which reads the inputs fewer times than autodiff of the forward pass. Forward-
    mode differentiation (`jax.jvp`, `jax.jacfwd`) of training mode is therefore
    not supported without `axis_name`; reverse mode (`jax.grad`, `jax.vjp`) is.
  * The returned running statistics carry no gradient (`stop_gradient`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn._checks import (
    check_axis,
    check_bool,
    check_floating_array,
    check_floating_dtype,
    check_in_range,
    check_positive_int,
)
from jaxnn._dtypes import accumulation_dtype


class BatchNormParams(NamedTuple):
    """Learnable parameters of batch normalization.

    Attributes:
      scale: γ, shape (num_features,), initialized to 1.
      bias: β, shape (num_features,), initialized to 0.
    """

    scale: jax.Array
    bias: jax.Array


class BatchNormState(NamedTuple):
    """Running statistics of batch normalization (not trained by gradients).

    Attributes:
      mean: running mean, shape (num_features,), float32 or wider, starts at 0.
      var: running (biased) variance, same shape and dtype, starts at 1.
    """

    mean: jax.Array
    var: jax.Array


def batchnorm_init(
    num_features: int, dtype: Any = jnp.float32
) -> tuple[BatchNormParams, BatchNormState]:
    """Initial parameters (γ = 1, β = 0) and state (mean 0, var 1).

    Args:
      num_features: size C of the feature axis (positive int).
      dtype: dtype of the parameters. The state is kept in float32 or wider, so
        bf16/fp16 models keep accurate running statistics.

    Returns:
      `(BatchNormParams(scale, bias), BatchNormState(mean, var))`.

    Raises:
      TypeError: if `num_features` is not an int or `dtype` is not floating.
      ValueError: if `num_features` < 1.
    """
    num_features = check_positive_int("num_features", num_features)
    dtype = check_floating_dtype("dtype", dtype)
    stats = accumulation_dtype(dtype)
    params = BatchNormParams(
        scale=jnp.ones((num_features,), dtype), bias=jnp.zeros((num_features,), dtype)
    )
    state = BatchNormState(
        mean=jnp.zeros((num_features,), stats), var=jnp.ones((num_features,), stats)
    )
    return params, state


def _shift(x: jax.Array, axis: int, axis_name: Any) -> jax.Array:
    """The per-feature shift k: the batch's first element of each feature."""
    first = tuple(slice(None) if i == axis else slice(0, 1) for i in range(x.ndim))
    k = lax.stop_gradient(x[first])
    if axis_name is not None:
        # Every participant must shift by the same k for the moments to combine.
        k = lax.pmean(k, axis_name)
    return k


def _moments(d: jax.Array, axes: tuple[int, ...], axis_name: Any):
    """Mean and biased variance of x from the shifted d = x − k (returns E[d], σ²)."""
    m1 = jnp.mean(d, axes, keepdims=True)
    m2 = jnp.mean(d * d, axes, keepdims=True)
    if axis_name is not None:
        m1, m2 = lax.pmean((m1, m2), axis_name)
    # E[d²] − E[d]² ≥ 0 in exact arithmetic; clip the rounding error.
    return m1, jnp.maximum(m2 - m1 * m1, 0)


def _bn_forward(x, scale, bias, eps, axis, axis_name):
    """Training forward pass in the accumulation dtype; see the module docstring."""
    axes = tuple(i for i in range(x.ndim) if i != axis)
    acc = accumulation_dtype(x.dtype)
    xf = x.astype(acc)
    k = _shift(xf, axis, axis_name)
    d = xf - k
    m1, var = _moments(d, axes, axis_name)
    r = lax.rsqrt(var + eps.astype(acc))
    y = (d - m1) * (r * scale.astype(acc)) + bias.astype(acc)
    return y.astype(x.dtype), k + m1, var, (d, m1, r)


@partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _bn_train(x, scale, bias, eps, axis, x_dtype):
    y, mean, var, _ = _bn_forward(x, scale, bias, eps, axis, None)
    return y, mean, var


def _bn_train_fwd(x, scale, bias, eps, axis, x_dtype):
    y, mean, var, (d, m1, r) = _bn_forward(x, scale, bias, eps, axis, None)
    # d = x − k is saved instead of x: the backward pass needs x − μ = d − E[d],
    # which is then formed without cancellation.
    return (y, mean, var), (d, m1, r, scale, bias, eps)


def _bn_train_bwd(axis, x_dtype, res, cts):
    d, m1, r, scale, bias, eps = res
    # The mean/var outputs only feed the stop-gradient running statistics, so
    # their cotangents are zero and ignored.
    g = cts[0].astype(d.dtype)
    axes = tuple(i for i in range(d.ndim) if i != axis)
    m = math.prod(d.shape[i] for i in axes)
    db = jnp.sum(g, axes, keepdims=True)
    # Σ g·(d − E[d]) = Σ g·d − E[d]·Σ g; the multiply-reduce reads g and d only.
    gc = jnp.sum(g * d, axes, keepdims=True) - m1 * db
    ds = r * gc
    s = scale.astype(d.dtype).reshape(r.shape)
    dx = (s * r) * (g - db / m - (d - m1) * (r * r * gc / m))
    deps = jnp.sum(-0.5 * r * r * s * ds)
    return (
        dx.astype(x_dtype),
        ds.reshape(scale.shape).astype(scale.dtype),
        db.reshape(bias.shape).astype(bias.dtype),
        deps.astype(eps.dtype),
    )


_bn_train.defvjp(_bn_train_fwd, _bn_train_bwd)


def _check_args(params, state, x, training, momentum, eps, axis):
    check_bool("training", training, "it selects the code path")
    check_in_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
    check_in_range("eps", eps, 0.0, math.inf)
    check_floating_array("x", x)
    axis = check_axis("axis", axis, x.shape)
    c = x.shape[axis]
    for name, arr in (
        ("params.scale", params.scale),
        ("params.bias", params.bias),
        ("state.mean", state.mean),
        ("state.var", state.var),
    ):
        if np.shape(arr) != (c,):
            raise ValueError(
                f"{name} has shape {np.shape(arr)} but x has {c} features on axis "
                f"{axis} (x shape {x.shape}); was batchnorm_init called with "
                f"num_features={c}?"
            )
    return axis


def batchnorm(
    params: BatchNormParams,
    state: BatchNormState,
    x: Any,
    *,
    training: bool,
    momentum: float = 0.99,
    eps: float = 1e-5,
    axis: int = -1,
    axis_name: Any = None,
) -> tuple[jax.Array, BatchNormState]:
    """Normalizes `x` per feature; returns the output and the new running state.

    Training: y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch statistics over every
    axis except `axis`, and the running statistics are updated as
    running ← momentum·running + (1 − momentum)·batch (biased σ²_B, as flax).
    Inference: y = γ·(x − mean)/√(var + ε) + β with the running statistics, and the
    state is returned unchanged. Numerics match `flax.linen.BatchNorm` with the
    same momentum and epsilon, with an accurate variance on offset data (see the
    module docstring).

    Args:
      params: `BatchNormParams(scale, bias)`, each of shape (C,).
      state: `BatchNormState(mean, var)`, each of shape (C,).
      x: input with C features on `axis`, e.g. (N, C) or NHWC (N, H, W, C).
      training: required; True uses (and updates) batch statistics.
      momentum: weight of the old running value, in [0, 1].
      eps: ε ≥ 0 added to the variance.
      axis: the feature axis.
      axis_name: a named axis (shard_map, pmap or vmap) across which the batch is
        split; the statistics are then those of the whole batch.

    Returns:
      `(y, new_state)`: y with the shape and dtype of `x`, and the new
      `BatchNormState` (the same object when not training).

    Raises:
      TypeError: if `training` is not a bool, `axis` not an int, or `x` not floating.
      ValueError: if `axis` is out of range, the params or state do not have C
        features, `momentum` or `eps` is out of range, or a training batch has
        only one element per feature (its variance is meaningless).

    References:
      Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
      Reducing Internal Covariate Shift", ICML 2015. Chan, Golub & LeVeque,
      "Algorithms for computing the sample variance", 1983 (shifted data).
    """
    x = jnp.asarray(x)
    axis = _check_args(params, state, x, training, momentum, eps, axis)
    c = x.shape[axis]
    bshape = tuple(c if i == axis else 1 for i in range(x.ndim))
    acc = accumulation_dtype(x.dtype)

    if not training:
        mean = jnp.asarray(state.mean).astype(acc).reshape(bshape)
        var = jnp.asarray(state.var).astype(acc).reshape(bshape)
        mul = lax.rsqrt(var + jnp.asarray(eps, acc)) * params.scale.astype(acc).reshape(
            bshape
        )
        y = (x.astype(acc) - mean) * mul + params.bias.astype(acc).reshape(bshape)
        return y.astype(x.dtype), state

    count = x.size // c
    if axis_name is not None:
        count *= lax.axis_size(axis_name)
    if count < 2:
        raise ValueError(
            f"training batchnorm needs more than one element per feature to "
            f"estimate a variance, got x of shape {x.shape} with feature axis "
            f"{axis}; use training=False (running statistics) for single examples"
        )
    scale = params.scale.reshape(bshape)
    bias = params.bias.reshape(bshape)
    eps_arr = jnp.asarray(eps, acc)
    if axis_name is None:
        y, mean, var = _bn_train(x, scale, bias, eps_arr, axis, x.dtype)
    else:
        # Collectives inside a custom_vjp would need hand-written transposes for
        # each of shard_map, pmap and vmap; autodiff of the plain forward pass
        # handles all three.
        y, mean, var, _ = _bn_forward(x, scale, bias, eps_arr, axis, axis_name)
    mean = lax.stop_gradient(mean).reshape(c)
    var = lax.stop_gradient(var).reshape(c)
    new_state = BatchNormState(
        mean=(momentum * state.mean + (1 - momentum) * mean).astype(state.mean.dtype),
        var=(momentum * state.var + (1 - momentum) * var).astype(state.var.dtype),
    )
    return y, new_state
