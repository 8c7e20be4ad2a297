"""Protection against non-finite gradients: skip_nonfinite."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnn._checks import check_array_tree, check_int, check_transform
from jaxnn._control import apply_or_skip
from jaxnn.optim.base import (
    GradientTransformation,
    safe_increment,
    with_extra_args_support,
)


class SkipNonfiniteState(NamedTuple):
    """State of `skip_nonfinite`.

    Attributes:
      inner_state: the wrapped transform's state.
      consecutive: int32 number of non-finite steps in a row, up to and including
        the last one (0 after a finite step).
      total_skipped: int32 number of steps whose update was skipped so far.
    """

    inner_state: Any
    consecutive: jax.Array
    total_skipped: jax.Array


def all_finite(tree: Any) -> jax.Array:
    """True if every element of every leaf of `tree` is finite (no NaN, no ±inf).

    Args:
      tree: a pytree of arrays.

    Returns:
      A boolean scalar.
    """
    check_array_tree("tree", tree)
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def skip_nonfinite(
    inner: GradientTransformation, max_consecutive: int | None = None
) -> GradientTransformation:
    """Skips steps whose gradients contain NaN or ±inf, protecting `inner`'s state.

    On a step where any incoming gradient element is non-finite, the returned
    updates are zeros (so `apply_updates` leaves the params unchanged) and `inner`'s
    state is kept as it was, so a single bad batch cannot poison Adam's moments.
    Finite steps go through `inner` unchanged. The two cases are the branches of
    one `lax.cond` (as optax's `apply_if_finite`): `inner` updates its state in
    place, where selecting the new or the old state would make XLA copy it.

    With `max_consecutive=k`, at most k non-finite steps in a row are skipped: once
    k have been skipped, further consecutive non-finite steps are passed to `inner`
    (so a run that is truly diverging shows it, as optax's `apply_if_finite` does),
    until a finite step resets the count. With None (default) every non-finite step
    is skipped.

    Args:
      inner: the transform to protect (typically the whole optimizer chain).
      max_consecutive: k >= 0 (an int, or an integer array that may be traced),
        or None for no limit.

    Returns:
      A GradientTransformation with state `SkipNonfiniteState`.

    Raises:
      ValueError: if a concrete `max_consecutive` is negative or above the
        int32 maximum.
      TypeError: if `inner` is not a transform or `max_consecutive` is not an
        integer or None.
    """
    check_transform("inner", inner)
    inner = with_extra_args_support(inner)
    limit = max_consecutive
    if limit is not None:
        # A Python int (not a NumPy int64) compares with the int32 count under
        # strict promotion too.
        limit = check_int("max_consecutive", limit, 0, jnp.iinfo(jnp.int32).max)

    def init(params):
        # Two arrays, not one shared: a state whose leaves share a buffer cannot
        # be donated (`jit(..., donate_argnums=...)` refuses to donate it twice).
        return SkipNonfiniteState(
            inner.init(params), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)
        )

    def update(updates, state, params=None, **extra_args):
        finite = all_finite(updates)
        consecutive = jnp.where(
            finite, jnp.zeros_like(state.consecutive), safe_increment(state.consecutive)
        )
        apply = finite
        if limit is not None:
            apply = finite | (consecutive > limit)
        out, kept_inner = apply_or_skip(
            apply,
            lambda u, s, p: inner.update(u, s, p, **extra_args),
            updates,
            state.inner_state,
            params,
        )
        total = jnp.where(
            apply, state.total_skipped, safe_increment(state.total_skipped)
        )
        return out, SkipNonfiniteState(kept_inner, consecutive, total)

    return GradientTransformation(init, update)
