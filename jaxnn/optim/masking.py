"""Masking: masked restricts any transform to the params a mask selects.

As `optax.masked`: the inner transform sees only the selected params (the others
are replaced by `MaskedNode()`, a pytree without leaves, so its state holds
nothing for them), and the updates of the others pass through unchanged. The mask
mechanism itself (`apply_mask`) is shared with the penalties of
`jaxnn.regularizers`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxnn._checks import check_transform
from jaxnn._masks import Mask, apply_mask, resolve_mask
from jaxnn.optim.base import GradientTransformation, with_extra_args_support


class MaskedState(NamedTuple):
    """State of `masked`.

    Attributes:
      inner_state: the inner transform's state, built for the selected params
        only (the others are `MaskedNode()`).
    """

    inner_state: Any


def masked(inner: GradientTransformation, mask: Mask) -> GradientTransformation:
    """Applies `inner` only to the params that `mask` selects; others pass through.

    For a mask m (True = selected), the outgoing update of a param is
    `inner`'s update where m is True and the incoming update where m is False;
    `inner` sees, and keeps state for, the selected params only (as
    `optax.masked`).

    Args:
      inner: the transform to restrict (jaxnn's or optax's).
      mask: a pytree of Python bools with the structure of the params (or a
        prefix of it; True = transformed), or a callable `params -> such a pytree`
        (called on the params in `init` and on the updates in `update`).

    Returns:
      A GradientTransformation with state `MaskedState`.

    Raises:
      TypeError: if `inner` is not a transform, or (at init/update) a mask leaf
        is not a bool.
      ValueError: (at init/update) if the mask does not match the params.
    """
    check_transform("inner", inner)
    inner = with_extra_args_support(inner)

    def init(params):
        mask_tree = resolve_mask(mask, params)
        return MaskedState(inner.init(apply_mask(params, mask_tree, "params")))

    def update(updates, state, params=None, **extra_args):
        mask_tree = resolve_mask(mask, updates)
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
