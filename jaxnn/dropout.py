"""Dropout with an explicit PRNG key, inverted (default) or classic.

The mask is drawn from raw random bits compared against an integer threshold
(P(drop) = round(rate·2³²)/2³², exact to 2⁻³³), which skips the float conversion of
`jax.random.bernoulli`. For threefry keys (JAX's default) both 32-bit words of each
threefry2x32 block are used, halving the hashing work of `jax.random.bits`, which
XORs the two words into one; other key implementations use `jax.random.bits`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p

from jaxnn._checks import check_in_range

_TWO_32 = 2**32


def _check_key(key: Any) -> None:
    if key is None:
        raise ValueError(
            "dropout needs a PRNG key when deterministic=False; pass "
            "jax.random.key(seed) (or a split of it), or deterministic=True"
        )
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"dropout needs a single PRNG key, got a key array of shape "
                f"{key.shape}; use jax.vmap to apply one key per example"
            )
        return
    if dtype == jnp.uint32 and np.shape(key) == (2,):
        return  # a legacy raw key from jax.random.PRNGKey
    raise TypeError(
        "key must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
        f"got {key!r}"
    )


def _is_threefry(key: jax.Array) -> bool:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)) == "threefry2x32"
    return jax.config.jax_default_prng_impl == "threefry2x32"  # type: ignore[attr-defined]


def _random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 random bits of `shape`, two per threefry2x32 block when possible."""
    if not _is_threefry(key) or not shape or math.prod(shape) == 0:
        return jax.random.bits(key, shape, jnp.uint32)
    data = jax.random.key_data(key) if key.dtype != jnp.uint32 else key
    return _threefry_bits(data, shape)


@partial(jax.jit, static_argnums=1)
def _threefry_bits(data: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    # jit caches the compiled hash, so eager calls do not re-lower it each time.
    # Block i of the hash gives the adjacent elements 2i and 2i + 1 of the last
    # axis. Pairing neighbours keeps the draw local to each shard when the array is
    # sharded (on any axis but the last, or on the last in even-sized pieces).
    n = shape[-1]
    half = (*shape[:-1], -(-n // 2))
    counts = lax.iota(jnp.uint32, math.prod(half)).reshape(half)
    hi, lo = threefry2x32_p.bind(data[0], data[1], jnp.zeros_like(counts), counts)
    bits = jnp.stack([hi, lo], axis=-1).reshape(*shape[:-1], 2 * half[-1])
    return bits[..., :n] if 2 * half[-1] != n else bits


def _threshold(rate: Any, concrete: bool) -> jax.Array:
    """The uint32 t with P(bits < t) = rate, to within 2⁻³³ (2⁻²⁴ if traced)."""
    if concrete:
        return jnp.uint32(min(round(float(rate) * _TWO_32), _TWO_32 - 1))
    # float32 holds rate·2³² to 24 bits; the clip keeps the conversion in range
    # (rate = 1 is handled by the caller).
    t = jnp.asarray(rate, jnp.float32) * jnp.float32(_TWO_32)
    return jnp.clip(t, 0.0, jnp.float32(_TWO_32 - 256)).astype(jnp.uint32)


def dropout(
    key: Any,
    x: Any,
    rate: float,
    *,
    deterministic: bool = False,
    inverted: bool = True,
    broadcast_dims: Sequence[int] = (),
) -> jax.Array:
    """Zeroes each element of `x` with probability `rate`.

    With keep probability p = 1 − rate and an independent mask mᵢ ~ Bernoulli(p):
      * inverted (default): training yᵢ = mᵢ·xᵢ/p, inference (`deterministic`) y = x;
      * classic (`inverted=False`, the notes' form): training yᵢ = mᵢ·xᵢ, inference
        y = p·x.
    Both have E[y_train] = y_inference. `rate = 0` returns `x`; `rate = 1` returns
    zeros (with zero, not NaN, gradients).

    Args:
      key: PRNG key (`jax.random.key` or legacy `PRNGKey`). The same key gives the
        same mask; ignored (may be None) when `deterministic`.
      x: input array of any shape.
      rate: drop probability in [0, 1] (not the keep probability). May be traced.
      deterministic: inference mode: no mask (see above for the scaling).
      inverted: scale by 1/(1 − rate) in training (True) or by (1 − rate) at
        inference (False).
      broadcast_dims: axes along which the mask is shared (e.g. the spatial axes
        for channel-wise "spatial dropout").

    Returns:
      An array with the shape and dtype of `x`.

    Raises:
      ValueError: if a concrete `rate` is outside [0, 1], `broadcast_dims` names an
        axis `x` does not have, or the key is missing in training.
      TypeError: if `key` is not a PRNG key in training.

    References:
      Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
      Overfitting", JMLR 2014.
    """
    check_in_range("rate", rate, 0.0, 1.0, high_inclusive=True)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must be a floating array, got dtype {x.dtype}")
    dims = set()
    for d in broadcast_dims:
        if not isinstance(d, int | np.integer) or not -x.ndim <= d < x.ndim:
            raise ValueError(
                f"broadcast_dims must be axes of x (ndim {x.ndim}), got "
                f"{tuple(broadcast_dims)!r}"
            )
        dims.add(int(d) % x.ndim)
    concrete = not isinstance(rate, jax.core.Tracer)
    if deterministic:
        if inverted or (concrete and rate == 0):
            return x
        return x * jnp.asarray(1 - rate, x.dtype)
    if concrete and rate == 0:
        return x
    _check_key(key)
    if concrete and rate == 1:
        return jnp.zeros_like(x)

    mask_shape = tuple(1 if i in dims else n for i, n in enumerate(x.shape))
    bits = _random_bits(key, mask_shape)
    keep = bits >= _threshold(rate, concrete)
    if not concrete:
        keep = keep & (jnp.asarray(rate) < 1)
    keep = jnp.broadcast_to(keep, x.shape)
    if inverted:
        p = 1 - jnp.asarray(rate, jnp.float32)
        scale = jnp.where(p > 0, 1 / jnp.where(p > 0, p, 1), 0).astype(x.dtype)
        kept = x * scale
    else:
        kept = x
    return jnp.where(keep, kept, jnp.zeros((), x.dtype))
