"""Dtype rules shared by jaxnn modules (private).

jaxnn code must run under `jax.numpy_dtype_promotion("strict")`, where
`jnp.promote_types` refuses e.g. bfloat16 + float32. The helpers here compute the
standard JAX promotion explicitly, and callers cast every operand themselves.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp


def promote_types(*dtypes: Any) -> jnp.dtype:
    """The standard JAX promotion of `dtypes`, whatever the promotion config.

    Args:
      *dtypes: at least one dtype.

    Returns:
      The promoted dtype.
    """
    with jax.numpy_dtype_promotion("standard"):
        return functools.reduce(jnp.promote_types, dtypes)


def compute_dtype(*dtypes: Any) -> jnp.dtype:
    """The dtype of jaxnn's element-wise maths on operands of `dtypes`.

    float32, or float64 if any operand is float64 or complex128: bfloat16/float16
    operands are widened, and every operand is cast explicitly (strict promotion
    refuses bfloat16 + float32). If any operand is complex the result is the
    complex dtype of that precision (complex64 or complex128), so no imaginary
    part is dropped.

    Args:
      *dtypes: the operands' dtypes.

    Returns:
      float32, float64, complex64 or complex128.
    """
    dtypes = tuple(jnp.dtype(d) for d in dtypes)
    wide = any(d in (jnp.float64, jnp.complex128) for d in dtypes)
    if any(jnp.issubdtype(d, jnp.complexfloating) for d in dtypes):
        return jnp.dtype(jnp.complex128 if wide else jnp.complex64)
    return jnp.dtype(jnp.float64 if wide else jnp.float32)


def real_dtype(dtype: Any) -> jnp.dtype:
    """The real dtype of the same precision (float32 for complex64); real kept.

    Args:
      dtype: a floating or complex dtype.

    Returns:
      A real floating dtype.
    """
    return jnp.dtype(jnp.finfo(dtype).dtype)


def is_complex(dtype: Any) -> bool:
    """Whether `dtype` is a complex dtype.

    Args:
      dtype: any dtype.

    Returns:
      True for complex64 and complex128.
    """
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def abs_sq(x: jax.Array) -> jax.Array:
    """|x|², element-wise, as a real array: x·x, or Re(x·conj(x)) if complex.

    The squared magnitude of a complex entry is x·x̄ (real), not x² (complex),
    as optax's `abs_sq`; for real x both are x·x.

    Args:
      x: a floating or complex array.

    Returns:
      A real array of the precision of `x`.
    """
    if is_complex(x.dtype):
        return jnp.real(x * jnp.conj(x))
    return x * x


def real_part(x: jax.Array) -> jax.Array:
    """The real part of `x` (x itself if real), without a complex-to-real cast.

    Args:
      x: an array.

    Returns:
      `jnp.real(x)` for complex `x`, else `x`.
    """
    return jnp.real(x) if is_complex(x.dtype) else x


def float_dtype() -> jnp.dtype:
    """JAX's default floating dtype: float64 under `jax_enable_x64`, else float32.

    Returns:
      float32 or float64.
    """
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def accumulation_dtype(dtype: Any) -> jnp.dtype:
    """The dtype in which jaxnn accumulates sums, norms and statistics of `dtype`.

    float16 and bfloat16 are widened to float32 so sums do not overflow or lose
    precision; float32 and float64 are kept; complex dtypes give their real part's.

    Args:
      dtype: a floating or complex dtype.

    Returns:
      float32 or wider.
    """
    return promote_types(jnp.finfo(dtype).dtype, jnp.float32)


def sum_at(dtype: Any, *terms: jax.Array) -> jax.Array:
    """The sum of `terms` at the precision of `dtype`, in the terms' dtype.

    An optimizer's new moment, e.g. m = β₁m + (1 − β₁)g, is computed in float32,
    but its update must use it at the precision of its operands, as optax does
    (which computes in that dtype): with bfloat16 or float16 params the update
    reads the moment as stored. Reading the unrounded float32 sum instead makes
    XLA recompute it from the old moment, which the in-place write of the new one
    overwrites, so the whole state is copied first (steps 1.3x slower with
    bfloat16 moments, 3.4x with float16; 67 MB scratch per 2^24 float16 moments).

    The rounding is written in the form XLA:CPU's fusion keeps as one read of the
    stored moment (checked in tests/test_compiled_step.py): for float16 a float16
    sum of the rounded terms (a float32 sum rounded by one convert is duplicated
    into its consumers, a float16 convert being cheap), which is within half a
    unit in the last place of each term and of the sum, as optax's float16
    arithmetic; for other dtypes the float32 sum rounded once (a bfloat16 sum is
    emulated in float32 and would be materialized as a second buffer).

    Args:
      dtype: the precision to sum at (its real part's for real terms).
      *terms: arrays of one floating or complex dtype, at least as wide.

    Returns:
      The sum, in the terms' dtype; computed there when `dtype` is as wide.
    """
    wide = terms[0].dtype
    if not is_complex(wide):
        dtype = real_dtype(dtype)
    if jnp.dtype(dtype) == wide:
        return functools.reduce(jnp.add, terms)
    if jnp.dtype(dtype) == jnp.float16:
        narrow = functools.reduce(jnp.add, (t.astype(dtype) for t in terms))
    else:
        narrow = functools.reduce(jnp.add, terms).astype(dtype)
    return narrow.astype(wide)
