"""The mask mechanism: apply_mask and MaskedNode (private module, public names).

One mechanism selects parameters everywhere in jaxnn: `masked`,
`add_decayed_weights`, `add_l1` and the penalties `l1_penalty`/`l2_penalty`, so a
mask means the same thing on the optimizer side and on the loss side. As in optax,
a mask is a pytree of Python bools with the structure of the params, or a prefix
of it (a bool then selects a whole subtree), or a callable `params -> such a
pytree`.
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


def resolve_mask(mask: Mask, tree: Any) -> Any:
    """The mask pytree: `mask(tree)` for a callable mask, else `mask` itself.

    Args:
      mask: a pytree of bools or a callable returning one.
      tree: the params (or updates) a callable mask is called on.

    Returns:
      The pytree of bools.
    """
    return mask(tree) if callable(mask) else mask
