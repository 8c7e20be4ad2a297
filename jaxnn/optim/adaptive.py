"""Per-parameter adaptive scalings: scale_by_rss (Adagrad), scale_by_rms, scale_by_adam.

Each divides the gradient by a running estimate of its magnitude, element by element.
Dtypes follow `transforms.py`: arithmetic in float32 or wider, each state leaf keeps
the dtype it was created with (the params' unless `mu_dtype`/`nu_dtype` say
otherwise), and outgoing updates keep the dtype of the incoming ones. Per step, the
bias corrections are computed once (scalars, in JAX's default float: float64 under
`jax_enable_x64`) and each leaf is read and written once.

Complex params (as optax): the squared magnitude is |g|² = Re(g·ḡ), so second
moments are real (stored in the params' complex dtype unless `nu_dtype` is real),
and first moments and updates are complex.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnn._checks import (
    check_bool,
    check_decay,
    check_floating_dtype,
    check_nonnegative,
    check_tree_matches,
)
from jaxnn._dtypes import (
    abs_sq,
    as_stored,
    compute_dtype,
    float_dtype,
    real_dtype,
    real_part,
)
from jaxnn._trees import full_like_tree, map_leaves, zeros_like_tree
from jaxnn.optim.base import GradientTransformation, Updates, safe_increment


class ScaleByRssState(NamedTuple):
    """State of `scale_by_rss` (Adagrad).

    Attributes:
      sum_of_squares: G, the running sum of squared gradients (params' dtype).
    """

    sum_of_squares: Updates


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """Adagrad's scaling: G ← G + |g|²; returns g / √(G + ε).

    Where G is 0 (possible only with `initial_accumulator_value=0` and zero
    gradients so far) the update is 0, as optax.

    Args:
      initial_accumulator_value: the value G starts at, >= 0 (0.1, as optax).
      eps: ε >= 0, added to G under the square root.

    Returns:
      A GradientTransformation with state `ScaleByRssState`.

    Raises:
      ValueError: if a concrete argument is negative or NaN.

    References:
      Duchi et al., "Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization", JMLR 2011.
    """
    check_nonnegative("initial_accumulator_value", initial_accumulator_value)
    check_nonnegative("eps", eps)

    def init(params):
        return ScaleByRssState(full_like_tree(params, initial_accumulator_value))

    def leaf(g, s):
        wide = compute_dtype(g.dtype, s.dtype)
        gw = g.astype(wide)
        s_new = as_stored(abs_sq(gw) + real_part(s).astype(real_dtype(wide)), s.dtype)
        inv = jnp.where(s_new > 0, jax.lax.rsqrt(s_new + eps), 0.0)
        return (inv.astype(wide) * gw).astype(g.dtype), s_new.astype(s.dtype)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_matches(
            updates, "updates", state.sum_of_squares, "state.sum_of_squares"
        )
        out, new = map_leaves(leaf, updates, state.sum_of_squares)
        return out, ScaleByRssState(new)

    return GradientTransformation(init, update)


class ScaleByRmsState(NamedTuple):
    """State of `scale_by_rms` (RMSprop).

    Attributes:
      nu: G, the moving average of squared gradients (params' dtype).
    """

    nu: Updates


class ScaleByRmsWithCountState(NamedTuple):
    """State of `scale_by_rms(bias_correction=True)` (optax's name and fields).

    Attributes:
      count: int32 number of updates so far (t after the update; saturates).
      nu: G, the moving average of squared gradients (params' dtype).
    """

    count: jax.Array  # type: ignore[assignment]  # optax name
    nu: Updates


class ScaleByCenteredRmsState(NamedTuple):
    """State of `scale_by_rms(centered=True)`.

    Attributes:
      mu: the moving average of gradients (params' dtype).
      nu: the moving average of squared gradients (params' dtype).
    """

    mu: Updates
    nu: Updates


class ScaleByCenteredRmsWithCountState(NamedTuple):
    """State of `scale_by_rms(centered=True, bias_correction=True)`.

    Attributes:
      count: int32 number of updates so far (t after the update; saturates).
      mu: the moving average of gradients (params' dtype).
      nu: the moving average of squared gradients (params' dtype).
    """

    count: jax.Array  # type: ignore[assignment]  # optax name
    mu: Updates
    nu: Updates


def _bias_correction(decay: Any, count: jax.Array) -> jax.Array:
    """1 − decayᵗ, once per step, in JAX's default float (float64 under x64).

    The power is taken in the widest float available, as optax (whose weakly typed
    `decay ** count` promotes the same way), and rounded once per leaf.
    """
    dtype = float_dtype()
    return 1 - jnp.asarray(decay, dtype) ** count.astype(dtype)


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    centered: bool = False,
) -> GradientTransformation:
    """RMSprop's scaling: G ← βG + (1 − β)|g|²; returns g / √(G + ε).

    With t the step number (1 for the first update)::

        G ← βG + (1 − β)|g|²
        Ĝ = G / (1 − βᵗ) with `bias_correction`, else Ĝ = G
        returns g / √(Ĝ + ε)       (eps_in_sqrt=True, as optax and TF)
             or g / (√Ĝ + ε)       (eps_in_sqrt=False, as PyTorch)

    `scale_by_rms(b2, eps_in_sqrt=False, bias_correction=True)` is
    `scale_by_adam(b1=0, b2=b2)` without a first moment. With `centered=True`
    (beyond optax's `scale_by_rms`: it is optax's `scale_by_stddev`) the gradient's
    moving average m ← βm + (1 − β)g is kept too and Ĝ is replaced by
    Ĝ − |m̂|²: the second moment becomes a variance estimate (Graves 2013).

    Args:
      decay: β in [0, 1).
      eps: ε >= 0, added under the square root (`eps_in_sqrt=True`) or to it.
      initial_scale: the value G starts at, >= 0 (PyTorch uses 0, TF1 uses 1).
      eps_in_sqrt: whether ε goes inside the square root (a Python bool).
      bias_correction: whether to divide G (and m) by 1 − βᵗ, as Adam does for
        its zero initialization (a Python bool).
      centered: whether to subtract the squared mean gradient (keyword-only; a
        Python bool).

    Returns:
      A GradientTransformation with state `ScaleByRmsState`,
      `ScaleByCenteredRmsState` if `centered`, or their `...WithCountState`
      forms (with a step count) if `bias_correction`.

    Raises:
      ValueError: if a concrete argument is out of range.
      TypeError: if a flag is not a bool.

    References:
      Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA 2012; Graves,
      "Generating Sequences With Recurrent Neural Networks", 2013.
    """
    check_decay("decay", decay)
    check_nonnegative("eps", eps)
    check_nonnegative("initial_scale", initial_scale)
    check_bool("eps_in_sqrt", eps_in_sqrt)
    check_bool("bias_correction", bias_correction)
    check_bool("centered", centered)

    def init(params):
        nu = full_like_tree(params, initial_scale)
        mu = zeros_like_tree(params) if centered else None
        if bias_correction:
            count = jnp.zeros((), jnp.int32)
            if centered:
                return ScaleByCenteredRmsWithCountState(count=count, mu=mu, nu=nu)
            return ScaleByRmsWithCountState(count=count, nu=nu)
        if centered:
            return ScaleByCenteredRmsState(mu=mu, nu=nu)
        return ScaleByRmsState(nu=nu)

    def scaling(n_hat):
        if eps_in_sqrt:
            return jax.lax.rsqrt(n_hat + eps)
        return 1 / (jnp.sqrt(n_hat) + eps)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_matches(updates, "updates", state.nu, "state.nu")
        if centered:
            check_tree_matches(updates, "updates", state.mu, "state.mu")
        count = safe_increment(state.count) if bias_correction else None
        bc = _bias_correction(decay, count) if bias_correction else None

        def correct(x):
            return x if bc is None else x / bc.astype(x.dtype)

        def leaf(g, n):
            wide = compute_dtype(g.dtype, n.dtype)
            gw = g.astype(wide)
            n_new = as_stored(
                (1 - decay) * abs_sq(gw)
                + decay * real_part(n).astype(real_dtype(wide)),
                n.dtype,
            )
            out = scaling(correct(n_new)).astype(wide) * gw
            return out.astype(g.dtype), n_new.astype(n.dtype)

        def centered_leaf(g, m, n):
            wide = compute_dtype(g.dtype, m.dtype, n.dtype)
            gw = g.astype(wide)
            m_new = as_stored((1 - decay) * gw + decay * m.astype(wide), m.dtype)
            n_new = as_stored(
                (1 - decay) * abs_sq(gw)
                + decay * real_part(n).astype(real_dtype(wide)),
                n.dtype,
            )
            variance = correct(n_new) - abs_sq(correct(m_new))
            out = scaling(variance).astype(wide) * gw
            return out.astype(g.dtype), m_new.astype(m.dtype), n_new.astype(n.dtype)

        if not centered:
            out, nu = map_leaves(leaf, updates, state.nu)
            if bias_correction:
                return out, ScaleByRmsWithCountState(count=count, nu=nu)
            return out, ScaleByRmsState(nu=nu)
        out, mu, nu = map_leaves(centered_leaf, updates, state.mu, state.nu)
        if bias_correction:
            return out, ScaleByCenteredRmsWithCountState(count=count, mu=mu, nu=nu)
        return out, ScaleByCenteredRmsState(mu=mu, nu=nu)

    return GradientTransformation(init, update)


class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam`.

    Attributes:
      count: int32 number of updates so far (t after the update; saturates).
      mu: m, the moving average of gradients (`mu_dtype`, else params' dtype).
      nu: v, the moving average of squared gradients (`nu_dtype`, else params').
    """

    count: jax.Array  # type: ignore[assignment]  # optax name
    mu: Updates
    nu: Updates


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam's scaling, with bias correction; Nadam's with `nesterov=True`.

    With t the step number (1 for the first update)::

        m ← β₁m + (1 − β₁)g          v ← β₂v + (1 − β₂)|g|²
        m̂ = m / (1 − β₁ᵗ)            v̂ = v / (1 − β₂ᵗ)
        returns m̂ / (√(v̂ + ε_root) + ε)

    With `nesterov=True` (Nadam, Dozat 2016, as optax) m̂ is replaced by
    β₁m / (1 − β₁ᵗ⁺¹) + (1 − β₁)g / (1 − β₁ᵗ).

    m and v are computed in float32 (or wider). Where their dtype keeps that
    exponent range (bfloat16), the update reads them as stored, rounded (what
    optax computes with bfloat16 params; under a bfloat16 `mu_dtype` with
    float32 params optax reads the unrounded m). float16 moments are read
    unrounded: float16 cannot hold g² (see `_dtypes.as_stored`); keep float16
    params' moments in float32.

    Args:
      b1: β₁ in [0, 1), decay of the first moment.
      b2: β₂ in [0, 1), decay of the second moment.
      eps: ε >= 0, added outside the square root.
      eps_root: ε_root >= 0, added inside it (helps when differentiating
        through the update).
      mu_dtype: dtype of m; None keeps the params' dtype. float32 under
        bfloat16 params keeps the moments accurate.
      nesterov: whether to use Nadam's look-ahead first moment (keyword-only,
        as optax; a Python bool).
      nu_dtype: dtype of v (keyword-only; beyond optax, which keeps v in the
        params' dtype); None keeps the params' dtype.

    Returns:
      A GradientTransformation with state `ScaleByAdamState`.

    Raises:
      ValueError: if a concrete argument is out of range.
      TypeError: if `mu_dtype` or `nu_dtype` is not a floating dtype (or None),
        if `nesterov` is not a bool, or (at `init`) if `mu_dtype` is real and a
        param is complex.

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
      Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    check_decay("b1", b1)
    check_decay("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("eps_root", eps_root)
    check_bool("nesterov", nesterov)
    mu_dtype = check_floating_dtype("mu_dtype", mu_dtype, allow_none=True)
    nu_dtype = check_floating_dtype("nu_dtype", nu_dtype, allow_none=True)

    def init(params):
        # v is real (|g|²): a real nu_dtype holds it even for complex params.
        return ScaleByAdamState(
            count=jnp.zeros((), jnp.int32),
            mu=zeros_like_tree(params, mu_dtype, name="mu_dtype"),
            nu=zeros_like_tree(params, nu_dtype),
        )

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_matches(updates, "updates", state.mu, "state.mu")
        check_tree_matches(updates, "updates", state.nu, "state.nu")
        count = safe_increment(state.count)
        bc1 = _bias_correction(b1, count)
        bc2 = _bias_correction(b2, count)
        bc1_next = _bias_correction(b1, safe_increment(count)) if nesterov else None

        def leaf(g, m, v):
            wide = compute_dtype(g.dtype, m.dtype, v.dtype)
            real = real_dtype(wide)
            gw = g.astype(wide)
            m_new = as_stored((1 - b1) * gw + b1 * m.astype(wide), m.dtype)
            v_new = as_stored(
                (1 - b2) * abs_sq(gw) + b2 * real_part(v).astype(real), v.dtype
            )
            if nesterov:
                m_hat = b1 * (m_new / bc1_next.astype(wide)) + (1 - b1) * (
                    gw / bc1.astype(wide)
                )
            else:
                m_hat = m_new / bc1.astype(wide)
            v_hat = v_new / bc2.astype(real)
            out = m_hat / (jnp.sqrt(v_hat + eps_root) + eps).astype(wide)
            return out.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        out, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return out, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init, update)
