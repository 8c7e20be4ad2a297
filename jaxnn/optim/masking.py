"""Masking: masked restricts any transform to the params a mask selects.

As `optax.masked`: the inner transform sees only the selected params (the others
are replaced by `MaskedNode()`, a pytree without leaves, so its state holds
nothing for them), and the updates of the others pass through unchanged. The mask
mechanism itself (`apply_mask`, and the rule that tells a mask function from a
callable mask tree) is shared with the penalties of `jaxnn.regularizers`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxnn._checks import check_bool, check_transform
from jaxnn._masks import Mask, apply_mask, has_no_leaves, resolve_mask
from jaxnn.optim.base import GradientTransformation, with_extra_args_support


class MaskedState(NamedTuple):
    """State of `masked`.

    Attributes:
      inner_state: the inner transform's state, built for the selected params
        only (the others are `MaskedNode()`).
    """

    inner_state: Any


def mask_extra_args(
    extra_args: dict[str, Any], updates: Any, mask_tree: Any
) -> dict[str, Any]:
    """The extra arguments with the params' structure masked like the updates.

    `mask_compatible_extra_args` of `masked` and `partition`, as optax: an extra
    argument whose pytree structure equals that of `updates` (e.g. per-param
    tags) gets the unselected subtrees replaced by `MaskedNode()`; the others
    (a loss value, a step) pass unchanged.

    Args:
      extra_args: the keyword arguments given to `update`.
      updates: the incoming updates (their structure is the reference).
      mask_tree: the resolved mask.

    Returns:
      A new dict with the same keys.
    """
    # Any: jax's stubs give PyTreeDef no __eq__.
    structure: Any = jax.tree.structure(updates)
    return {
        k: apply_mask(v, mask_tree, f"extra argument {k!r}")
        if jax.tree.structure(v) == structure
        else v
        for k, v in extra_args.items()
    }


def masked(
    inner: GradientTransformation,
    mask: Mask,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """Applies `inner` only to the params that `mask` selects; others pass through.

    For a mask m (True = selected), the outgoing update of a param is
    `inner`'s update where m is True and the incoming update where m is False;
    `inner` sees, and keeps state for, the selected params only (as
    `optax.masked`).

    A mask is a function when it is callable and every leaf of it is callable
    (optax's rule): an equinox Module or another callable pytree whose leaves are
    bools is a mask tree, not a function. Params (or updates) with no leaves, such
    as the placeholder `optax.tree.map_params(tx.init, ...)` passes, are handed to
    `inner` as they are, without consulting the mask (as optax does), so optax's
    tree utilities work over the state.

    Args:
      inner: the transform to restrict (jaxnn's or optax's).
      mask: a pytree of Python bools with the structure of the params (or a
        prefix of it; True = transformed), or a callable `params -> such a pytree`
        (called on the params in `init` and on the updates in `update`).
      mask_compatible_extra_args: whether the extra keyword arguments of
        `update` whose pytree structure is that of the updates are masked like
        the updates before `inner` sees them (as optax); others pass unchanged.

    Returns:
      A GradientTransformation with state `MaskedState`.

    Raises:
      TypeError: if `inner` is not a transform, `mask_compatible_extra_args` is
        not a bool, or (at init/update) a mask leaf is not a bool.
      ValueError: (at init/update) if the mask does not match the params.
    """
    check_transform("inner", inner)
    check_bool("mask_compatible_extra_args", mask_compatible_extra_args)
    inner = with_extra_args_support(inner)

    def init(params):
        if has_no_leaves(params):
            return MaskedState(inner.init(params))
        mask_tree = resolve_mask(mask, params)
        return MaskedState(inner.init(apply_mask(params, mask_tree, "params")))

    def update(updates, state, params=None, **extra_args):
        if has_no_leaves(updates):
            new_updates, inner_state = inner.update(
                updates, state.inner_state, params, **extra_args
            )
            return new_updates, MaskedState(inner_state)
        mask_tree = resolve_mask(mask, updates)
        if mask_compatible_extra_args:
            extra_args = mask_extra_args(extra_args, updates, mask_tree)
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
