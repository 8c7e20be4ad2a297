"""Dense layers against a NumPy formula; initialization; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import dense, dense_init
from tests.helpers import TOL


def test_dense_init_shapes_and_default_he_normal():
    params = dense_init(jax.random.key(0), 500, 300)
    assert set(params) == {"w", "b"}
    assert params["w"].shape == (500, 300) and params["b"].shape == (300,)
    assert params["w"].dtype == jnp.float32
    np.testing.assert_array_equal(params["b"], np.zeros(300))
    np.testing.assert_allclose(
        np.var(np.asarray(params["w"], np.float64)), 2 / 500, **TOL["sampling_variance"]
    )


def test_dense_init_custom_initializers():
    params = dense_init(
        jax.random.key(0), 3, 2, w_init=jaxnn.constant(0.5), b_init=jaxnn.constant(1.0)
    )
    np.testing.assert_array_equal(params["w"], np.full((3, 2), 0.5))
    np.testing.assert_array_equal(params["b"], np.ones(2))


def test_dense_matches_numpy(maybe_jit):
    params = dense_init(jax.random.key(1), 4, 3, b_init=jaxnn.normal(1.0))
    x = jax.random.normal(jax.random.key(2), (2, 5, 4))
    y = maybe_jit(dense)(params, x)
    w, b = (np.asarray(params[k], np.float64) for k in "wb")
    np.testing.assert_allclose(y, np.asarray(x, np.float64) @ w + b, **TOL["reduction"])


def test_mlp_from_pieces_trains():
    k1, k2 = jax.random.split(jax.random.key(3))
    params = [dense_init(k1, 2, 16), dense_init(k2, 16, 1)]
    x = jax.random.normal(jax.random.key(4), (64, 2))
    t = jnp.sin(x[:, :1]) + x[:, 1:] ** 2

    def loss(params):
        h = jaxnn.relu(dense(params[0], x))
        return jaxnn.mean_squared_error(dense(params[1], h), t)

    step = jax.jit(
        lambda p: jax.tree.map(lambda w, g: w - 0.05 * g, p, jax.grad(loss)(p))
    )
    first = loss(params)
    for _ in range(100):
        params = step(params)
    assert loss(params) < 0.5 * first


@pytest.mark.parametrize(
    "n_in, n_out, error",
    [
        (0, 3, ValueError),
        (3, -1, ValueError),
        (2.5, 3, TypeError),
        (True, 3, TypeError),
    ],
)
def test_dense_init_bad_sizes_raise(n_in, n_out, error):
    with pytest.raises(error, match="must be a positive int"):
        dense_init(jax.random.key(0), n_in, n_out)


def test_dense_bad_inputs_raise():
    params = dense_init(jax.random.key(0), 4, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\)"):
        dense(params, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="keys 'w' and 'b'"):
        dense({"w": params["w"]}, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="b of shape"):
        dense({"w": params["w"], "b": jnp.ones(4)}, jnp.ones((2, 4)))
