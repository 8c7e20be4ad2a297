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
from jaxnn._norms import clip_norms, combine_norms, global_norm, l2_norm, norm_dtype
from jaxnn._trees import scale_tree
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
      layer_norms: shape (L,): each leaf's own L2 norm before clipping, in the
        order of `jax.tree.leaves(updates)` (`jax.tree.unflatten(treedef,
        layer_norms)` gives them the params' structure). One vector rather than
        a params-structured tree of scalars, so `optax.tree.map_params` (which
        maps every params-structured tree of a state as if it held params)
        leaves it alone.
    """

    norm: jax.Array
    layer_norms: jax.Array


def _clip_state_init(params: Any) -> ClipState:
    return ClipState(norm=jnp.zeros((), norm_dtype(params)))


def _scale_factor(norm: jax.Array, max_norm: Any) -> jax.Array:
    """max_norm / norm where norm > max_norm, else 1; never 0/0."""
    clip = norm > max_norm
    safe_norm = jnp.where(clip, norm, jnp.ones_like(norm))
    return jnp.where(clip, max_norm / safe_norm, jnp.ones_like(norm))


def _scale(g: jax.Array, factor: jax.Array) -> jax.Array:
    """g·factor in g's dtype; a real factor scales a complex g without a cast."""
    if jnp.iscomplexobj(g):
        return g * factor.astype(g.dtype)
    return scale_tree(g, factor)


def _global_from(norms: list[jax.Array], dtype: Any) -> jax.Array:
    """sqrt(Σ nᵢ²) of per-leaf scalar norms (0 for none), without overflow.

    Stacks scalars only: no array of the tree is concatenated, so the user's
    shardings are kept.
    """
    if not norms:
        return jnp.zeros((), dtype)
    return combine_norms(jnp.stack([n.astype(dtype) for n in norms]))


def clip_by_value(max_abs: float) -> GradientTransformation:
    """Clips every element of the updates to [−max_abs, +max_abs].

    Args:
      max_abs: the largest absolute value allowed, >= 0.

    Returns:
      A GradientTransformation with state `ClipState` (pre-clip global norm).

    Raises:
      ValueError: if a concrete `max_abs` is negative or NaN.
      TypeError: if an update is complex (complex numbers have no order; optax's
        `clip` raises too).
    """
    check_nonnegative("max_abs", max_abs)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        for path, g in jax.tree.leaves_with_path(updates):
            if jnp.iscomplexobj(g):
                raise TypeError(
                    f"clip_by_value: updates{jax.tree_util.keystr(path)} is complex "
                    f"({jnp.result_type(g)}); complex numbers have no order to clip "
                    "by value (clip_by_global_norm clips them by |g|)"
                )
        clipped = jax.tree.map(
            lambda g: jnp.clip(g, -max_abs, max_abs).astype(g.dtype), updates
        )
        return clipped, ClipState(norm=global_norm(updates).astype(state.norm.dtype))

    return GradientTransformation(_clip_state_init, update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescales the updates so their global L2 norm is at most `max_norm`.

    With ‖g‖ = sqrt(Σ over all leaves of Σ |g|²): if ‖g‖ > max_norm, every leaf is
    multiplied by max_norm / ‖g‖ (the direction is kept); otherwise the updates
    pass unchanged. ‖g‖ is `global_norm`'s, exact for any finite input.

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
        return jax.tree.map(lambda g: _scale(g, factor), updates), ClipState(norm)

    return GradientTransformation(_clip_state_init, update)


def clip_by_layer_norm(max_norm: float) -> GradientTransformation:
    """Clips each leaf by its own L2 norm: the global-norm rule, layer by layer.

    For each leaf g: if ‖g‖ > max_norm, g ← g · max_norm / ‖g‖.

    Norms are summed in float32 or wider and guarded against overflow only, with
    one fallback shared by all leaves (`lax.cond`, taken when a sum of squares is
    inf). Underflow is not guarded: a norm below ~1e-18 (float32) may read as 0 or
    with reduced relative precision, which cannot change whether or how much a
    leaf is clipped unless `max_norm` itself is that small.

    Args:
      max_norm: the largest L2 norm allowed for any single leaf, >= 0.

    Returns:
      A GradientTransformation with state `ClipByLayerNormState` (the pre-clip
      global norm and the (L,) vector of per-leaf norms).

    Raises:
      ValueError: if a concrete `max_norm` is negative or NaN, or if the updates
        do not have as many leaves as the state has norms.
    """
    check_nonnegative("max_norm", max_norm)

    def init(params):
        dtype = norm_dtype(params)
        return ClipByLayerNormState(
            norm=jnp.zeros((), dtype),
            layer_norms=jnp.zeros((len(jax.tree.leaves(params)),), dtype),
        )

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        leaves, treedef = jax.tree.flatten(updates)
        if state.layer_norms.shape != (len(leaves),):
            raise ValueError(
                f"state.layer_norms does not match the updates: shape "
                f"{state.layer_norms.shape} for {len(leaves)} leaves; was the state "
                "built by init on params of another structure?"
            )
        _, norms = clip_norms(leaves, [None] * len(leaves))
        clipped = [
            _scale(g, _scale_factor(n, max_norm))
            for g, n in zip(leaves, norms, strict=True)
        ]
        dtype = state.norm.dtype
        new_state = ClipByLayerNormState(
            norm=_global_from(norms, dtype),
            layer_norms=(
                jnp.stack([n.astype(dtype) for n in norms])
                if norms
                else state.layer_norms
            ),
        )
        return jax.tree.unflatten(treedef, clipped), new_state

    return GradientTransformation(init, update)


def _unit_axes(
    x: jax.Array, axis: int | tuple[int, ...] | None
) -> int | tuple[int, ...] | None:
    """The axes `unitwise_norm` reduces for `x` (None: the whole array)."""
    if axis is not None:
        return axis
    if sum(d != 1 for d in x.shape) <= 1:
        return None
    if x.ndim in (2, 3):
        return (0,)
    if x.ndim in (4, 5):
        return tuple(range(x.ndim - 1))
    raise ValueError(
        f"unitwise_norm infers the units of arrays of rank <= 5, got shape "
        f"{x.shape}: pass axis for other shapes"
    )


def unitwise_norm(x: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    """L2 norm of each unit of `x`, broadcast back to the shape of `x`.

    A unit is a slice of `x` along `axis`. With axis=None (optax's rule and the AGC
    paper's), units follow the rank: the whole array for scalars and vectors
    (after squeezing unit axes), axis 0 for 2-D and 3-D arrays (dense kernels of
    shape (in, out), multi-head kernels), and every axis but the last for 4-D and
    5-D convolution kernels (HWIO, DHWIO), i.e. one norm per output channel.

    Args:
      x: an array (rank 0 to 5 if `axis` is None).
      axis: the axis or axes to reduce over; None infers them from the rank.

    Returns:
      An array of the shape of `x` in float32 or wider.

    Raises:
      ValueError: if `axis` is None and `x` has more than 5 dimensions.
    """
    x = jnp.asarray(x)
    norm = l2_norm(x, axis=_unit_axes(x, axis), keepdims=True)
    return jnp.broadcast_to(norm, x.shape)


def adaptive_grad_clip(
    clipping: float, eps: float = 1e-3, axis: int | tuple[int, ...] | None = None
) -> GradientTransformation:
    """Adaptive gradient clipping (AGC): bounds each unit's ‖g‖ by clipping·‖θ‖.

    For each unit (see `unitwise_norm`): if ‖g‖ > λ·max(‖θ‖, eps) then
    g ← g · λ·max(‖θ‖, eps) / ‖g‖, with λ = `clipping`. The `params` must be passed
    to `update`.

    Norms are summed in float32 or wider and guarded against overflow only, with
    one fallback shared by all units of all leaves (`lax.cond`, taken when a sum
    of squares is inf). Underflow is not guarded: a unit norm below ~1e-18
    (float32) may read as 0 or with reduced relative precision, which cannot
    change a decision or a factor unless the threshold λ·max(‖θ‖, eps) is itself
    that small (eps below ~1e-18).

    Args:
      clipping: λ, the largest allowed ratio of gradient norm to parameter norm,
        >= 0.
      eps: floor on the parameter norm so zero-initialized units can still move,
        >= 0.
      axis: the axis or axes of a unit, for every leaf (as optax); None infers
        them from each leaf's rank (see `unitwise_norm`).

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

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "adaptive_grad_clip needs the params: call update(updates, state, "
                "params)"
            )
        check_tree_matches(updates, "updates", params, "params")
        gs, treedef = jax.tree.flatten(updates)
        ps = treedef.flatten_up_to(params)  # type: ignore[attr-defined]
        axes = [_unit_axes(g, axis) for g in gs]
        # One shared overflow fallback for the norms of both trees.
        unit_norms, whole_norms = clip_norms(gs + ps, axes + axes)
        clipped = []
        for g, g_norm, p_norm in zip(
            gs, unit_norms[: len(gs)], unit_norms[len(gs) :], strict=True
        ):
            # Factors stay at the unit shape ((1, out) for a dense kernel) and are
            # broadcast inside the kernels that read g, never as a full-size array.
            limit = clipping * jnp.maximum(p_norm, eps).astype(g_norm.dtype)
            clip = g_norm > limit
            factor = jnp.where(clip, limit / jnp.where(clip, g_norm, 1), 1)
            clipped.append(_scale(g, factor))
        # The global norm from each leaf's whole norm: scalars, no concatenation.
        norm = _global_from(whole_norms[: len(gs)], state.norm.dtype)
        return jax.tree.unflatten(treedef, clipped), ClipState(norm)

    return GradientTransformation(_clip_state_init, update)
