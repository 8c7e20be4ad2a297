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


def as_stored(x: jax.Array, dtype: Any) -> jax.Array:
    """`x` rounded to `dtype` and back, where `dtype` keeps `x`'s exponent range.

    An optimizer's new state, e.g. m = β₁m + (1 − β₁)g, is computed in float32 or
    wider. Where its dtype has the exponent range of that computation (bfloat16
    under float32), its update reads it as stored: the value the next step starts
    from, and with bfloat16 params what optax computes in their dtype. Reading
    the unrounded value instead makes XLA recompute it from the old state, which
    the in-place write of the new one overwrites, so the whole state is copied
    first (a donated bfloat16 adamw step 1.3x slower on XLA:CPU).

    A narrower range (float16 state, or float32 state under float64) is not read
    as stored: squared moments underflow there (g² flushes to 0 in float16 below
    |g| ~ 2e-4), and an update divided by a flushed √v explodes. Those states are
    read unrounded and stored rounded, as before, and XLA copies them; keep
    float16 params' moments in float32 (`mu_dtype`, `nu_dtype`) to avoid both.

    Args:
      x: a new state value, floating or complex, in the compute dtype.
      dtype: the state's dtype (its real part's for real `x`), at most as wide.

    Returns:
      `x` as it will be stored, in `x`'s dtype; `x` itself where `dtype` is
      `x`'s or has a narrower range.
    """
    wide = x.dtype
    if not is_complex(wide):
        dtype = real_dtype(dtype)
    if jnp.finfo(dtype).maxexp < jnp.finfo(wide).maxexp or jnp.dtype(dtype) == wide:
        return x
    return x.astype(dtype).astype(wide)
