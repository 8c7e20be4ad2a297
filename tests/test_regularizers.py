"""L1/L2 penalties vs NumPy, masks, consistency with add_l1 / add_decayed_weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import l1_penalty, l2_penalty
from tests.helpers import TOL, assert_trees_close, random_tree


def numpy_penalty(params, strength, kind, selected=None):
    leaves = jax.tree.leaves(params)
    if selected is not None:
        leaves = [w for w, keep in zip(leaves, selected, strict=True) if keep]
    f = np.abs if kind == "l1" else np.square
    return strength * sum(float(np.sum(f(np.asarray(w, np.float64)))) for w in leaves)


PENALTIES = {"l1": l1_penalty, "l2": l2_penalty}


@pytest.mark.parametrize("kind", PENALTIES)
def test_matches_numpy(kind, maybe_jit):
    params = random_tree(0)
    value = maybe_jit(lambda p: PENALTIES[kind](p, 0.3))(params)
    np.testing.assert_allclose(
        value, numpy_penalty(params, 0.3, kind), **TOL["roundings"]
    )
    assert value.shape == () and value.dtype == jnp.float32


@pytest.mark.parametrize("kind", PENALTIES)
def test_masks_pytree_prefix_and_callable(kind):
    params = {"dense": {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, "out": jnp.ones(4)}
    fn = PENALTIES[kind]
    full = {"dense": {"w": True, "b": False}, "out": True}
    prefix = {"dense": False, "out": True}
    np.testing.assert_allclose(fn(params, 2.0, full), 2.0 * 10)
    np.testing.assert_allclose(fn(params, 2.0, prefix), 2.0 * 4)

    def weights_only(p):
        return jax.tree.map(lambda w: w.ndim > 1, p)

    np.testing.assert_allclose(fn(params, 2.0, weights_only), 2.0 * 6)
    np.testing.assert_allclose(fn(params, 2.0, {"dense": False, "out": False}), 0.0)


def test_gradients_are_the_notes_formulas():
    params = random_tree(1)
    g1 = jax.grad(lambda p: l1_penalty(p, 0.5))(params)
    g2 = jax.grad(lambda p: l2_penalty(p, 0.5))(params)
    assert_trees_close(g1, jax.tree.map(lambda w: 0.5 * np.sign(w), params))
    g0 = jax.grad(lambda w: l1_penalty(w, 0.5))(jnp.zeros(3))
    np.testing.assert_array_equal(g0, np.zeros(3))  # sign(0) = 0, as add_l1
    assert_trees_close(g2, jax.tree.map(lambda w: 2 * 0.5 * np.asarray(w), params))


def test_half_precision_accumulates_in_float32():
    w = jnp.full((100_000,), 0.5, jnp.bfloat16)  # Σw² = 25000 > bf16 precision
    value = l2_penalty({"w": w}, 1.0)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, 25000.0, **TOL["roundings"])
    big = jnp.full((1000,), 300.0, jnp.float16)  # Σw² = 9e7 overflows float16
    assert np.isfinite(l2_penalty(big, 1.0))


def test_traced_strength():
    params = random_tree(2)
    value = jax.jit(l1_penalty)(params, jnp.float32(0.1))
    np.testing.assert_allclose(
        value, numpy_penalty(params, 0.1, "l1"), **TOL["roundings"]
    )


@pytest.mark.parametrize("kind", PENALTIES)
def test_bad_arguments_raise(kind):
    fn = PENALTIES[kind]
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match="strength"):
        fn(params, -1.0)
    with pytest.raises(ValueError, match="strength"):
        fn(params, float("inf"))
    with pytest.raises(ValueError, match="mask does not match"):
        fn(params, 1.0, {"a": True})
    with pytest.raises(TypeError, match="mask leaf must be a Python bool"):
        fn(params, 1.0, {"a": 1, "b": True})
    with pytest.raises(TypeError, match="floating"):
        fn({"a": jnp.ones(2, jnp.int32)}, 1.0)


@pytest.mark.skipif(
    not (hasattr(jaxnn, "add_l1") and hasattr(jaxnn, "add_decayed_weights")),
    reason="add_l1 / add_decayed_weights not implemented yet",
)
@pytest.mark.parametrize("use_mask", [None, "tree", "callable"])
def test_consistent_with_optimizer_transforms(use_mask):
    params = random_tree(3)
    params["stack"][1] = jnp.zeros(())  # sign(0) = 0 on both sides
    mask = {
        None: None,
        "tree": {"dense": {"w": True, "b": False}, "conv": True, "stack": False},
        "callable": lambda p: jax.tree.map(lambda w: w.ndim > 1, p),
    }[use_mask]
    zeros = jax.tree.map(jnp.zeros_like, params)
    s = 0.3
    for penalty, transform in [
        (l1_penalty, jaxnn.add_l1(s, mask=mask)),
        (l2_penalty, jaxnn.add_decayed_weights(2 * s, mask=mask)),
    ]:
        grads = jax.grad(lambda p, f=penalty: f(p, s, mask))(params)
        updates, _ = transform.update(zeros, transform.init(params), params)
        assert_trees_close(grads, updates)
