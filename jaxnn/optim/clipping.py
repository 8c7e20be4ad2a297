"""Gradient clipping: by value, by global norm, per layer, and adaptive (AGC).

Each clip is a `GradientTransformation` meant to come first in a chain:
`chain(clip_by_global_norm(1.0), adamw(1e-3))`. Beyond optax:

- norms are accumulated in float32 (float64 for float64 leaves), so float16 or
  bfloat16 gradients of magnitude 1e3 do not overflow to inf;
- a zero gradient with a zero threshold gives zeros, never 0/0 = NaN;
- the pre-clip global L2 norm of the incoming gradients is kept in the state
  (`state.norm`, float32), so a jitted train step can log it from `opt_state`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnn._checks import check_nonnegative, check_tree_matches
from jaxnn._dtypes import accumulation_dtype
from jaxnn._norms import combine_norms, global_norm, l2_norm, norm_dtype
from jaxnn._trees import map_leaves, scale_tree
from jaxnn.optim.base import GradientTransformation


class ClipState(NamedTuple):
    """State of `clip_by_value`, `clip_by_global_norm` and `adaptive_grad_clip`.

    Attributes:
      norm: global L2 norm of the last gradients before clipping (float32, or
        float64 for float64 gradients); 0 before the first update.
    """

    norm: jax.Array


class ClipByLayerNormState(NamedTuple):
    """State of `clip_by_layer_norm`.

    Attributes:
      norm: global L2 norm of the last gradients before clipping.
      layer_norms: each leaf's own L2 norm before clipping, with the structure of
        the params (a scalar per leaf).
    """

    norm: jax.Array
    layer_norms: Any


def _clip_state_init(params: Any) -> ClipState:
    return ClipState(norm=jnp.zeros((), norm_dtype(params)))


def _scale_factor(norm: jax.Array, max_norm: Any) -> jax.Array:
    """max_norm / norm where norm > max_norm, else 1; never 0/0."""
    clip = norm > max_norm
    safe_norm = jnp.where(clip, norm, jnp.ones_like(norm))
    return jnp.where(clip, max_norm / safe_norm, jnp.ones_like(norm))


def clip_by_value(max_abs: float) -> GradientTransformation:
    """Clips every element of the updates to [−max_abs, +max_abs].

    Args:
      max_abs: the largest absolute value allowed, >= 0.

    Returns:
      A GradientTransformation with state `ClipState` (pre-clip global norm).

    Raises:
      ValueError: if a concrete `max_abs` is negative or NaN.
    """
    check_nonnegative("max_abs", max_abs)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        clipped = jax.tree.map(
            lambda g: jnp.clip(g, -max_abs, max_abs).astype(g.dtype), updates
        )
        return clipped, ClipState(norm=global_norm(updates).astype(state.norm.dtype))

    return GradientTransformation(_clip_state_init, update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescales the updates so their global L2 norm is at most `max_norm`.

    With ‖g‖ = sqrt(Σ over all leaves of Σ g²): if ‖g‖ > max_norm, every leaf is
    multiplied by max_norm / ‖g‖ (the direction is kept); otherwise the updates
    pass unchanged.

    Args:
      max_norm: the largest global norm allowed, >= 0.

    Returns:
      A GradientTransformation with state `ClipState` (pre-clip global norm).

    Raises:
      ValueError: if a concrete `max_norm` is negative or NaN.

    References:
      Pascanu et al., "On the difficulty of training recurrent neural networks",
      ICML 2013.
    """
    check_nonnegative("max_norm", max_norm)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = global_norm(updates).astype(state.norm.dtype)
        factor = _scale_factor(norm, max_norm)
        return scale_tree(updates, factor), ClipState(norm)

    return GradientTransformation(_clip_state_init, update)


def clip_by_layer_norm(max_norm: float) -> GradientTransformation:
    """Clips each leaf by its own L2 norm: the global-norm rule, layer by layer.

    Args:
      max_norm: the largest L2 norm allowed for any single leaf, >= 0.

    Returns:
      A GradientTransformation with state `ClipByLayerNormState`.

    Raises:
      ValueError: if a concrete `max_norm` is negative or NaN.
    """
    check_nonnegative("max_norm", max_norm)

    def init(params):
        return ClipByLayerNormState(
            norm=jnp.zeros((), norm_dtype(params)),
            layer_norms=jax.tree.map(
                lambda p: jnp.zeros((), accumulation_dtype(p.dtype)), params
            ),
        )

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_matches(
            updates, "updates", state.layer_norms, "state.layer_norms", shapes=False
        )
        layer_norms = jax.tree.map(l2_norm, updates)
        clipped = jax.tree.map(
            lambda g, n: scale_tree(g, _scale_factor(n, max_norm)), updates, layer_norms
        )
        new_state = ClipByLayerNormState(
            norm=global_norm(layer_norms).astype(state.norm.dtype),
            layer_norms=layer_norms,
        )
        return clipped, new_state

    return GradientTransformation(init, update)


def unitwise_norm(x: jax.Array) -> jax.Array:
    """L2 norm of each unit of `x`, broadcast back to the shape of `x`.

    Units follow optax and the AGC paper: the whole array for scalars and vectors
    (after squeezing unit axes), axis 0 for 2-D and 3-D arrays (dense kernels of
    shape (in, out), multi-head kernels), and every axis but the last for 4-D and
    5-D convolution kernels (HWIO, DHWIO), i.e. one norm per output channel.

    Args:
      x: an array of rank 0 to 5.

    Returns:
      An array of the shape of `x` in float32 or wider.

    Raises:
      ValueError: if `x` has more than 5 dimensions.
    """
    x = jnp.asarray(x)
    return jnp.broadcast_to(_unit_norms(x), x.shape)


def _unit_norms(x: jax.Array) -> jax.Array:
    """The norms of `unitwise_norm`, one per unit, with the reduced axes kept."""
    if sum(d != 1 for d in x.shape) <= 1:
        axes: tuple[int, ...] | None = None
    elif x.ndim in (2, 3):
        axes = (0,)
    elif x.ndim in (4, 5):
        axes = tuple(range(x.ndim - 1))
    else:
        raise ValueError(
            f"adaptive_grad_clip supports leaves of rank <= 5, got shape {x.shape}"
        )
    return l2_norm(x, axis=axes, keepdims=True)


def adaptive_grad_clip(clipping: float, eps: float = 1e-3) -> GradientTransformation:
    """Adaptive gradient clipping (AGC): bounds each unit's ‖g‖ by clipping·‖θ‖.

    For each unit (see `unitwise_norm`): if ‖g‖ > λ·max(‖θ‖, eps) then
    g ← g · λ·max(‖θ‖, eps) / ‖g‖, with λ = `clipping`. The `params` must be passed
    to `update`.

    Args:
      clipping: λ, the largest allowed ratio of gradient norm to parameter norm,
        >= 0.
      eps: floor on the parameter norm so zero-initialized units can still move,
        >= 0.

    Returns:
      A GradientTransformation with state `ClipState` (pre-clip global norm).

    Raises:
      ValueError: if a concrete `clipping` or `eps` is negative or NaN, or if
        `update` is called without `params`.

    References:
      Brock et al., "High-Performance Large-Scale Image Recognition Without
      Normalization", ICML 2021.
    """
    check_nonnegative("clipping", clipping)
    check_nonnegative("eps", eps)

    def clip_leaf(g, p):
        # Factors stay at the unit shape ((1, out) for a dense kernel) and are
        # broadcast inside the kernels that read g, never as a full-size array.
        g_norm = _unit_norms(g)
        limit = clipping * jnp.maximum(_unit_norms(p), eps).astype(g_norm.dtype)
        clip = g_norm > limit
        factor = jnp.where(clip, limit / jnp.where(clip, g_norm, 1), 1)
        return scale_tree(g, factor), g_norm

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "adaptive_grad_clip needs the params: call update(updates, state, "
                "params)"
            )
        check_tree_matches(updates, "updates", params, "params")
        clipped, unit_norms = map_leaves(clip_leaf, updates, params)
        # The global norm from the unit norms (Σ over units of ‖unit‖² = ‖g‖²):
        # no second pass over the gradients.
        dtype = state.norm.dtype
        leaves = jax.tree.leaves(unit_norms)
        norms = [n.astype(dtype).ravel() for n in leaves if n.size]
        norm = (
            combine_norms(jnp.concatenate(norms))
            if norms
            else jnp.zeros_like(state.norm)
        )
        return clipped, ClipState(norm)

    return GradientTransformation(_clip_state_init, update)
