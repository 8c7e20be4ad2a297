"""Tree helpers shared by the transforms (private module, public function names).

Dtypes: products are formed in float32 or wider (`jaxnn._dtypes.compute_dtype`;
complex leaves in complex64 or wider, so no imaginary part is dropped) and rounded
once into the leaf's own dtype; new trees keep each leaf's dtype (or take an
explicit one) and, built with `zeros_like`/`full_like`, each leaf's sharding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn._dtypes import compute_dtype, is_complex


def leaf_dtype(p: Any) -> jnp.dtype:
    """The dtype of an array, `jax.ShapeDtypeStruct` or Python scalar leaf.

    Args:
      p: the leaf.

    Returns:
      Its dtype (a Python scalar gets JAX's default dtype for its kind).
    """
    return jnp.dtype(p.dtype) if hasattr(p, "dtype") else jnp.asarray(p).dtype


def zeros_like_tree(params: Any, dtype: Any = None, *, name: str | None = None) -> Any:
    """Zeros with the structure, shapes and shardings of `params`.

    `zeros_like` (not `zeros(shape)`) keeps each leaf's sharding and accepts
    `jax.ShapeDtypeStruct` leaves; an explicit dtype keeps the result strongly
    typed. float64 is canonicalized (float32 unless `jax_enable_x64`), as optax.

    Args:
      params: a pytree of arrays or `jax.ShapeDtypeStruct`s.
      dtype: the dtype of every leaf; None keeps each leaf's own.
      name: the argument that gave `dtype`, if the state must hold complex
        values for complex params (a first moment, a trace; not |g|²): then a
        real `dtype` with a complex leaf is an error naming it.

    Returns:
      A pytree of zero arrays.

    Raises:
      TypeError: if `name` is given, `dtype` is real and a leaf of `params` is
        complex (the imaginary part of what the state accumulates would be lost).
    """
    if dtype is not None:
        dtype = jax.dtypes.canonicalize_dtype(dtype)
        if name is not None and not is_complex(dtype):
            for p in jax.tree.leaves(params):
                if is_complex(leaf_dtype(p)):
                    raise TypeError(
                        f"{name}={jnp.dtype(dtype).name} is a real dtype but the "
                        f"params have a complex leaf ({leaf_dtype(p).name}): its "
                        f"imaginary part would be lost; use {name}=None (the "
                        "params' dtype)"
                    )
    return jax.tree.map(
        lambda p: jnp.zeros_like(p, dtype=leaf_dtype(p) if dtype is None else dtype),
        params,
    )


def full_like_tree(params: Any, value: Any) -> Any:
    """Arrays filled with `value`, with the structure, shapes and dtypes of `params`.

    Args:
      params: a pytree of arrays or `jax.ShapeDtypeStruct`s.
      value: the fill value (a number or a traced scalar).

    Returns:
      A pytree of arrays, each in its leaf's dtype.
    """
    return jax.tree.map(lambda p: jnp.full_like(p, value, dtype=leaf_dtype(p)), params)


def scale_tree(tree: Any, factor: Any) -> Any:
    """Multiplies every leaf of `tree` (or a single array) by `factor`.

    The product is formed in float32 or wider and rounded once into the leaf's
    dtype, so a float32 factor scales bfloat16 updates with one rounding.
    `factor` broadcasts against each leaf (a scalar, or a per-unit array such as
    the (1, out) factors of adaptive clipping).

    Args:
      tree: a pytree of floating arrays, or one array.
      factor: a number or an array that broadcasts against every leaf.

    Returns:
      `tree` with each leaf multiplied, in the leaf's dtype.
    """
    factor = jnp.asarray(factor)

    def mul(g):
        wide = compute_dtype(g.dtype, factor.dtype)
        return (g.astype(wide) * factor.astype(wide)).astype(g.dtype)

    return jax.tree.map(mul, tree)


def map_leaves(fn: Callable[..., tuple], updates: Any, *trees: Any) -> tuple:
    """Applies `fn(g, *state_leaves)` leaf by leaf; returns one tree per output.

    `fn` returns a tuple with one entry for the outgoing update and one per state
    tree. The trees must have the structure of `updates` (callers check it first
    with `check_tree_matches`, which names the mismatching side).

    Args:
      fn: a function of one leaf of `updates` and the matching leaf of each tree.
      updates: the tree that sets the structure.
      *trees: trees with the structure of `updates`.

    Returns:
      A tuple of `len(trees) + 1` trees with the structure of `updates`.
    """
    leaves, treedef = jax.tree.flatten(updates)
    others = [treedef.flatten_up_to(t) for t in trees]  # type: ignore[attr-defined]
    results = [fn(*args) for args in zip(leaves, *others, strict=True)]
    return tuple(
        jax.tree.unflatten(treedef, [r[i] for r in results])
        for i in range(len(trees) + 1)
    )
