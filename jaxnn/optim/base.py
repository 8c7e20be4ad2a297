"""The gradient-transformation protocol: GradientTransformation, chain, apply_updates.

A gradient transformation is a pair of pure functions,

    init(params) -> state
    update(updates, state, params=None, **extra_args) -> (updates, new_state)

with the same field names and calling convention as optax's, so a jaxnn transform can
sit inside `optax.chain` and an optax transform inside `jaxnn.chain`. States are
NamedTuples (or tuples) of arrays: they jit, shard and save like any pytree.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnn._checks import check_tree_matches

Params = Any
Updates = Any
OptState = Any


class GradientTransformation(NamedTuple):
    """A pair of pure functions `(init, update)`, field-compatible with optax's.

    Attributes:
      init: `init(params) -> state`.
      update: `update(updates, state, params=None, **extra_args) -> (updates,
        state)`. Unknown keyword arguments are accepted and ignored.
    """

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class EmptyState(NamedTuple):
    """The state of a stateless transform."""


def _init_empty(params: Params) -> EmptyState:
    del params
    return EmptyState()


def stateless(
    fn: Callable[[Updates, Params | None], Updates],
) -> GradientTransformation:
    """Builds a transform with no state from `fn(updates, params) -> updates`.

    Args:
      fn: a pure function of the incoming updates and the (optional) params.

    Returns:
      A GradientTransformation whose state is `EmptyState()`.
    """

    def update(updates, state, params=None, **extra_args):
        del extra_args
        return fn(updates, params), state

    return GradientTransformation(_init_empty, update)


def identity() -> GradientTransformation:
    """Returns the transform that passes updates through unchanged.

    Returns:
      A GradientTransformation with state `EmptyState()`.
    """
    return stateless(lambda updates, params: updates)


def _accepts_extra_args(update: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Applies `transforms` one after the other; the state is a tuple of theirs.

    Any object with `init` and `update` fields chains, optax transforms included.
    Extra keyword arguments given to `update` are forwarded to the transforms whose
    `update` accepts `**kwargs`, and withheld from those that do not (optax's plain
    `GradientTransformation`).

    Args:
      *transforms: the transforms, first applied first.

    Returns:
      A GradientTransformation whose state is a tuple with one state per transform.

    Raises:
      TypeError: if an argument has no callable `init` and `update`.
    """
    for i, t in enumerate(transforms):
        if not (
            callable(getattr(t, "init", None)) and callable(getattr(t, "update", None))
        ):
            raise TypeError(
                f"chain argument {i} must be a gradient transformation with init "
                f"and update, got {t!r}"
            )
    takes_extra = tuple(_accepts_extra_args(t.update) for t in transforms)

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"chain of {len(transforms)} transforms expects a tuple of "
                f"{len(transforms)} states, got {type(state).__name__} "
                f"{_describe_len(state)}. Was the state built by this chain's init()?"
            )
        new_state = []
        for t, s, extra in zip(transforms, state, takes_extra, strict=True):
            kwargs = extra_args if extra else {}
            updates, s = t.update(updates, s, params, **kwargs)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def _describe_len(state: Any) -> str:
    try:
        return f"of length {len(state)}"
    except TypeError:
        return ""


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns `params + updates`, leaf by leaf, each in the dtype of its param.

    The sum is formed in the wider of the two dtypes and then cast back, so float32
    updates applied to bfloat16 params round once. `None` leaves of `params` stay
    `None`.

    Args:
      params: the parameters.
      updates: updates with the structure of `params`.

    Returns:
      The new parameters, with the structure, shapes and dtypes of `params`.

    Raises:
      ValueError: if `updates` does not match the structure of `params`.
    """
    check_tree_matches(params, "params", updates, "updates")

    def add(p, u):
        if p is None:
            return None
        p = jnp.asarray(p)
        u = jnp.asarray(u)
        wide = jnp.promote_types(p.dtype, u.dtype)
        return (p.astype(wide) + u.astype(wide)).astype(p.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)


def accumulation_dtype(dtype: Any) -> jnp.dtype:
    """The dtype in which jaxnn accumulates sums of squares of `dtype` values.

    float16 and bfloat16 are widened to float32 so norms do not overflow or lose
    precision; float32 and float64 are kept; complex dtypes give their real part's.

    Args:
      dtype: a floating or complex dtype.

    Returns:
      float32 or wider.
    """
    real = jnp.finfo(dtype).dtype
    return jnp.promote_types(real, jnp.float32)


def _sum_of_squares(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    acc = accumulation_dtype(x.dtype)
    if jnp.iscomplexobj(x):
        x = jnp.abs(x)
    x = x.astype(acc)
    return jnp.sum(x * x)


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves of `tree` taken together: sqrt(sum of all x²).

    Squares are summed in float32 (float64 for float64 leaves), so float16 or
    bfloat16 gradients of magnitude 1e3 do not overflow as they would in their own
    dtype.

    Args:
      tree: a pytree of arrays (None leaves are skipped).

    Returns:
      A scalar of dtype float32, or float64 if any leaf is float64. 0 for an
      empty tree.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    acc = functools.reduce(
        jnp.promote_types, (accumulation_dtype(jnp.asarray(x).dtype) for x in leaves)
    )
    total = sum(_sum_of_squares(x).astype(acc) for x in leaves)
    return jnp.sqrt(total)


def norm_dtype(tree: Any) -> jnp.dtype:
    """The dtype `global_norm(tree)` returns (float32 unless a leaf is float64).

    Args:
      tree: a pytree of arrays or `jax.ShapeDtypeStruct`s.

    Returns:
      float32 or float64.
    """
    dtypes = [accumulation_dtype(x.dtype) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.promote_types, dtypes, jnp.dtype(jnp.float32))


def safe_increment(count: jax.Array) -> jax.Array:
    """Adds 1 to an int32 step count, saturating at the int32 maximum.

    Args:
      count: an int32 scalar.

    Returns:
      `count + 1`, or `count` if it is already the largest int32.
    """
    top = jnp.iinfo(jnp.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)
