"""Losses against NumPy float64 formulas and optax, stability, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import (
    mean_squared_error,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
)
from tests.helpers import TOL

# The integer-label form, the one the examples use.
integer_ce = softmax_cross_entropy_with_integer_labels


def numpy_cross_entropy(logits, labels):
    z = np.asarray(logits, np.float64)
    m = z.max(-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(-1))
    return lse - np.take_along_axis(z, np.asarray(labels)[..., None], -1)[..., 0]


def test_cross_entropy_matches_numpy_and_optax(maybe_jit):
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(4, 6, 10)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, (4, 6)), jnp.int32)
    loss = maybe_jit(integer_ce)(logits, labels)
    assert loss.shape == (4, 6) and loss.dtype == jnp.float32
    np.testing.assert_allclose(
        loss, numpy_cross_entropy(logits, labels), **TOL["reduction"]
    )
    ref = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(loss, ref, **TOL["reduction"])


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits = jnp.asarray([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = jnp.asarray([2, 0])
    g = jax.grad(lambda z: jnp.sum(integer_ce(z, labels)))(logits)
    z = np.asarray(logits, np.float64)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    np.testing.assert_allclose(g, p - np.eye(3)[[2, 0]], **TOL["roundings_near_zero"])


def test_cross_entropy_stable_for_huge_logits():
    logits = jnp.asarray([[1e4, 0.0, -1e4], [-1e30, 1e30, 0.0]], jnp.float32)
    labels = jnp.asarray([1, 1])
    loss = integer_ce(logits, labels)
    np.testing.assert_allclose(loss, [1e4, 0.0])
    g = jax.grad(lambda z: jnp.sum(integer_ce(z, labels)))(logits)
    assert np.all(np.isfinite(g))


def test_cross_entropy_half_precision_keeps_dtype():
    logits = jnp.asarray([[100.0, 99.0, 98.0]], jnp.bfloat16)
    loss = integer_ce(logits, jnp.asarray([0]))
    assert loss.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.float32(loss),
        numpy_cross_entropy([[100.0, 99.0, 98.0]], [0]),
        **TOL["bfloat16_rounding"],
    )


def test_cross_entropy_bad_inputs_raise():
    logits = jnp.zeros((3, 4))
    with pytest.raises(TypeError, match="labels must be integer"):
        integer_ce(logits, jnp.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        integer_ce(logits, jnp.zeros((3, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        integer_ce(logits, jnp.asarray([0, 4, 1]))
    with pytest.raises(TypeError, match="logits must be a floating"):
        integer_ce(jnp.zeros((3, 4), jnp.int32), jnp.zeros(3, jnp.int32))
    # Under jit the range cannot be checked: an out-of-range label gives NaN.
    loss = jax.jit(integer_ce)(logits, jnp.asarray([0, 4, 1]))
    assert np.isnan(loss[1]) and np.isfinite(loss[0])


def test_mse_matches_numpy(maybe_jit):
    rng = np.random.default_rng(1)
    p = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    t = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    value = maybe_jit(mean_squared_error)(p, t)
    expected = np.mean((np.asarray(p, np.float64) - np.asarray(t, np.float64)) ** 2)
    assert value.shape == ()
    np.testing.assert_allclose(value, expected, **TOL["roundings"])
    g = jax.grad(mean_squared_error)(p, t)
    np.testing.assert_allclose(
        g, 2 * (np.asarray(p) - np.asarray(t)) / 24, **TOL["roundings"]
    )


def test_mse_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"same shape.*\(4, 1\) and \(4,\)"):
        mean_squared_error(jnp.zeros((4, 1)), jnp.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        mean_squared_error(jnp.zeros(4, jnp.int32), jnp.zeros(4))


def test_cross_entropy_with_closed_over_labels_under_jit():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    labels = jnp.array([0, 2, 1, 1])
    got = jax.jit(lambda lg: integer_ce(lg, labels))(logits)
    np.testing.assert_allclose(got, integer_ce(logits, labels))


def test_integer_labels_with_axis_tuple_and_where_match_optax():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(3, 4, 2, 5)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 15, (4, 2)), jnp.int32)
    where = jnp.asarray(rng.random(logits.shape) > 0.3).at[:, 1, 0, :].set(False)
    ref = optax.softmax_cross_entropy_with_integer_labels
    for kwargs in ({"axis": (3, 0)}, {"axis": (0, 3), "where": where}):
        np.testing.assert_allclose(
            integer_ce(logits, labels, **kwargs),
            ref(logits, labels, **kwargs),
            **TOL["roundings_near_zero"],
        )
    # A batch-shaped where (expanded at the class axis), one slice with no class.
    flat = logits.reshape(12, 10)
    flat_labels = jnp.asarray(rng.integers(0, 10, 12), jnp.int32)
    rows = jnp.arange(12) % 5 != 2
    got = integer_ce(flat, flat_labels, where=rows)
    np.testing.assert_allclose(
        got, ref(flat, flat_labels, where=rows), **TOL["roundings"]
    )
    assert float(got[2]) == 0.0
    g = jax.grad(lambda z: jnp.sum(integer_ce(z, flat_labels, where=rows)))(flat)
    assert np.all(np.isfinite(g)) and not np.any(g[2])


def test_probabilities_match_optax_and_numpy(maybe_jit):
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(4, 6, 10)) * 3, jnp.float32)
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(4, 6, 10)), jnp.float32))
    loss = maybe_jit(softmax_cross_entropy)(logits, probs)
    z = np.asarray(logits, np.float64)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -(np.asarray(probs, np.float64) * log_p).sum(-1)
    assert loss.shape == (4, 6) and loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, expected, **TOL["reduction"])
    ref = optax.softmax_cross_entropy(logits, probs)
    np.testing.assert_allclose(loss, ref, **TOL["roundings"])
    # One-hot probabilities give the integer form's values.
    labels = jnp.asarray(rng.integers(0, 10, (4, 6)), jnp.int32)
    one_hot = jax.nn.one_hot(labels, 10)
    np.testing.assert_allclose(
        softmax_cross_entropy(logits, one_hot),
        integer_ce(logits, labels),
        **TOL["roundings"],
    )


def test_probabilities_axis_and_where_match_optax():
    rng = np.random.default_rng(4)
    logits = jnp.asarray(rng.normal(size=(5, 7, 3)) * 3, jnp.float32)
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(5, 7, 3)), jnp.float32), 1)
    where = jnp.asarray(rng.random(logits.shape) > 0.3).at[0, :, 1].set(False)
    for kwargs in (
        {"axis": 1},
        {"axis": 1, "where": where},
        {"axis": 1, "where": where[:, 0, :]},
        {"axis": (1, 2)},
        {"axis": None},
    ):
        got = softmax_cross_entropy(logits, probs, **kwargs)
        ref = optax.softmax_cross_entropy(logits, probs, **kwargs)
        np.testing.assert_allclose(
            got, ref, **TOL["roundings_near_zero"], err_msg=kwargs
        )
    g = jax.grad(lambda z: jnp.sum(softmax_cross_entropy(z, probs, 1, where)))(logits)
    assert np.all(np.isfinite(g)) and not np.any(g[0, :, 1])


def test_each_form_rejects_the_other_forms_labels():
    logits = jnp.zeros((3, 4))
    with pytest.raises(TypeError, match="softmax_cross_entropy_with_integer_labels"):
        softmax_cross_entropy(logits, jnp.asarray([0, 1, 2]))
    with pytest.raises(TypeError, match=r"use softmax_cross_entropy$"):
        integer_ce(logits, jnp.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"shape of logits.*\(3, 4\).*\(4,\)"):
        softmax_cross_entropy(logits, jnp.full((4,), 0.25))
    with pytest.raises(TypeError, match="axis must be"):
        integer_ce(logits, jnp.zeros(3, jnp.int32), axis=None)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        softmax_cross_entropy(logits, jnp.full((3, 4), 0.25), axis=2)
