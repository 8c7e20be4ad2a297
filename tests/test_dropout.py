"""Dropout: statistics on 1e6 elements, flax.linen.Dropout semantics, edge cases."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32

from jaxnn import dropout
from tests.helpers import TOL

KEY = jax.random.key(0)
N = 1_000_000


def five_sigma(rate, n=N):
    return 5 * np.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drop_fraction_and_scaling_on_1e6_elements(rate, maybe_jit):
    x = jnp.ones((1000, 1000), jnp.float32)
    y = np.asarray(maybe_jit(lambda k, x: dropout(k, x, rate))(KEY, x))
    dropped = y == 0
    assert abs(dropped.mean() - rate) < five_sigma(rate)
    np.testing.assert_allclose(
        y[~dropped], np.float32(1 / (1 - rate)), **TOL["roundings"]
    )
    y_classic = np.asarray(dropout(KEY, x, rate, inverted=False))
    assert abs((y_classic == 0).mean() - rate) < five_sigma(rate)
    assert set(np.unique(y_classic)) == {0.0, 1.0}


def test_matches_flax_dropout_statistics_and_modes():
    rate = 0.3
    x = jax.random.normal(jax.random.key(1), (1000, 1000))
    mod = nn.Dropout(rate)
    y_flax = mod.apply({}, x, deterministic=False, rngs={"dropout": KEY})
    y = dropout(jax.random.key(2), x, rate)
    # Different streams, same law: equal drop fraction, kept values x / (1 - rate).
    assert abs(np.mean(y == 0) - np.mean(y_flax == 0)) < 2 * five_sigma(rate)
    kept = np.asarray(y != 0)
    np.testing.assert_allclose(
        np.asarray(y)[kept], np.asarray(x)[kept] / (1 - rate), **TOL["roundings"]
    )
    np.testing.assert_array_equal(
        dropout(None, x, rate, deterministic=True),
        mod.apply({}, x, deterministic=True),
    )
    # flax's broadcast_dims and rate 0 / 1 behave as ours.
    for r in (0.0, 1.0):
        np.testing.assert_array_equal(
            dropout(KEY, x, r),
            nn.Dropout(r).apply({}, x, deterministic=False, rngs={"dropout": KEY}),
        )


def test_expectation_equal_in_inverted_and_classic_forms():
    rate = 0.4
    x = jax.random.normal(jax.random.key(3), (50,)) + 2.0
    keys = jax.random.split(KEY, 20_000)
    inv = jax.vmap(lambda k: dropout(k, x, rate))(keys).mean(0)
    cls = jax.vmap(lambda k: dropout(k, x, rate, inverted=False))(keys).mean(0)
    # Sampling bounds, per element: 4 standard deviations of a mean of n draws of
    # x·mask (classic), |x|·sqrt(rate(1 - rate) / n), and of x·mask / (1 - rate)
    # (inverted). At most 0.072 and 0.12 here (largest |x| ≈ 5.2).
    sd = np.abs(np.asarray(x, np.float64)) * np.sqrt(rate * (1 - rate) / len(keys))
    np.testing.assert_array_less(
        np.abs(inv - dropout(None, x, rate, deterministic=True)), 4 * sd / (1 - rate)
    )
    np.testing.assert_array_less(
        np.abs(cls - dropout(None, x, rate, deterministic=True, inverted=False)),
        4 * sd,
    )
    np.testing.assert_allclose(
        dropout(None, x, rate, deterministic=True, inverted=False),
        x * 0.6,
        **TOL["roundings"],
    )
    # The same keys draw the same masks: equal up to rounding.
    np.testing.assert_allclose(inv * (1 - rate), cls, **TOL["roundings_near_zero"])


def test_same_key_same_mask_and_new_key_new_mask():
    x = jnp.ones((64, 33))
    a, b = dropout(KEY, x, 0.5), dropout(KEY, 2 * x, 0.5)
    np.testing.assert_array_equal(a == 0, b == 0)
    np.testing.assert_array_equal(a, jax.jit(dropout)(KEY, x, 0.5))
    c = dropout(jax.random.key(1), x, 0.5)
    assert not np.array_equal(a == 0, c == 0)


@pytest.mark.parametrize("shape", [(7, 3), (1,), (), (5, 1, 2), (2, 0)])
def test_odd_and_small_shapes(shape):
    x = jnp.ones(shape)
    y = dropout(KEY, x, 0.5)
    assert y.shape == shape and y.dtype == x.dtype


def test_both_halves_of_each_random_block_are_used_independently():
    # Elements 2i and 2i + 1 of the last axis come from one threefry block.
    y = np.asarray(dropout(KEY, jnp.ones((1000, 1000)), 0.5) == 0)
    top, bottom = y[:, 0::2].ravel(), y[:, 1::2].ravel()
    assert abs(top.mean() - 0.5) < five_sigma(0.5, top.size)
    assert abs(bottom.mean() - 0.5) < five_sigma(0.5, bottom.size)
    both = np.mean(top & bottom)
    assert abs(both - 0.25) < five_sigma(0.25, top.size)


@pytest.mark.parametrize(
    "key",
    [jax.random.PRNGKey(0), jax.random.key(0, impl="rbg")],
    ids=["raw_uint32", "rbg"],
)
def test_other_key_kinds(key):
    y = dropout(key, jnp.ones((1000, 100)), 0.25)
    assert abs(float(jnp.mean(y == 0)) - 0.25) < five_sigma(0.25, 1e5)


def test_broadcast_dims_share_the_mask():
    x = jnp.ones((16, 8, 8, 32))
    y = np.asarray(dropout(KEY, x, 0.5, broadcast_dims=(1, 2)))
    assert np.all(y == y[:, :1, :1, :])
    assert 0.3 < np.mean(y == 0) < 0.7
    y = np.asarray(dropout(KEY, x, 0.5, broadcast_dims=(-1,)))
    assert np.all(y == y[..., :1])


def test_rate_zero_returns_x_and_rate_one_zeros_with_zero_gradients():
    x = jax.random.normal(KEY, (8, 8))
    assert dropout(KEY, x, 0.0) is x
    np.testing.assert_array_equal(dropout(KEY, x, 1.0), np.zeros((8, 8)))
    g = jax.grad(lambda x: jnp.sum(dropout(KEY, x, 1.0)))(x)  # concrete rate
    np.testing.assert_array_equal(g, np.zeros((8, 8)))
    for inverted in (True, False):  # traced rate = 1 under jit

        @jax.jit
        def value_and_grad(x, r, inverted=inverted):
            return jax.value_and_grad(
                lambda x: jnp.sum(dropout(KEY, x, r, inverted=inverted))
            )(x)

        y, g = value_and_grad(x, jnp.float32(1.0))
        assert float(y) == 0.0
        np.testing.assert_array_equal(g, np.zeros((8, 8)))


def test_traced_rate_under_jit():
    x = jnp.ones((1000, 1000))
    y = jax.jit(dropout)(KEY, x, jnp.float32(0.2))
    assert abs(float(jnp.mean(y == 0)) - 0.2) < five_sigma(0.2)
    np.testing.assert_allclose(float(jnp.max(y)), 1.25, **TOL["roundings"])


def test_gradient_is_mask_over_keep_probability():
    x = jax.random.normal(KEY, (100, 10))
    y, vjp = jax.vjp(lambda x: dropout(KEY, x, 0.2), x)
    (g,) = vjp(jnp.ones_like(y))
    mask = np.asarray(y != 0)  # x ≠ 0 almost surely
    np.testing.assert_allclose(g, mask / 0.8, **TOL["roundings"])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_kept(dtype):
    y = dropout(KEY, jnp.ones((100, 100), dtype), 0.5)
    assert y.dtype == dtype
    assert set(np.unique(np.asarray(y, np.float32))) == {0.0, 2.0}


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_rate_out_of_range_raises(rate):
    with pytest.raises(ValueError, match="rate must be in"):
        dropout(KEY, jnp.ones(4), rate)
    with pytest.raises(ValueError, match="rate must be in"):
        dropout(None, jnp.ones(4), rate, deterministic=True)


def test_missing_or_invalid_key_raises():
    with pytest.raises(ValueError, match="needs a PRNG key"):
        dropout(None, jnp.ones(4), 0.5)
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        dropout(3, jnp.ones(4), 0.5)
    with pytest.raises(ValueError, match="single PRNG key"):
        dropout(jax.random.split(KEY, 2), jnp.ones(4), 0.5)
    dropout(None, jnp.ones(4), 0.5, deterministic=True)  # no key needed


def test_bad_x_and_broadcast_dims_raise():
    with pytest.raises(TypeError, match="floating"):
        dropout(KEY, jnp.ones(4, jnp.int32), 0.5)
    with pytest.raises(ValueError, match="broadcast_dims"):
        dropout(KEY, jnp.ones((4, 4)), 0.5, broadcast_dims=(2,))


# The documented draw (module docstring of jaxnn/dropout.py), rebuilt here from
# public JAX APIs: the key's data folded to two uint32 words by XOR is the
# threefry key k that hashes the counters (0, c); block c gives elements 2c and
# 2c + 1 of a row (hi, lo words), rows padded to even length; element j is kept
# iff bits_j >= floor(f32(rate)·2³²).


def reference_keypair(key):
    data = np.asarray(jax.random.key_data(key), np.uint32).ravel()
    data = np.concatenate([data, np.zeros(data.size % 2, np.uint32)])
    folded = np.bitwise_xor.reduce(data.reshape(-1, 2), axis=0)
    return jnp.uint32(folded[0]), jnp.uint32(folded[1])


def reference_bits_one_by_one(key, shape):
    """The bits, hashing each block on its own (one threefry_2x32 call each)."""
    k = reference_keypair(key)
    rows, n = shape
    half = -(-n // 2)
    out = np.zeros(shape, np.uint64)
    for r in range(rows):
        for j in range(n):
            c = r * half + j // 2
            pair = threefry_2x32((k[0], k[1]), jnp.array([0, c], jnp.uint32))
            out[r, j] = int(pair[j % 2])
    return out


def reference_bits(key, shape):
    """The same bits, all blocks in one call (checked against the above)."""
    k = reference_keypair(key)
    rows, n = shape
    half = -(-n // 2)
    c = jnp.arange(rows * half, dtype=jnp.uint32)
    out = np.asarray(threefry_2x32((k[0], k[1]), jnp.concatenate([0 * c, c])))
    hi, lo = out[: c.size].reshape(rows, half), out[c.size :].reshape(rows, half)
    return np.stack([hi, lo], axis=-1).reshape(rows, 2 * half)[:, :n].astype(np.uint64)


def reference_keep(bits, rate):
    threshold = np.floor(np.float64(np.float32(rate)) * 2.0**32)
    return bits >= threshold


@pytest.mark.parametrize("shape", [(3, 4), (2, 5)])
@pytest.mark.parametrize(
    "key",
    [jax.random.key(7), jax.random.PRNGKey(7), jax.random.key(7, impl="rbg")],
    ids=["threefry", "raw_uint32", "rbg"],
)
def test_mask_is_the_documented_draw(shape, key):
    bits = reference_bits_one_by_one(key, shape)
    np.testing.assert_array_equal(reference_bits(key, shape), bits)
    for rate in (0.1, 0.5, 1 / 3, 0.999):
        kept = np.asarray(dropout(key, jnp.ones(shape), rate) != 0)
        np.testing.assert_array_equal(kept, reference_keep(bits, rate))


@pytest.mark.parametrize("rate", [0.1, 0.5, 1 / 3, 0.999, 2.0**-30, 1 - 2.0**-26])
def test_same_mask_for_a_concrete_and_a_traced_rate(rate):
    x = jax.random.normal(jax.random.key(5), (257, 33)) + 8.0  # no zeros
    eager = dropout(KEY, x, rate)
    closed_over = jax.jit(lambda k, x: dropout(k, x, rate))(KEY, x)
    traced = jax.jit(dropout)(KEY, x, rate)  # rate is an argument: traced
    np.testing.assert_array_equal(closed_over, eager)
    np.testing.assert_array_equal(traced, eager)
    if np.float32(rate) == 1:  # 1 − 2⁻²⁶ rounds to 1 in float32: all dropped
        assert not np.any(np.asarray(eager))


def test_threshold_at_a_drawn_value_is_the_same_for_concrete_and_traced():
    # A drawn value v that float32 thresholds can hit exactly (a multiple of 2⁸),
    # and rates just above v/2³² that float32 rounds to v/2³² (keep the element)
    # or that sit one float32 step above it (drop it). A threshold computed in
    # float64 for one kind of rate and in float32 for the other disagrees here.
    shape = (64, 64)
    bits = reference_bits(KEY, shape)
    hits = np.argwhere((bits % 256 == 0) & (bits > 0))
    assert len(hits), "no drawn value is a multiple of 256 (choose another key)"
    r, j = hits[0]
    v = int(bits[r, j])
    x = jnp.ones(shape)
    for rate, kept in [((v + 0.75) / 2**32, True), ((v + 256) / 2**32, False)]:
        for y in (dropout(KEY, x, rate), jax.jit(dropout)(KEY, x, rate)):
            assert bool(y[r, j] != 0) is kept, (rate, kept)
            np.testing.assert_array_equal(y != 0, reference_keep(bits, rate))


def test_masks_are_nested_in_the_rate():
    # One draw of bits, compared with a threshold that grows with the rate: an
    # element dropped at some rate is dropped at every larger rate.
    x = jnp.ones((300, 301))
    rates = [0.0, 1e-6, 0.1, 1 / 3, 0.5, 0.999, 1.0]
    dropped = [np.asarray(jax.jit(dropout)(KEY, x, r) == 0) for r in rates]
    for smaller, larger in itertools.pairwise(dropped):
        assert np.all(smaller <= larger)
