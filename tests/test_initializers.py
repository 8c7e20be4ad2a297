"""Initializers: variances against the formulas, bounds, jax.nn.initializers, dtypes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import TOL

KEY = jax.random.key(0)
DENSE = (400, 600)  # fan_in 400, fan_out 600
CONV = (3, 3, 64, 96)  # receptive field 9: fan_in 576, fan_out 864


def fans(shape):
    r = math.prod(shape[:-2])
    return shape[-2] * r, shape[-1] * r


VARIANCE = {
    "xavier_uniform": lambda fi, fo: 2 / (fi + fo),
    "xavier_normal": lambda fi, fo: 2 / (fi + fo),
    "he_uniform": lambda fi, fo: 2 / fi,
    "he_normal": lambda fi, fo: 2 / fi,
    "lecun_normal": lambda fi, fo: 1 / fi,
}


@pytest.mark.parametrize("name", VARIANCE)
@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
def test_variance_within_2_percent_of_formula(name, shape):
    w = np.asarray(getattr(jaxnn, name)()(KEY, shape), np.float64)
    expected = VARIANCE[name](*fans(shape))
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.mean()) < 3 * math.sqrt(expected / w.size) + 1e-12
    np.testing.assert_allclose(w.var(), expected, **TOL["sampling_variance"])


@pytest.mark.parametrize("name", ["xavier_uniform", "he_uniform"])
def test_uniform_bounds(name):
    w = np.asarray(getattr(jaxnn, name)()(KEY, CONV))
    limit = math.sqrt(3 * VARIANCE[name](*fans(CONV)))
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit  # the interval is used up to its edges


def test_uniform_and_normal_and_constants():
    w = np.asarray(jaxnn.uniform(0.2)(KEY, DENSE), np.float64)
    assert np.abs(w).max() <= 0.2 and w.min() < -0.19 and w.max() > 0.19
    np.testing.assert_allclose(w.var(), 0.2**2 / 3, **TOL["sampling_variance"])
    w = np.asarray(jaxnn.normal(0.3)(KEY, DENSE), np.float64)
    # A std's relative sampling error is half its variance's.
    np.testing.assert_allclose(w.std(), 0.3, rtol=TOL["sampling_variance"]["rtol"] / 2)
    np.testing.assert_array_equal(jaxnn.zeros()(KEY, (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(jaxnn.constant(1.5)(KEY, (4,)), np.full(4, 1.5))
    assert jaxnn.normal()(KEY, DENSE).std() < 0.0101  # default stddev 0.01
    assert jnp.abs(jaxnn.uniform()(KEY, DENSE)).max() <= 0.05  # default ε 0.05


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_variance_scaling_matches_jax(mode, distribution):
    ours = jaxnn.variance_scaling(2.0, mode, distribution)(KEY, CONV)
    ref = jax.nn.initializers.variance_scaling(2.0, mode, distribution)(KEY, CONV)
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    np.testing.assert_allclose(ours.var(), ref.var(), **TOL["sampling_variance"])
    np.testing.assert_allclose(
        np.abs(ours).max(), np.abs(ref).max(), **TOL["sampling_max"]
    )
    fi, fo = fans(CONV)
    n = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2}[mode]
    np.testing.assert_allclose(ours.var(), 2.0 / n, **TOL["sampling_variance"])


def test_truncated_normal_is_truncated_at_two_stddevs():
    w = np.asarray(
        jaxnn.variance_scaling(1.0, "fan_in", "truncated_normal")(KEY, DENSE)
    )
    sigma = math.sqrt(1 / 400) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * sigma * (1 + 1e-6)


def test_custom_axes_match_jax():
    # CONV read as (kh, kw, out, in): in_axis=-1 (96), out_axis=-2 (64).
    ours = jaxnn.he_uniform(in_axis=-1, out_axis=-2)(KEY, CONV)
    ref = jax.nn.initializers.he_uniform(in_axis=-1, out_axis=-2)(KEY, CONV)
    np.testing.assert_allclose(np.var(ours), np.var(ref), **TOL["sampling_variance"])
    np.testing.assert_allclose(np.var(ours), 2 / (96 * 9), **TOL["sampling_variance"])


@pytest.mark.parametrize(
    "factory",
    [
        jaxnn.zeros(),
        jaxnn.constant(0.5),
        jaxnn.uniform(),
        jaxnn.normal(),
        jaxnn.xavier_uniform(),
        jaxnn.xavier_normal(),
        jaxnn.he_uniform(),
        jaxnn.he_normal(),
        jaxnn.lecun_normal(),
        jaxnn.variance_scaling(1.0, "fan_avg", "truncated_normal"),
    ],
)
def test_dtype_honoured(factory):
    assert factory(KEY, (8, 4)).dtype == jnp.float32  # default dtype
    w = factory(KEY, (8, 4), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16 and w.shape == (8, 4)


def test_jittable_with_static_shape():
    w = jax.jit(jaxnn.he_normal(), static_argnums=(1, 2))(KEY, (8, 4), jnp.float16)
    assert w.dtype == jnp.float16 and w.shape == (8, 4)


def test_same_key_same_weights():
    a = jaxnn.he_normal()(KEY, DENSE)
    np.testing.assert_array_equal(a, jaxnn.he_normal()(KEY, DENSE))
    assert not np.array_equal(a, jaxnn.he_normal()(jax.random.key(1), DENSE))


@pytest.mark.parametrize(
    "name",
    ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal"],
)
def test_shapes_below_two_dims_raise(name):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        getattr(jaxnn, name)()(KEY, (5,))


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: jaxnn.variance_scaling(1.0, "fan_sum", "normal"), ValueError, "mode"),
        (
            lambda: jaxnn.variance_scaling(1.0, "fan_in", "cauchy"),
            ValueError,
            "distribution",
        ),
        (lambda: jaxnn.variance_scaling(0.0, "fan_in", "normal"), ValueError, "scale"),
        (lambda: jaxnn.uniform(-0.1), ValueError, "epsilon"),
        (lambda: jaxnn.normal(-1.0), ValueError, "stddev"),
        (lambda: jaxnn.constant(float("nan")), ValueError, "value"),
        (lambda: jaxnn.constant("a"), TypeError, "value"),
        (lambda: jaxnn.he_normal(in_axis=-1)(KEY, (3, 4)), ValueError, "must differ"),
        (lambda: jaxnn.he_normal(in_axis=5)(KEY, (3, 4)), ValueError, "in_axis"),
        (lambda: jaxnn.he_normal()(KEY, (3, 4), jnp.int32), TypeError, "dtype"),
        (lambda: jaxnn.normal()(KEY, (3, 4), jnp.int32), TypeError, "dtype"),
        (lambda: jaxnn.uniform()(KEY, (3, -4)), ValueError, "non-negative"),
        (lambda: jaxnn.zeros()(KEY, "ab"), TypeError, "shape"),
    ],
)
def test_bad_arguments_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()
