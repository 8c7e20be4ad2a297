"""L1 and L2 weight penalties as loss terms, with optax-style masks.

The gradient forms live in the optimizer as transforms: d/dw of
`l1_penalty(w, λ)` is λ·sign(w), what `add_l1(λ)` adds to the gradient, and d/dw of
`l2_penalty(w, λ)` is 2λ·w, what `add_decayed_weights(2λ)` adds. Masks have the same
meaning in both places.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxnn._checks import check_floating_tree, check_in_range
from jaxnn._dtypes import accumulation_dtype
from jaxnn._masks import Mask, apply_mask, resolve_mask


def _masked(params: Any, mask: Mask) -> Any:
    """`params` with the leaves `mask` leaves out replaced by `MaskedNode()`.

    The mechanism of the optimizer-side `masked`, `add_decayed_weights` and
    `add_l1` (`jaxnn._masks.apply_mask`), so a mask means the same on both sides.
    """
    if mask is None:
        return params
    return apply_mask(params, resolve_mask(mask, params), "params")


@jax.custom_jvp
def _abs(w: jax.Array) -> jax.Array:
    return jnp.abs(w)


@_abs.defjvp
def _abs_jvp(primals, tangents):
    # d|w|/dw = sign(w), 0 at w = 0 (the smallest subgradient), as add_l1 adds;
    # jnp.abs's own derivative at 0 is 1.
    (w,), (t,) = primals, tangents
    return jnp.abs(w), jnp.sign(w) * t


def _penalty(params: Any, strength: Any, mask: Mask, term) -> jax.Array:
    check_in_range("strength", strength, 0.0, float("inf"))
    selected = _masked(params, mask)
    check_floating_tree("params", selected, allow_complex=False)
    leaves = [jnp.asarray(w) for w in jax.tree.leaves(selected)]
    # Sums are accumulated in float32 or wider so bf16/fp16 weights do not overflow
    # or lose the small terms.
    acc = max(
        (accumulation_dtype(w.dtype) for w in leaves),
        key=lambda d: d.itemsize,
        default=jnp.dtype(jnp.float32),
    )
    total = sum(
        (jnp.sum(term(w.astype(acc))) for w in leaves), start=jnp.zeros((), acc)
    )
    return jnp.asarray(strength, acc) * total


def l1_penalty(params: Any, strength: float, mask: Mask = None) -> jax.Array:
    """L1 (Lasso) penalty strength·Σ|w| over the (masked) leaves of `params`.

    Its gradient strength·sign(w) (0 at w = 0) drives weights to exact zeros
    (sparse models); it is what `add_l1(strength)` adds to the gradient.

    Args:
      params: a pytree of floating arrays.
      strength: λ ≥ 0 (may be traced).
      mask: None (every leaf), a pytree of bools with the structure of `params` (or
        a prefix of it), or a function params -> such a pytree; True = penalized.
        A callable pytree of bools (an equinox Module) is a tree, as in optax.

    Returns:
      A float32 (or wider) scalar.

    Raises:
      ValueError: if a concrete `strength` is negative or not finite, or `mask`
        does not match `params`.
      TypeError: if a mask leaf is not a bool or a leaf is not floating.

    References:
      Tibshirani, "Regression Shrinkage and Selection via the Lasso", JRSS B
      1996.
    """
    return _penalty(params, strength, mask, _abs)


def l2_penalty(params: Any, strength: float, mask: Mask = None) -> jax.Array:
    """L2 (Ridge) penalty strength·Σw² over the (masked) leaves of `params`.

    Its gradient 2·strength·w shrinks every weight smoothly (no exact zeros); it is
    what `add_decayed_weights(2 * strength)` adds to the gradient.

    Args:
      params: a pytree of floating arrays.
      strength: λ ≥ 0 (may be traced).
      mask: None (every leaf), a pytree of bools with the structure of `params` (or
        a prefix of it), or a function params -> such a pytree; True = penalized.
        A callable pytree of bools (an equinox Module) is a tree, as in optax.

    Returns:
      A float32 (or wider) scalar.

    Raises:
      ValueError: if a concrete `strength` is negative or not finite, or `mask`
        does not match `params`.
      TypeError: if a mask leaf is not a bool or a leaf is not floating.

    References:
      Hoerl & Kennard, "Ridge Regression: Biased Estimation for Nonorthogonal
      Problems", Technometrics 1970.
    """
    return _penalty(params, strength, mask, jnp.square)
