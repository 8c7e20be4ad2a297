"""Regularization as transforms: add_decayed_weights, add_l1, and masked.

`add_decayed_weights` and `add_l1` add the gradient of an L2 or L1 penalty to the
updates; `masked` restricts any transform to the params a mask selects, e.g. to
exempt biases and BatchNorm scales from weight decay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_nonnegative, check_tree_matches
from jaxnn._dtypes import compute_dtype
from jaxnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Params,
    safe_increment,
    with_extra_args_support,
)
from jaxnn.optim.transforms import ScaleByScheduleState

Mask = Any | Callable[[Params], Any]


class MaskedNode(NamedTuple):
    """Stands in for a subtree that a mask leaves out (a pytree with no leaves)."""


class MaskedState(NamedTuple):
    """State of `masked`.

    Attributes:
      inner_state: the inner transform's state, built for the selected params
        only (the others are `MaskedNode()`).
    """

    inner_state: Any


def apply_mask(tree: Any, mask_tree: Any, name: str) -> Any:
    """`tree` with every subtree whose mask leaf is False replaced by MaskedNode.

    The one mask mechanism of jaxnn: `masked`, `add_decayed_weights`, `add_l1` and
    the penalties of `jaxnn.regularizers` all select leaves through it. Mask leaves
    must be Python (or NumPy) bools: a mask decides the structure of a state, so it
    cannot be an array or traced.
    """

    def select(m, subtree):
        if not isinstance(m, bool | np.bool_):
            raise TypeError(
                f"mask leaves must be Python bools (True = selected), got {m!r}"
            )
        return subtree if m else MaskedNode()

    try:
        return jax.tree.map(select, mask_tree, tree)
    except ValueError as e:
        raise ValueError(
            f"mask does not match {name}: the mask must have the structure of the "
            f"params (or a prefix of it); mask is {jax.tree.structure(mask_tree)}, "
            f"{name} is {jax.tree.structure(tree)}"
        ) from e


def masked(inner: GradientTransformation, mask: Mask) -> GradientTransformation:
    """Applies `inner` only to the params that `mask` selects; others pass through.

    Updates where the mask is False are returned unchanged, and the inner state
    holds entries only for the selected params, as `optax.masked`.

    Args:
      inner: the transform to restrict (jaxnn's or optax's).
      mask: a pytree of Python bools with the structure of the params (or a
        prefix of it; True = transformed), or a callable `params -> such a pytree`
        (called on the params in `init` and on the updates in `update`).

    Returns:
      A GradientTransformation with state `MaskedState`.

    Raises:
      ValueError: (at init/update) if the mask does not match the params.
    """
    inner = with_extra_args_support(inner)

    def resolve(tree):
        return mask(tree) if callable(mask) else mask

    def init(params):
        return MaskedState(inner.init(apply_mask(params, resolve(params), "params")))

    def update(updates, state, params=None, **extra_args):
        mask_tree = resolve(updates)
        masked_updates = apply_mask(updates, mask_tree, "updates")
        masked_params = (
            None if params is None else apply_mask(params, mask_tree, "params")
        )
        new_masked, inner_state = inner.update(
            masked_updates, state.inner_state, masked_params, **extra_args
        )
        new_updates = jax.tree.map(
            lambda m, new, old: new if m else old, mask_tree, new_masked, updates
        )
        return new_updates, MaskedState(inner_state)

    return GradientTransformation(init, update)


def _add_param_term(
    name: str,
    strength: Any,
    term: Callable[[jax.Array], jax.Array],
    mask: Mask | None,
) -> GradientTransformation:
    """Builds `g + strength · term(p)`, `strength` a number or a schedule."""
    if callable(strength):
        schedule = strength
    else:
        check_nonnegative(name, strength)
        schedule = None

    def init(params):
        del params
        if schedule is not None:
            return ScaleByScheduleState(count=jnp.zeros((), jnp.int32))
        return EmptyState()

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(f"{name}: update() needs the params (params=None given)")
        check_tree_matches(updates, "updates", params, "params")
        if schedule is not None:
            s = jnp.asarray(schedule(state.count))
            state = ScaleByScheduleState(count=safe_increment(state.count))
        else:
            s = strength
            if isinstance(s, int | float) and s == 0:
                return updates, state

        def leaf(g, p):
            wide = compute_dtype(g.dtype, p.dtype)
            return (g.astype(wide) + s * term(p.astype(wide))).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    tx = GradientTransformation(init, update)
    return tx if mask is None else masked(tx, mask)


def add_decayed_weights(
    weight_decay: float | Callable[[jax.Array], Any], mask: Mask | None = None
) -> GradientTransformation:
    """Adds weight decay: g ← g + λw (the gradient of the L2 penalty λ/2·Σw²).

    Chained before `scale_by_learning_rate` (as in `adamw`), the decay is scaled
    by the learning rate: W ← W − η(… + λW).

    Args:
      weight_decay: λ >= 0, or a schedule `count -> λ` (called with the count
        before it is incremented).
      mask: None (decay every param), a pytree of bools with the params'
        structure, or a callable `params -> pytree of bools` (True = decayed).

    Returns:
      A GradientTransformation (state `EmptyState`, `ScaleByScheduleState` for a
      schedule, wrapped in `MaskedState` with a mask). `update` needs `params`.

    Raises:
      ValueError: if a concrete `weight_decay` is negative, or `update` gets no
        params.
    """
    return _add_param_term("weight_decay", weight_decay, lambda p: p, mask)


def add_l1(
    strength: float | Callable[[jax.Array], Any], mask: Mask | None = None
) -> GradientTransformation:
    """Adds the L1 subgradient: g ← g + λ·sign(w) (gradient of λ·Σ|w|; 0 at w = 0).

    Args:
      strength: λ >= 0, or a schedule `count -> λ`.
      mask: None, a pytree of bools with the params' structure, or a callable
        `params -> pytree of bools` (True = regularized).

    Returns:
      A GradientTransformation; `update` needs `params`.

    Raises:
      ValueError: if a concrete `strength` is negative, or `update` gets no
        params.
    """
    return _add_param_term("strength", strength, jnp.sign, mask)
