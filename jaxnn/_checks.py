"""Argument validation shared by every jaxnn module (private module, public names).

Every check of a user's argument lives here, so each kind of mistake raises one
error type with one kind of message naming the argument and the value:

- TypeError for a wrong type: a string or bool where a number is needed, a float
  where an int is needed, a non-floating dtype or array, a non-callable.
- ValueError for a wrong value: out of range (NaN included), an unknown option,
  mismatched structure or shape.

NumPy scalars and 0-d arrays are accepted wherever Python numbers are.
Hyperparameters are checked when a transform or layer is built, and only when they
are concrete: a traced value (under `jax.jit`, or a learning rate injected as an
array) passes through unchecked, because its value is unknown at trace time.
Pytree mismatches are checked at trace time, where structures and shapes are static.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(value: Any) -> bool:
    """Whether `value` is a tracer (its value is unknown until the program runs).

    Args:
      value: any object.

    Returns:
      True for a `jax.core.Tracer`.
    """
    return isinstance(value, jax.core.Tracer)


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


def _is_int(value: Any) -> bool:
    """True for a Python or NumPy integer, or a 0-d integer array (not a bool)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    dtype = getattr(value, "dtype", None)
    return (
        dtype is not None
        and np.shape(value) == ()
        and jnp.issubdtype(dtype, jnp.integer)
    )


def _int_kind(low: int | None, high: int | None) -> str:
    if high is not None:
        return f"an int in [{low}, {high}]"
    return {None: "an int", 0: "a non-negative int", 1: "a positive int"}.get(
        low, f"an int >= {low}"
    )


def check_int(
    name: str, value: Any, low: int | None = None, high: int | None = None
) -> Any:
    """Checks an integer argument (a count, a size, a number of steps).

    Python ints, NumPy integers and 0-d integer arrays are accepted; a traced
    value passes unchecked.

    Args:
      name: the argument's name, used in the message.
      value: the value to check.
      low: the smallest value allowed (None: no bound).
      high: the largest value allowed (None: no bound).

    Returns:
      A concrete value as a Python int (weakly typed in JAX arithmetic, as a
      literal would be), a traced one as it is.

    Raises:
      TypeError: if `value` is not an integer (bools and floats such as 2.0 are
        not).
      ValueError: if it is outside [low, high].
    """
    if is_traced(value):
        return value
    if not _is_int(value):
        raise TypeError(f"{name} must be {_int_kind(low, high)}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be {_int_kind(low, high)}, got {value!r}")
    return v


def check_positive_int(name: str, value: Any) -> Any:
    """Checks an integer argument that must be >= 1 (see `check_int`).

    Args:
      name: the argument's name, used in the message.
      value: the value to check.

    Returns:
      The value, a Python int if concrete.
    """
    return check_int(name, value, 1)


def check_nonnegative_int(name: str, value: Any) -> Any:
    """Checks an integer argument that must be >= 0 (see `check_int`).

    Args:
      name: the argument's name, used in the message.
      value: the value to check.

    Returns:
      The value, a Python int if concrete.
    """
    return check_int(name, value, 0)


def check_bool(name: str, value: Any, why: str = "") -> None:
    """Raises TypeError unless `value` is a Python or NumPy bool.

    Used for flags that select a code path or decide a structure, which cannot be
    traced.

    Args:
      name: the argument's name, used in the message.
      value: the value to check.
      why: an optional explanation added to the message.
    """
    if not isinstance(value, bool | np.bool_):
        hint = f" ({why})" if why else ""
        raise TypeError(f"{name} must be a Python bool{hint}, got {value!r}")


def check_one_of(name: str, value: Any, options: Sequence[str]) -> None:
    """Raises ValueError unless `value` is one of the option strings `options`.

    Args:
      name: the argument's name, used in the message.
      value: the value to check.
      options: the allowed strings.
    """
    if not (isinstance(value, str) and value in options):
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")


def check_floating_dtype(name: str, dtype: Any, *, allow_none: bool = False) -> Any:
    """Checks a dtype argument and returns it canonicalized.

    Args:
      name: the argument's name, used in the message.
      dtype: anything `jnp.dtype` accepts (`jnp.float32`, "bfloat16", ...).
      allow_none: whether None (meaning "the default") is accepted.

    Returns:
      The `jnp.dtype`, or None if `dtype` is None and that is allowed.

    Raises:
      TypeError: if `dtype` is not a floating dtype.
    """
    if dtype is None and allow_none:
        return None
    try:
        canonical = jnp.dtype(dtype)
    except TypeError:
        canonical = None
    if canonical is None or not jnp.issubdtype(canonical, jnp.floating):
        allowed = "a floating dtype or None" if allow_none else "a floating dtype"
        got = dtype if canonical is None else canonical
        raise TypeError(f"{name} must be {allowed}, got {got!r}")
    return canonical


def _dtype_of(x: Any) -> Any:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(x).dtype
        except (TypeError, ValueError):
            return None
    return dtype


def check_floating_array(name: str, x: Any) -> None:
    """Raises TypeError unless `x` is an array of a floating dtype.

    Args:
      name: the argument's name, used in the message.
      x: an array (or a tracer: its dtype is known at trace time).
    """
    dtype = _dtype_of(x)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating array, got dtype {dtype}")


def check_real_array(name: str, x: Any) -> None:
    """Raises TypeError unless `x` has a real dtype (floating, integer or bool).

    Args:
      name: the argument's name, used in the message.
      x: an array.
    """
    dtype = _dtype_of(x)
    if dtype is None or not (
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or dtype == jnp.bool_
    ):
        raise TypeError(
            f"{name} must be a real (floating or integer) array, got {dtype}"
        )


def check_integer_array(name: str, x: Any, what: str = "an integer array") -> None:
    """Raises TypeError unless `x` has an integer dtype.

    Args:
      name: the argument's name, used in the message.
      x: an array.
      what: what `x` must be, for the message.
    """
    dtype = _dtype_of(x)
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name} must be {what}, got dtype {dtype}")


def check_floating_tree(name: str, tree: Any, *, allow_complex: bool = True) -> None:
    """Raises TypeError naming the leaf if a leaf of `tree` is not floating.

    Args:
      name: the tree's name, used in the message.
      tree: a pytree of arrays.
      allow_complex: whether complex leaves are accepted.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = _dtype_of(leaf)
        ok = dtype is not None and (
            jnp.issubdtype(dtype, jnp.floating)
            or (allow_complex and jnp.issubdtype(dtype, jnp.complexfloating))
        )
        if not ok:
            raise TypeError(
                f"{name}{jax.tree_util.keystr(path)} must be a floating-point "
                f"array, got {type(leaf).__name__} of dtype {dtype}"
            )


def check_axis(name: str, axis: Any, shape: Sequence[int]) -> int:
    """Checks that `axis` names an axis of an array of `shape`; returns it >= 0.

    Args:
      name: the argument's name, used in the message.
      axis: an int in [-ndim, ndim).
      shape: the array's shape.

    Returns:
      The axis as a non-negative Python int.

    Raises:
      TypeError: if `axis` is not an int.
      ValueError: if it is out of range.
    """
    if not _is_int(axis):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    ndim = len(shape)
    if not -ndim <= int(axis) < ndim:
        raise ValueError(
            f"{name} {axis!r} is out of range for shape {tuple(shape)} (ndim "
            f"{ndim}): it must be in [{-ndim}, {ndim})"
        )
    return int(axis) % ndim


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """Checks an array shape (an int is read as a 1-D shape); returns a tuple.

    Args:
      name: the argument's name, used in the message.
      shape: a sequence of ints, or an int.

    Returns:
      The shape as a tuple of Python ints.

    Raises:
      TypeError: if `shape` is not a sequence of ints.
      ValueError: if a dimension is negative.
    """
    if _is_int(shape):
        shape = (shape,)
    if (
        isinstance(shape, str | bytes)
        or not isinstance(shape, Sequence)
        or not all(_is_int(d) for d in shape)
    ):
        raise TypeError(f"{name} must be a sequence of ints, got {shape!r}")
    out = tuple(int(d) for d in shape)
    if any(d < 0 for d in out):
        raise ValueError(f"{name} must have non-negative dimensions, got {out}")
    return out


def check_transform(name: str, value: Any) -> None:
    """Raises TypeError unless `value` has callable `init` and `update` fields.

    Args:
      name: the argument's name, used in the message.
      value: a gradient transformation (jaxnn's, optax's, or any such object).
    """
    if not (
        callable(getattr(value, "init", None))
        and callable(getattr(value, "update", None))
    ):
        raise TypeError(
            f"{name} must be a gradient transformation with init and update, "
            f"got {value!r}"
        )


def check_chain_state(state: Any, n: int) -> None:
    """Raises ValueError unless `state` is a tuple of `n` states (a chain's).

    Args:
      state: the state given to a chain's `update`.
      n: the number of transforms in the chain.
    """
    if not isinstance(state, tuple) or len(state) != n:
        length = f" of length {len(state)}" if hasattr(state, "__len__") else ""
        raise ValueError(
            f"chain of {n} transforms expects a tuple of {n} states, got "
            f"{type(state).__name__}{length}. Was the state built by this chain's "
            "init()?"
        )


def check_prng_key(name: str, key: Any, who: str, hint: str = "") -> None:
    """Checks a single PRNG key: a typed key (`jax.random.key`) or a raw one.

    Args:
      name: the argument's name, used in the message.
      key: `jax.random.key(seed)` (shape ()) or a legacy `jax.random.PRNGKey`
        (uint32 of shape (2,)).
      who: the function that needs the key, for the message.
      hint: what else the caller could do instead, for the message.

    Raises:
      ValueError: if the key is missing (None) or is a batch of typed keys.
      TypeError: if it is not a PRNG key.
    """
    if key is None:
        raise ValueError(
            f"{who} needs a PRNG key, got {name}=None; pass jax.random.key(seed) "
            f"(or a split of it){hint}"
        )
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"{name} must be a single PRNG key, got a key array of shape "
                f"{key.shape}; use jax.vmap to apply one key per example"
            )
        return
    if dtype == jnp.uint32 and np.shape(key) == (2,):
        return  # a legacy raw key from jax.random.PRNGKey
    raise TypeError(
        f"{name} must be a PRNG key (jax.random.key(seed) or "
        f"jax.random.PRNGKey(seed)), got {key!r}"
    )
