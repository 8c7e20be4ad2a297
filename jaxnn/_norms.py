"""Norm numerics: l2_norm, global_norm, clip_norms, combine_norms, norm_dtype.

A private module: `global_norm` is re-exported as `jaxnn.global_norm`; the rest
serves the clips and the diagnostics. Every norm is accumulated in float32 or
wider. In `l2_norm` and `global_norm`, magnitudes whose squares would overflow or
underflow are rescaled by a power of two, so the result is accurate to rounding
for every finite input:

    ‖x‖ = sqrt(Σ (c·xᵢ)²) / c,   c = 1 unless Σ xᵢ² overflowed or may have
                                  underflowed (see `_rescale_factor`).

The rescaled pass runs under `lax.cond` (or a Python branch when the predicate is
concrete), so ordinary inputs pay for one fused pass only. `clip_norms`, for the
clips, guards against overflow only, with one cond for all the arrays it is given:
underflow cannot change a clip's decision (see its docstring).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn._checks import check_array_tree
from jaxnn._control import cond
from jaxnn._dtypes import accumulation_dtype, promote_types


def _widen(x: Any) -> jax.Array:
    """|x| for complex x, then cast to the accumulation dtype."""
    x = jnp.asarray(x)
    acc = accumulation_dtype(x.dtype)
    if jnp.iscomplexobj(x):
        x = jnp.abs(x)
    return x.astype(acc)


def _rescale_factor(sumsq: jax.Array) -> jax.Array:
    """A power of two c such that Σ(c·x)² neither overflows nor underflows.

    Given a plain sum of squares: where it overflowed to inf (some |x| above about
    2^64/√n in float32), c = 2^(−5E/8) (E = 128, the float32 exponent range; 1024
    for float64) brings every square below 2^(E/4·3); elements it flushes to zero
    are below 2^5 and add at most 2^-88 relative. Where it is below tiny·2^p (p the
    mantissa bits; every |x| below 2^-51), c = 2^(25E/32) scales them up without
    overflow, and nothing representable is lost. Elsewhere c = 1.
    """
    e = jnp.finfo(sumsq.dtype).maxexp
    down = jnp.asarray(2.0 ** (-(5 * e) // 8), sumsq.dtype)
    up = jnp.asarray(2.0 ** ((25 * e) // 32), sumsq.dtype)
    one = jnp.ones_like(sumsq)
    small = sumsq < _smallest_exact_sumsq(sumsq.dtype)
    return jnp.where(jnp.isinf(sumsq), down, jnp.where(small, up, one))


def _smallest_exact_sumsq(dtype: Any) -> float:
    """tiny·2^(p+1): below it, squares may have been subnormal or flushed."""
    info = jnp.finfo(dtype)
    return float(info.tiny) * 2.0 ** (info.nmant + 1)


def _needs_rescale(sumsq: jax.Array) -> jax.Array:
    """Whether any plain sum of squares overflowed or may have underflowed."""
    small = sumsq < _smallest_exact_sumsq(sumsq.dtype)
    return jnp.any(jnp.isinf(sumsq) | small)


def _scaled_norm(x: jax.Array, c: jax.Array, **sum_kwargs: Any) -> jax.Array:
    """sqrt(Σ (c·x)²) / c: the norm of x, computed where its squares are in range.

    c is a constant for differentiation (the norm does not depend on it), so the
    gradient is x/‖x‖ without the c² terms that would overflow.
    """
    c = jax.lax.stop_gradient(c)
    y = x * c
    return jnp.sqrt(jnp.sum(y * y, **sum_kwargs)) / c


def combine_norms(norms: jax.Array) -> jax.Array:
    """sqrt(Σ nᵢ²) of a vector of norms, without overflow or underflow.

    Computed as m·sqrt(Σ (nᵢ/m)²) with m = max nᵢ; 0 if every nᵢ is 0, and m
    itself if m is inf or NaN.

    Args:
      norms: a 1-D array of non-negative norms.

    Returns:
      A scalar of the dtype of `norms`.
    """
    m = jnp.max(norms)
    ok = (m > 0) & jnp.isfinite(m)
    # The result does not depend on the scale (its derivative through m is 0 in
    # exact arithmetic, and n/m² overflows or underflows in float32): stop it.
    safe_m = jax.lax.stop_gradient(jnp.where(ok, m, jnp.ones_like(m)))
    scaled = norms / safe_m
    return jnp.where(ok, safe_m * jnp.sqrt(jnp.sum(scaled * scaled)), m)


def l2_norm(
    x: jax.Array, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> jax.Array:
    """The L2 norm of `x` over `axis`, accumulated in float32 or wider.

    Accurate to rounding for any finite input: magnitudes whose squares would
    overflow (> ~1e19 in float32) or underflow (< ~1e-19) are rescaled by a power
    of two instead of giving inf or 0.

    Cost: one fused pass computes the plain sums of squares; only if one of them
    overflowed or is below ~2^-102 (under `lax.cond`, so ordinary inputs never pay
    for it) is a second pass made with a per-unit power-of-two scale.

    Args:
      x: a floating or complex array.
      axis: the axes to reduce (None: all).
      keepdims: whether to keep reduced axes with size 1.

    Returns:
      The norms, in `accumulation_dtype(x.dtype)`.
    """
    x = _widen(x)
    sumsq = jnp.sum(x * x, axis=axis, keepdims=True)
    if x.size == 0:
        norm = jnp.sqrt(sumsq)
    else:
        norm = cond(
            _needs_rescale(sumsq),
            lambda s: _scaled_norm(x, _rescale_factor(s), axis=axis, keepdims=True),
            jnp.sqrt,
            sumsq,
        )
    return norm if keepdims else jnp.squeeze(norm, axis=axis)


def global_norm(updates: Any) -> jax.Array:
    """The L2 norm of all leaves of `updates` together: sqrt(Σ over leaves Σ |x|²).

    Squares are summed in float32 (float64 for float64 leaves), so float16 or
    bfloat16 gradients of magnitude 1e3 do not overflow as they would in their own
    dtype; and float32 magnitudes beyond 1e19 or below 1e-19 are rescaled by a
    power of two instead of overflowing or flushing to zero, so the result is
    accurate to rounding for any finite input. Complex leaves contribute |x|², as
    in optax.

    Cost: one fused reduction per leaf, the scalars added. Leaves are never
    concatenated or grouped, so the user's shardings are kept (a concatenation of
    differently sharded leaves moves them, or fails on an Explicit-axes mesh). Only
    if the total overflowed or is below ~2^-102 does a second pass (under one
    `lax.cond`) recompute each leaf's norm with its own power-of-two scale c and
    combine them as m·sqrt(Σ (nᵢ/m)²), m = max nᵢ.

    Args:
      updates: a pytree of arrays (None leaves are skipped); optax's name.

    Returns:
      A scalar of dtype float32, or float64 if any leaf is float64. 0 for an
      empty tree.

    Raises:
      TypeError: if a leaf is not a numeric array.
    """
    check_array_tree("updates", updates)
    acc = norm_dtype(updates)
    xs = [_widen(x).astype(acc) for x in jax.tree.leaves(updates)]
    xs = [x for x in xs if x.size]
    if not xs:
        return jnp.zeros((), acc)
    sums = [jnp.sum(x * x) for x in xs]
    total = functools.reduce(jnp.add, sums)

    def rescaled(sums):
        # One scale per leaf (not one shared scalar): a scalar broadcast shared by
        # same-shaped leaves is materialized by XLA:CPU as a full-size buffer.
        return combine_norms(
            jnp.stack(
                [
                    _scaled_norm(x, _rescale_factor(s))
                    for x, s in zip(xs, sums, strict=True)
                ]
            )
        )

    return cond(_needs_rescale(total), rescaled, lambda sums: jnp.sqrt(total), sums)


def clip_norms(
    xs: Sequence[jax.Array],
    axes: Sequence[int | tuple[int, ...] | None],
    wholes: int = 0,
) -> tuple[list[jax.Array], list[jax.Array]]:
    """Norms for the clips: guarded against overflow only, with one shared fallback.

    For each `x` of `xs`: its L2 norms over `axes[i]` (reduced axes kept, so they
    broadcast against `x`), accumulated in float32 or wider; complex elements
    contribute |x|². For the first `wholes` arrays also the whole norm ‖x‖.

    One fused pass per array computes the plain sums of squares s. If any array's
    total overflowed to inf (|x| above ~1e19 in float32), a single `lax.cond`
    shared by all arrays recomputes every unit norm as sqrt(Σ (c·x)²)/c with
    c = 2^(−5E/8) on the units that overflowed (E the exponent range, as in
    `l2_norm`) and c = 1 elsewhere, and the whole norms that overflowed as
    sqrt(Σ (c·nᵤ)²)/c. Ordinary inputs never pay for that branch, and one cond per
    transform (not one per leaf) with one reduction per array keeps the compiled
    program small.

    Underflow is not guarded: squares below the smallest normal (elements below
    ~1e-19 in float32) may flush to zero, so a norm below ~1e-18 may read as 0 or
    with reduced relative precision. A clip compares norms with a threshold, so
    this can only change a decision or a factor where the threshold itself is that
    small. `global_norm`, `gradient_norms` and `gradient_report` stay exact there.

    Args:
      xs: floating or complex arrays.
      axes: for each array, the axes of its units (None: the whole array).
      wholes: how many of the leading arrays also need their whole norm.

    Returns:
      (the unit norms of each array, keepdims; the whole norms of the first
      `wholes` arrays, scalars), in each array's accumulation dtype.
    """
    if not xs:
        return [], []
    xs = [_widen(x) for x in xs]
    unit_sums = [
        jnp.sum(x * x, axis=a, keepdims=True) for x, a in zip(xs, axes, strict=True)
    ]
    # The barrier keeps XLA from folding sum(sum(x², axes)) into a second full
    # reduction of x² (two readers of x², which XLA:CPU then materializes).
    totals = [
        s.reshape(()) if a is None else jnp.sum(s)
        for s, a in zip(jax.lax.optimization_barrier(unit_sums), axes, strict=True)
    ]
    overflow = functools.reduce(jnp.logical_or, [jnp.isinf(t) for t in totals])

    def plain(operands):
        unit_sums, totals = operands
        return [jnp.sqrt(s) for s in unit_sums], [jnp.sqrt(t) for t in totals[:wholes]]

    def rescaled(operands):
        unit_sums, totals = operands
        norms, whole = [], []
        for i, (x, s, a) in enumerate(zip(xs, unit_sums, axes, strict=True)):
            down = _down(s.dtype)
            c = jnp.where(jnp.isinf(s), down, jnp.ones_like(s))
            norms.append(_scaled_norm(x, c, axis=a, keepdims=True))
            if i >= wholes:
                continue
            if a is None:
                whole.append(norms[-1].reshape(()))
                continue
            # sqrt(Σ units n²) at the scale `down` where the total overflowed.
            scaled = norms[-1] * down
            at_down = jnp.sqrt(jnp.sum(scaled * scaled)) / down
            whole.append(jnp.where(jnp.isinf(totals[i]), at_down, jnp.sqrt(totals[i])))
        return norms, whole

    return cond(overflow, rescaled, plain, (unit_sums, totals))


def _down(dtype: Any) -> jax.Array:
    """2^(−5E/8), E the exponent range of `dtype` (see `_rescale_factor`)."""
    return jnp.asarray(2.0 ** (-(5 * jnp.finfo(dtype).maxexp) // 8), dtype)


def norm_dtype(tree: Any) -> jnp.dtype:
    """The dtype `global_norm(tree)` returns (float32 unless a leaf is float64).

    Args:
      tree: a pytree of arrays or `jax.ShapeDtypeStruct`s.

    Returns:
      float32 or float64.
    """
    dtypes = [
        accumulation_dtype(x.dtype if hasattr(x, "dtype") else jnp.asarray(x).dtype)
        for x in jax.tree.leaves(tree)
    ]
    return promote_types(jnp.float32, *dtypes)
