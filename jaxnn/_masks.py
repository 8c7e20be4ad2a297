"""The mask mechanism: apply_mask and MaskedNode (private module, public names).

One mechanism selects parameters everywhere in jaxnn: `masked`,
`add_decayed_weights`, `add_l1` and the penalties `l1_penalty`/`l2_penalty`, so a
mask means the same thing on the optimizer side and on the loss side. As in optax,
a mask is a pytree of Python bools with the structure of the params, or a prefix
of it (a bool then selects a whole subtree), or a callable `params -> such a
pytree`.

A mask is a function only when it is callable as a whole *and* every leaf of it,
read as a pytree, is callable (`is_mask_fn`), as in `optax.masked` (optax issue
913): a plain function is one callable leaf, while an equinox Module or any
registered pytree node with a `__call__` whose leaves are bools is a mask tree.
Equinox users build masks exactly that way (`jax.tree.map(f, model)` is again a
Module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxnn._checks import check_bool

Mask = Any | Callable[[Any], Any]


class MaskedNode(NamedTuple):
    """Stands in for a subtree that a mask leaves out (a pytree with no leaves)."""


def apply_mask(tree: Any, mask_tree: Any, name: str) -> Any:
    """`tree` with every subtree whose mask leaf is False replaced by MaskedNode.

    Mask leaves must be Python (or NumPy) bools: a mask decides the structure of a
    state, so it cannot be an array or traced.

    Args:
      tree: the pytree to select from.
      mask_tree: a pytree of bools with the structure of `tree` or a prefix of it.
      name: the name of `tree` in error messages.

    Returns:
      A pytree with the structure of `tree` in which unselected subtrees are
      `MaskedNode()`.

    Raises:
      TypeError: if a mask leaf is not a bool.
      ValueError: if `mask_tree` is not a prefix of the structure of `tree`.
    """

    def select(m, subtree):
        check_bool("mask leaf", m, "True = selected")
        return subtree if m else MaskedNode()

    try:
        return jax.tree.map(select, mask_tree, tree)
    except ValueError as e:
        raise ValueError(
            f"mask does not match {name}: the mask must have the structure of the "
            f"params (or a prefix of it); mask is {jax.tree.structure(mask_tree)}, "
            f"{name} is {jax.tree.structure(tree)}"
        ) from e


def is_mask_fn(mask: Mask) -> bool:
    """Whether `mask` is a mask function (called on the params) or a mask tree.

    optax's rule (`optax.masked`, optax issue 913): a function when every leaf of
    `mask` as a pytree is callable and there is at least one. A plain function (or
    `functools.partial`) is a single callable leaf; a callable pytree (an equinox
    Module, a registered pytree node with `__call__`) whose leaves are bools or
    labels is a tree. `mask` itself must be callable too, so a tree whose leaves
    happen to be functions (`partition` labels may be any hashable) is a tree, as
    optax's `partition` treats it; optax's `masked` would call such a tree and
    fail.

    Args:
      mask: a mask (or labels) tree or function.

    Returns:
      True if `mask` is to be called on the params.
    """
    if not callable(mask):
        return False
    leaves = jax.tree.leaves(mask)
    return bool(leaves) and all(callable(leaf) for leaf in leaves)


def resolve_mask(mask: Mask, tree: Any) -> Any:
    """The mask pytree: `mask(tree)` for a mask function, else `mask` itself.

    Args:
      mask: a pytree of bools or a function returning one (see `is_mask_fn`).
      tree: the params (or updates) a mask function is called on.

    Returns:
      The pytree of bools.
    """
    return mask(tree) if is_mask_fn(mask) else mask


def has_no_leaves(tree: Any) -> bool:
    """Whether `tree` is a pytree without leaves: nothing in it to select.

    An empty container, or the params placeholder that
    `optax.tree.map_params(tx.init, ...)` passes to `init` to find the copies of
    the params in a state. Masking such a tree selects nothing, so `masked` and
    `partition` hand it to the inner transform as it is without consulting the
    mask (optax's `masked` does the same for its placeholder), and a mask
    function is never called on a placeholder it cannot read.

    Args:
      tree: any pytree.

    Returns:
      True if `tree` has no leaves.
    """
    return not jax.tree.leaves(tree)
