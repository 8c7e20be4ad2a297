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

    float32, or float64 if any operand is float64: bfloat16/float16 operands are
    widened, and every operand is cast explicitly (strict promotion refuses
    bfloat16 + float32).

    Args:
      *dtypes: the operands' dtypes.

    Returns:
      float32 or float64.
    """
    if any(jnp.dtype(d) == jnp.float64 for d in dtypes):
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


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
