"""Argument validation shared by every jaxnn module (private).

Hyperparameters are checked when a transform or layer is built, and only when they
are concrete: a traced value (under `jax.jit`, or a learning rate injected as an
array) passes through unchecked, because its value is unknown at trace time.
Pytree mismatches are checked at trace time, where structures and shapes are static.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _concrete_values(name: str, value: Any) -> np.ndarray | None:
    """Returns `value` as a float64 NumPy array, or None if it is traced."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool) or not _is_numeric(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return np.asarray(value, dtype=np.float64)
    except jax.errors.ConcretizationTypeError:
        return None


def _is_numeric(value: Any) -> bool:
    if isinstance(value, int | float | np.number):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and (
        np.issubdtype(dtype, np.floating)
        or np.issubdtype(dtype, np.integer)
        or str(dtype) == "bfloat16"
    )


def check_in_range(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> None:
    """Raises ValueError unless a concrete `value` lies in the given interval.

    Args:
      name: the argument's name, used in the message.
      value: a number or an array of numbers; traced values are not checked.
      low: lower bound.
      high: upper bound.
      low_inclusive: whether `low` itself is allowed.
      high_inclusive: whether `high` itself is allowed.

    Raises:
      TypeError: if `value` is not a real number.
      ValueError: if any element of `value` is outside the interval (NaN included).
    """
    arr = _concrete_values(name, value)
    if arr is None:
        return
    above = arr >= low if low_inclusive else arr > low
    below = arr <= high if high_inclusive else arr < high
    if not np.all(above & below):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")


def check_real(name: str, value: Any) -> None:
    """Raises TypeError unless `value` is a real number or array (or traced).

    Args:
      name: the argument's name, used in the message.
      value: the value to check.
    """
    _concrete_values(name, value)


def check_array_tree(name: str, tree: Any) -> None:
    """Raises TypeError naming the leaf if a leaf of `tree` is not a numeric array.

    Args:
      name: the tree's name, used in the message.
      tree: a pytree whose leaves should be arrays (or numbers, or tracers).
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = getattr(leaf, "dtype", None)
        if isinstance(leaf, int | float | complex) or (
            dtype is not None
            and (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))
        ):
            continue
        if not isinstance(leaf, jax.core.Tracer):
            raise TypeError(
                f"{name}{jax.tree_util.keystr(path)} must be a numeric array, got "
                f"{leaf!r}"
            )


def check_callable(name: str, value: Any) -> None:
    """Raises TypeError unless `value` is callable.

    Args:
      name: the argument's name, used in the message.
      value: the value to check.
    """
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r}")


def check_nonnegative(name: str, value: Any) -> None:
    """Raises ValueError unless a concrete `value` is >= 0 (and not NaN).

    Args:
      name: the argument's name, used in the message.
      value: a number or an array of numbers; traced values are not checked.
    """
    check_in_range(name, value, 0.0, math.inf, high_inclusive=True)


def check_decay(name: str, value: Any) -> None:
    """Raises ValueError unless a concrete `value` is in [0, 1).

    Args:
      name: the argument's name, used in the message.
      value: a number or an array of numbers; traced values are not checked.
    """
    check_in_range(name, value, 0.0, 1.0)


def check_learning_rate(value: Any) -> None:
    """Checks a learning rate: a finite number >= 0, or a schedule (callable).

    Args:
      value: the learning rate or schedule.

    Raises:
      TypeError: if `value` is neither a number nor a callable.
      ValueError: if a concrete number is negative, infinite or NaN.
    """
    if callable(value):
        return
    check_in_range("learning_rate", value, 0.0, math.inf)


def check_tree_matches(
    reference: Any, ref_name: str, tree: Any, name: str, *, shapes: bool = True
) -> None:
    """Raises ValueError unless `tree` has the structure (and shapes) of `reference`.

    Used where a transform combines the incoming updates with per-parameter state
    (or params), so that a state built for another model fails with a message that
    names both sides instead of a bare `tree_map` error.

    Args:
      reference: the tree that sets the expected structure (usually the updates).
      ref_name: its name in the message.
      tree: the tree to check.
      name: its name in the message.
      shapes: whether leaf shapes must match too (not only the structure).
    """
    ref_def = jax.tree.structure(reference)
    tree_def = jax.tree.structure(tree)
    if ref_def != tree_def:  # type: ignore[operator]
        raise ValueError(
            f"{name} does not match the structure of {ref_name}: {ref_name} is "
            f"{ref_def}, {name} is {tree_def}. Was the state built by init() for "
            "the same parameters?"
        )
    if not shapes:
        return
    paths_and_leaves, _ = jax.tree_util.tree_flatten_with_path(reference)
    for (path, a), b in zip(paths_and_leaves, jax.tree.leaves(tree), strict=True):
        if np.shape(a) != np.shape(b):
            where = jax.tree_util.keystr(path)
            raise ValueError(
                f"{name}{where} has shape {np.shape(b)} but {ref_name}{where} has "
                f"shape {np.shape(a)}"
            )
