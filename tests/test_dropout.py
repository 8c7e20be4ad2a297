"""Dropout: statistics on 1e6 elements, flax.linen.Dropout semantics, edge cases."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import dropout

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
    np.testing.assert_allclose(y[~dropped], np.float32(1 / (1 - rate)), rtol=1e-6)
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
        np.asarray(y)[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6
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
    np.testing.assert_allclose(
        inv, dropout(None, x, rate, deterministic=True), atol=0.12
    )
    np.testing.assert_allclose(
        cls, dropout(None, x, rate, deterministic=True, inverted=False), atol=0.08
    )
    np.testing.assert_allclose(
        dropout(None, x, rate, deterministic=True, inverted=False),
        x * 0.6,
        rtol=1e-6,
    )
    np.testing.assert_allclose(inv * (1 - rate), cls, atol=0.08)


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
    np.testing.assert_allclose(float(jnp.max(y)), 1.25, rtol=1e-6)


def test_gradient_is_mask_over_keep_probability():
    x = jax.random.normal(KEY, (100, 10))
    y, vjp = jax.vjp(lambda x: dropout(KEY, x, 0.2), x)
    (g,) = vjp(jnp.ones_like(y))
    mask = np.asarray(y != 0)  # x ≠ 0 almost surely
    np.testing.assert_allclose(g, mask / 0.8, rtol=1e-6)


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
