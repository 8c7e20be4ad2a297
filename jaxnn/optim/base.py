"""The gradient-transformation protocol: GradientTransformation, chain, apply_updates.

A transform is a pair of pure functions, `init(params) -> state` and
`update(updates, state, params=None, **extra_args) -> (updates, new_state)`, named
and called as optax's, so jaxnn and optax transforms chain with each other. States
are NamedTuples (or tuples) of arrays. The helpers for writing a transform
(`stateless`, `with_extra_args_support`, `safe_increment`, `Schedule`,
`ScalarOrSchedule`) are public, as in optax.
"""

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeAlias, Union

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxnn._checks import (
    check_callable,
    check_chain_state,
    check_integer_array,
    check_transform,
    check_tree_matches,
)
from jaxnn._dtypes import promote_types

Params = Any
Updates = Any
OptState = Any


class Schedule(Protocol):
    """A function of the step count, `schedule(count) -> value` (optax's Schedule)."""

    def __call__(self, count: jax.Array, /) -> ArrayLike:
        """The value at step `count`, the int32 number of updates before this one.

        Returns:
          The hyperparameter's value at that step (a number or a scalar array).
        """


# typing.Union, not `|`: a types.UnionType cannot carry a docstring.
ScalarOrSchedule: TypeAlias = Union[float, jax.Array, Schedule]  # noqa: UP007
ScalarOrSchedule.__doc__ = """A hyperparameter: a number or (traced) array, used at
every step, or a `Schedule` called with the step count (as optax's)."""


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


def stateless(f: Callable[[Updates, Params], Updates]) -> GradientTransformation:
    """Builds a transform with no state from `f(updates, params) -> updates`.

    Args:
      f: a pure function of the updates and the params (None if not given).

    Returns:
      A GradientTransformation whose state is `EmptyState()`.
    """
    check_callable("f", f)

    def update(updates, state, params=None, **extra_args):
        return f(updates, params), state

    return GradientTransformation(lambda params: EmptyState(), update)


def identity() -> GradientTransformation:
    """Returns the transform that passes updates through unchanged.

    Returns:
      A GradientTransformation with state `EmptyState()`.
    """
    return stateless(lambda updates, params: updates)


def with_extra_args_support(tx: Any) -> GradientTransformation:
    """Wraps `tx` so its `update` accepts and ignores unknown keywords.

    Transforms whose `update` already takes `**kwargs` (every jaxnn transform,
    optax's `GradientTransformationExtraArgs`) get the keywords forwarded; others
    (optax's plain `GradientTransformation`) get none.

    Args:
      tx: any object with `init` and `update` (optax's name).

    Returns:
      A GradientTransformation with the same init and state.

    Raises:
      TypeError: if `tx` has no callable `init` and `update`.
    """
    check_transform("tx", tx)
    try:
        params = inspect.signature(tx.update).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: no **kwargs
        params = ()  # type: ignore[assignment]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return GradientTransformation(tx.init, tx.update)

    def update(updates, state, params=None, **extra_args):
        return tx.update(updates, state, params)

    return GradientTransformation(tx.init, update)


def chain(*transforms: Any) -> GradientTransformation:
    """Applies `transforms` one after the other; the state is a tuple of theirs.

    Any object with `init` and `update` fields chains, optax's included. Extra
    keyword arguments of `update` are forwarded to the transforms whose `update`
    takes `**kwargs` and withheld from the others (see `with_extra_args_support`).

    Args:
      *transforms: the transforms, first applied first.

    Returns:
      A GradientTransformation whose state is a tuple with one state per transform.

    Raises:
      TypeError: if an argument has no callable `init` and `update`.
    """
    for i, t in enumerate(transforms):
        check_transform(f"chain argument {i}", t)
    wrapped = tuple(with_extra_args_support(t) for t in transforms)

    def init(params):
        return tuple(t.init(params) for t in wrapped)

    def update(updates, state, params=None, **extra_args):
        check_chain_state(state, len(wrapped))
        new_state = []
        for t, s in zip(wrapped, state, strict=True):
            updates, s = t.update(updates, s, params, **extra_args)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns `params + updates`, leaf by leaf, each in the dtype of its param.

    The sum is formed in the wider of the two dtypes and cast back, so float32
    updates applied to bfloat16 params round once. `None` leaves stay `None`.

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
        p, u = jnp.asarray(p), jnp.asarray(u)
        wide = promote_types(p.dtype, u.dtype)
        return (p.astype(wide) + u.astype(wide)).astype(p.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)


def safe_increment(count: jax.Array) -> jax.Array:
    """Adds 1 to an int32 step count, saturating at the int32 maximum (as optax).

    Args:
      count: an int32 scalar.

    Returns:
      `count + 1`, or `count` if it is already the largest int32.

    Raises:
      TypeError: if `count` is not an integer.
    """
    check_integer_array("count", count)
    top = jnp.iinfo(jnp.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)
