"""Regularization as transforms: add_decayed_weights (L2) and add_l1.

Each adds the gradient of a penalty on the params to the updates. With a `mask`
(see `masked`), only the selected params are regularized, e.g. to exempt biases
and BatchNorm scales from weight decay. A callable pytree of bools (an equinox
Module with bools where the arrays were) is a mask tree, as in optax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn._checks import check_nonnegative, check_tree_matches
from jaxnn._dtypes import compute_dtype, is_complex
from jaxnn._masks import Mask
from jaxnn.optim.base import (
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    safe_increment,
)
from jaxnn.optim.masking import masked
from jaxnn.optim.transforms import ScaleByScheduleState


def _add_param_term(
    name: str,
    strength: Any,
    term: Callable[[jax.Array], jax.Array],
    mask: Mask | None,
    complex_error: str | None = None,
) -> GradientTransformation:
    """Builds `g + strength · term(p)`, `strength` a number or a schedule.

    With `complex_error`, complex params are rejected (TypeError, that reason).
    """
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
        if complex_error is not None:
            for p in jax.tree.leaves(params):
                if is_complex(p.dtype):
                    raise TypeError(f"{name}: {complex_error}, got {p.dtype}")
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
    weight_decay: ScalarOrSchedule = 0.0, mask: Mask | None = None
) -> GradientTransformation:
    """Adds weight decay: g ← g + λw (the gradient of the L2 penalty λ/2·Σw²).

    Chained before `scale_by_learning_rate` (as in `adamw`), the decay is scaled
    by the learning rate: W ← W − η(… + λW).

    Args:
      weight_decay: λ >= 0, or a schedule `count -> λ` (called with the count
        before it is incremented). The default 0.0 (as optax) adds nothing.
      mask: None (decay every param), a pytree of bools with the params'
        structure, or a function `params -> pytree of bools` (True = decayed).
        A callable pytree of bools (an equinox Module) is a tree (see `masked`).

    Returns:
      A GradientTransformation (state `EmptyState`, `ScaleByScheduleState` for a
      schedule, wrapped in `MaskedState` with a mask). `update` needs `params`.

    Raises:
      ValueError: if a concrete `weight_decay` is negative, or `update` gets no
        params.

    References:
      Krogh & Hertz, "A Simple Weight Decay Can Improve Generalization",
      NeurIPS 1991; Loshchilov & Hutter, "Decoupled Weight Decay
      Regularization", ICLR 2019.
    """
    return _add_param_term("weight_decay", weight_decay, lambda p: p, mask)


def add_l1(
    strength: float | Callable[[jax.Array], Any], mask: Mask | None = None
) -> GradientTransformation:
    """Adds the L1 subgradient: g ← g + λ·sign(w) (gradient of λ·Σ|w|; 0 at w = 0).

    Args:
      strength: λ >= 0, or a schedule `count -> λ`.
      mask: None, a pytree of bools with the params' structure, or a function
        `params -> pytree of bools` (True = regularized). A callable pytree of
        bools (an equinox Module) is a tree (see `masked`).

    Returns:
      A GradientTransformation; `update` needs `params`.

    Raises:
      ValueError: if a concrete `strength` is negative, or `update` gets no
        params.
      TypeError: if `update` gets complex params.

    References:
      Tibshirani, "Regression Shrinkage and Selection via the Lasso", JRSS B
      1996.
    """
    return _add_param_term(
        "strength",
        strength,
        jnp.sign,
        mask,
        complex_error="add_l1 takes real params (sign(w) is not the L1 "
        "subgradient of a complex weight)",
    )
