"""Dropout with an explicit PRNG key, inverted (default) or classic.

The mask is drawn one way, for a concrete or a traced `rate` alike, through public
JAX APIs. The key's data (`jax.random.key_data`), folded to 64 bits by XOR of its
64-bit words (a threefry key is already 64 bits, and is used as it is), is the key
k of `jax.extend.random.threefry_2x32`, which hashes the counters (0, i); both
32-bit output words of block i are used, as elements 2i and 2i + 1 of the last
axis (half the hashing of `jax.random.bits`, which XORs the two words into one).
Element j is kept iff

    bits_j >= ⌊float32(rate)·2³²⌋     (no element is kept when float32(rate) = 1),

so P(drop) = ⌊float32(rate)·2³²⌋ / 2³², within 2⁻³² of float32(rate), and the
comparison skips the float conversion of `jax.random.bernoulli`. The same key and
rate give the same mask whether `rate` is a Python number or traced.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.random import threefry_2x32

from jaxnn._checks import (
    check_axis,
    check_floating_array,
    check_in_range,
    check_prng_key,
    is_traced,
)

_TWO_32 = 2.0**32


def _hash_bits(keypair: tuple[jax.Array, jax.Array], shape: tuple[int, ...]):
    """uint32 bits of `shape`: block i gives elements 2i and 2i + 1 of each row.

    The counters are numbered row-major over (*shape[:-1], ⌈n/2⌉), each row of the
    last axis padded to even length. Hashing row by row (`vmap` over the leading
    axes) keeps the hash state in the array's shape, so the draw stays local to
    each shard when the array is sharded on any axis but the last, or on the last
    in even-sized pieces.
    """
    n = shape[-1]
    half = (*shape[:-1], -(-n // 2))
    counts = lax.iota(jnp.uint32, math.prod(half)).reshape(half)

    def hash_row(c):
        # threefry_2x32 hashes the pairs (first half, second half) of its input:
        # the blocks (0, c), whose two words are the row's elements 2c, 2c + 1.
        return threefry_2x32(keypair, c)

    for _ in shape[:-1]:
        hash_row = jax.vmap(hash_row)
    out = hash_row(jnp.concatenate([jnp.zeros_like(counts), counts], axis=-1))
    bits = jnp.stack([out[..., : half[-1]], out[..., half[-1] :]], axis=-1)
    bits = bits.reshape(*shape[:-1], 2 * half[-1])
    return bits[..., :n] if 2 * half[-1] != n else bits


def _keypair(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The key's uint32 data folded to two words by XOR (threefry: unchanged)."""
    data = jax.random.key_data(key).ravel()
    if data.size % 2:
        data = jnp.concatenate([data, jnp.zeros((1,), data.dtype)])
    words = data.reshape(-1, 2)
    folded = functools.reduce(jnp.bitwise_xor, list(words))
    return folded[0], folded[1]


@functools.partial(jax.jit, static_argnums=1)
def _keep_mask(key: jax.Array, shape: tuple[int, ...], rate: Any) -> jax.Array:
    """The boolean keep mask of `shape` (see the module docstring).

    `rate` is an argument of this jitted function whether it is concrete or
    traced, so both take one code path; jit also caches the compiled hash for
    eager calls.
    """
    bits = _hash_bits(_keypair(key), shape or (1,)).reshape(shape)
    # float32(rate)·2³² is exact (a power-of-two scaling) and at most 2³², which
    # uint32 cannot hold; below 2³² it is at most 2³² − 256, so the clip only acts
    # when float32(rate) = 1, where no element is kept.
    t = jnp.asarray(rate, jnp.float32) * jnp.float32(_TWO_32)
    threshold = jnp.minimum(t, jnp.float32(_TWO_32 - 256)).astype(jnp.uint32)
    return (bits >= threshold) & (t < _TWO_32)


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
      * classic (`inverted=False`): training yᵢ = mᵢ·xᵢ, inference y = p·x.
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
        axis `x` does not have, or the key is missing (or a batch of keys) in
        training.
      TypeError: if `key` is not a PRNG key in training, `x` is not floating, or
        an entry of `broadcast_dims` is not an int.

    References:
      Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
      Overfitting", JMLR 2014.
    """
    check_in_range("rate", rate, 0.0, 1.0, high_inclusive=True)
    x = jnp.asarray(x)
    check_floating_array("x", x)
    dims = {check_axis("broadcast_dims entry", d, x.shape) for d in broadcast_dims}
    concrete = not is_traced(rate)
    if deterministic:
        if inverted or (concrete and rate == 0):
            return x
        return x * jnp.asarray(1 - rate, x.dtype)
    # Shortcuts with the result the mask would give: keep all, or none.
    if concrete and rate == 0:
        return x
    check_prng_key("key", key, "dropout", ", or deterministic=True")
    if concrete and rate == 1:
        return jnp.zeros_like(x)

    mask_shape = tuple(1 if i in dims else n for i, n in enumerate(x.shape))
    keep = jnp.broadcast_to(_keep_mask(key, mask_shape, rate), x.shape)
    if inverted:
        p = 1 - jnp.asarray(rate, jnp.float32)
        scale = jnp.where(p > 0, 1 / jnp.where(p > 0, p, 1), 0).astype(x.dtype)
        kept = x * scale
    else:
        kept = x
    return jnp.where(keep, kept, jnp.zeros((), x.dtype))
