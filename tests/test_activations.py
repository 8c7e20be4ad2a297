"""Activations against jax.nn and their derivative functions, including z = 0, ±1e4."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import TOL, assert_trees_close

GRID = np.concatenate(
    [[-1e5, -1e4, -100.0, -20.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 20.0, 100.0, 1e4, 1e5]],
)
GRID = jnp.asarray(np.concatenate([GRID, np.linspace(-6, 6, 61)]), jnp.float32)

PAIRS = {
    "sigmoid": (jaxnn.sigmoid, jaxnn.sigmoid_derivative, jax.nn.sigmoid),
    "tanh": (jaxnn.tanh, jaxnn.tanh_derivative, jnp.tanh),
    "relu": (jaxnn.relu, jaxnn.relu_derivative, jax.nn.relu),
    "leaky_relu": (jaxnn.leaky_relu, jaxnn.leaky_relu_derivative, jax.nn.leaky_relu),
}


def numpy_derivative(name, z, slope=0.01):
    """float64 formulas from notes/TECHNIQUES.md section 1."""
    z = np.asarray(z, np.float64)
    # σ(1 − σ) and 1 − tanh² rewritten without cancellation or overflow:
    # σ'(z) = e^−|z| / (1 + e^−|z|)², tanh'(z) = 4e^−2|z| / (1 + e^−2|z|)².
    if name == "sigmoid":
        e = np.exp(-np.abs(z))
        return e / (1 + e) ** 2
    if name == "tanh":
        e = np.exp(-2 * np.abs(z))
        return 4 * e / (1 + e) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    return np.where(z > 0, 1.0, slope)


@pytest.mark.parametrize("name", PAIRS)
def test_grad_equals_derivative_function_everywhere(name, maybe_jit):
    f, df, _ = PAIRS[name]
    grads = maybe_jit(jax.vmap(jax.grad(f)))(GRID)
    np.testing.assert_array_equal(grads, df(GRID))
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("name", PAIRS)
def test_derivative_matches_numpy_formula(name):
    _, df, _ = PAIRS[name]
    np.testing.assert_allclose(
        df(GRID),
        numpy_derivative(name, GRID),
        **TOL["reduction"],
        # Tails below float32's smallest normal number flush to zero.
        atol=np.finfo(np.float32).tiny,
    )


def test_derivatives_at_zero():
    zero = jnp.float32(0.0)
    assert jax.grad(jaxnn.relu)(zero) == 0.0
    assert jax.grad(jaxnn.leaky_relu)(zero) == np.float32(0.01)
    assert jax.grad(lambda z: jaxnn.leaky_relu(z, 0.2))(zero) == np.float32(0.2)
    assert jax.grad(jaxnn.sigmoid)(zero) == 0.25
    assert jax.grad(jaxnn.tanh)(zero) == 1.0
    # Documented difference: jax.nn.leaky_relu has gradient 1 at 0.
    assert jax.grad(jax.nn.leaky_relu)(zero) == 1.0


@pytest.mark.parametrize("name", PAIRS)
def test_values_match_jax_nn(name, maybe_jit):
    f, _, ref = PAIRS[name]
    assert_trees_close(maybe_jit(f)(GRID), ref(GRID), **TOL["roundings_near_zero"])


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_finite_and_dtype_kept_at_large_inputs(name, dtype):
    f, df, _ = PAIRS[name]
    z = jnp.asarray([-1e4, -100.0, 0.0, 100.0, 1e4], dtype)
    for out in (f(z), df(z), jax.vmap(jax.grad(f))(z)):
        assert out.dtype == dtype
        assert np.all(np.isfinite(np.asarray(out, np.float32)))


def test_tail_derivatives_keep_relative_accuracy():
    # σ'(30) ≈ 9.36e-14 and tanh'(10) ≈ 8.24e-9; σ(1 − σ) and 1 − tanh² give 0.
    z = jnp.asarray([30.0, -30.0], jnp.float32)
    np.testing.assert_allclose(
        jaxnn.sigmoid_derivative(z), numpy_derivative("sigmoid", z), **TOL["roundings"]
    )
    z = jnp.asarray([10.0, -10.0], jnp.float32)
    np.testing.assert_allclose(
        jaxnn.tanh_derivative(z),
        4 * np.exp(-20.0) / (1 + np.exp(-20.0)) ** 2,
        **TOL["roundings"],
    )


def test_saturation_and_sparsity():
    z = jnp.asarray([-10.0, 10.0])
    assert np.all(jaxnn.sigmoid_derivative(z) < 1e-4)
    assert np.all(jaxnn.tanh_derivative(z) < 1e-7)
    assert float(jaxnn.sigmoid_derivative(0.0)) == 0.25
    assert float(jnp.mean(jaxnn.relu(GRID) == 0)) > 0.4


def test_leaky_relu_slope_is_differentiable_and_traceable():
    z = jnp.asarray([-2.0, 3.0])
    g = jax.grad(lambda a: jnp.sum(jaxnn.leaky_relu(z, a)))(0.1)
    np.testing.assert_allclose(g, -2.0)
    y = jax.jit(jaxnn.leaky_relu)(z, jnp.float32(0.5))
    np.testing.assert_allclose(y, [-1.0, 3.0])


def test_integer_input_is_promoted_to_float():
    assert jaxnn.relu(jnp.arange(3)).dtype == jnp.float32
    np.testing.assert_allclose(jaxnn.sigmoid(0), 0.5)


@pytest.mark.parametrize(
    "fn",
    [
        jaxnn.sigmoid,
        jaxnn.tanh,
        jaxnn.relu,
        jaxnn.leaky_relu,
        jaxnn.sigmoid_derivative,
        jaxnn.tanh_derivative,
        jaxnn.relu_derivative,
        jaxnn.leaky_relu_derivative,
    ],
)
def test_complex_input_raises(fn):
    with pytest.raises(TypeError, match="x must be a real"):
        fn(jnp.ones(2, jnp.complex64))


@pytest.mark.parametrize("fn", [jaxnn.leaky_relu, jaxnn.leaky_relu_derivative])
@pytest.mark.parametrize("slope", [float("nan"), float("inf"), "0.1"])
def test_bad_negative_slope_raises(fn, slope):
    with pytest.raises((ValueError, TypeError), match="negative_slope"):
        fn(jnp.ones(2), slope)
