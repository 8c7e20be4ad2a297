"""The transform protocol: chain, identity, apply_updates, global_norm, scale, gd."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import safe_increment
from jaxnn._norms import l2_norm
from tests.helpers import TOL, assert_trees_close, counting_jit, random_tree


def _np_global_norm(tree):
    return np.sqrt(
        sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree))
    )


def test_gradient_transformation_has_optax_fields():
    assert jaxnn.GradientTransformation._fields == optax.GradientTransformation._fields


def test_identity_passes_updates_and_has_empty_state(maybe_jit):
    tree = random_tree(0)
    tx = jaxnn.identity()
    state = tx.init(tree)
    assert state == jaxnn.EmptyState()
    out, new_state = maybe_jit(tx.update)(tree, state)
    assert_trees_close(out, tree, **TOL["exact"])
    assert new_state == state


def test_chain_applies_in_order(maybe_jit):
    tree = random_tree(1)
    tx = jaxnn.chain(jaxnn.scale(2.0), jaxnn.clip_by_value(0.5), jaxnn.scale(-3.0))
    state = tx.init(tree)
    assert isinstance(state, tuple) and len(state) == 3
    out, _ = maybe_jit(tx.update)(tree, state)
    expected = jax.tree.map(
        lambda g: -3.0 * np.clip(2.0 * np.asarray(g), -0.5, 0.5), tree
    )
    assert_trees_close(out, expected)


def test_empty_chain_is_identity():
    tree = random_tree(2)
    tx = jaxnn.chain()
    out, state = tx.update(tree, tx.init(tree))
    assert state == ()
    assert_trees_close(out, tree, **TOL["exact"])


def test_chain_rejects_non_transforms():
    with pytest.raises(TypeError, match="chain argument 1"):
        jaxnn.chain(jaxnn.scale(1.0), lambda g: g)


def test_chain_rejects_state_of_another_chain():
    tree = random_tree(3)
    tx = jaxnn.chain(jaxnn.scale(1.0), jaxnn.scale(1.0))
    with pytest.raises(ValueError, match="expects a tuple of 2 states"):
        tx.update(tree, (jaxnn.EmptyState(),))


def test_state_for_other_params_is_rejected_with_names():
    tx = jaxnn.sgd(0.1, momentum=0.9)
    state = tx.init({"a": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"state\.trace does not match"):
        tx.update({"b": jnp.zeros(3)}, state)
    with pytest.raises(ValueError, match=r"state\.trace\['a'\] has shape \(3,\)"):
        tx.update({"a": jnp.zeros(4)}, state)


def test_update_accepts_and_ignores_unknown_keywords():
    tree = random_tree(4)
    for tx in (
        jaxnn.identity(),
        jaxnn.clip_by_global_norm(1.0),
        jaxnn.sgd(0.1, 0.9),
        jaxnn.skip_nonfinite(jaxnn.gd(0.1)),
        # A plain optax transform inside jaxnn.chain gets no extra keywords.
        jaxnn.chain(optax.scale(2.0), jaxnn.scale(0.5)),
    ):
        plain, _ = tx.update(tree, tx.init(tree), tree)
        extra, _ = tx.update(tree, tx.init(tree), tree, value=1.0, key=None)
        assert_trees_close(extra, plain, **TOL["exact"])


def test_apply_updates_matches_optax_and_keeps_dtype_and_none():
    params = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": None, "s": jnp.float32(2.0)}
    updates = {"w": jnp.full((2, 3), 0.25, jnp.float32), "b": None, "s": -1.5}
    out = jaxnn.apply_updates(params, updates)
    assert out["b"] is None
    assert out["w"].dtype == jnp.bfloat16
    assert out["s"].dtype == jnp.float32
    ref = optax.apply_updates(params, updates)
    assert_trees_close(out, ref, **TOL["exact"])


def test_apply_updates_rejects_mismatched_updates():
    with pytest.raises(ValueError, match="updates does not match the structure"):
        jaxnn.apply_updates({"a": jnp.zeros(2)}, [jnp.zeros(2)])


@pytest.mark.parametrize("seed", range(3))
def test_global_norm_matches_numpy_and_optax(seed, maybe_jit):
    tree = random_tree(seed, scale=10.0**seed)
    out = maybe_jit(jaxnn.global_norm)(tree)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, _np_global_norm(tree), **TOL["roundings"])
    np.testing.assert_allclose(out, optax.tree.norm(tree), **TOL["roundings"])


def test_global_norm_does_not_overflow_in_float16():
    # 1000² = 1e6 overflows float16 (max 65504); accumulated in float32 it does not.
    tree = {"a": jnp.full((100,), 1000.0, jnp.float16)}
    np.testing.assert_allclose(jaxnn.global_norm(tree), 1e4, **TOL["roundings"])


def test_global_norm_of_empty_tree_is_zero():
    assert float(jaxnn.global_norm({})) == 0.0
    assert float(jaxnn.global_norm([None])) == 0.0


def test_safe_increment_saturates():
    top = jnp.iinfo(jnp.int32).max
    assert int(safe_increment(jnp.int32(5))) == 6
    assert int(safe_increment(jnp.int32(top))) == top
    assert safe_increment(jnp.int32(top)).dtype == jnp.int32


def test_scale_by_learning_rate_with_number_and_schedule():
    tree = random_tree(5)

    def schedule(count):
        return 0.1 * (count + 1)

    for lr in (0.3, schedule):
        ours, theirs = (
            jaxnn.scale_by_learning_rate(lr),
            optax.scale_by_learning_rate(lr),
        )
        s1, s2 = ours.init(tree), theirs.init(tree)
        for _ in range(4):
            u1, s1 = ours.update(tree, s1)
            u2, s2 = theirs.update(tree, s2)
            assert_trees_close(u1, u2)


def test_schedule_first_step_uses_schedule_at_zero():
    seen = []

    def schedule(count):
        seen.append(count)
        return jnp.where(count == 0, 1.0, 100.0)

    tx = jaxnn.scale_by_learning_rate(schedule)
    g = {"w": jnp.ones(2)}
    u, state = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(u["w"], -1.0)
    assert state.count.dtype == jnp.int32 and int(state.count) == 1
    u, state = tx.update(g, state)
    np.testing.assert_array_equal(u["w"], -100.0)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_learning_rate_is_rejected(bad):
    with pytest.raises(ValueError, match="learning_rate"):
        jaxnn.gd(bad)


def test_non_numeric_learning_rate_is_a_type_error():
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        jaxnn.gd("0.1")


def test_traced_learning_rate_is_not_validated():
    @jax.jit
    def step(lr, g):
        tx = jaxnn.gd(lr)
        return tx.update(g, tx.init(g))[0]

    np.testing.assert_allclose(step(0.5, jnp.ones(2)), -0.5)


@pytest.mark.parametrize(
    "kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.5, "nesterov": True}]
)
def test_sgd_trajectory_matches_optax(kwargs):
    target = random_tree(6)

    def grads_fn(p):
        return jax.grad(
            lambda q: sum(
                jnp.sum((a - b) ** 2)
                for a, b in zip(
                    jax.tree.leaves(q), jax.tree.leaves(target), strict=True
                )
            )
        )(p)

    params = jax.tree.map(jnp.zeros_like, target)
    ours, theirs = jaxnn.sgd(0.05, **kwargs), optax.sgd(0.05, **kwargs)
    p1, p2 = params, params
    s1, s2 = ours.init(params), theirs.init(params)
    update1, update2 = jax.jit(ours.update), jax.jit(theirs.update)
    grads_fn = jax.jit(grads_fn)
    for _ in range(50):
        u1, s1 = update1(grads_fn(p1), s1, p1)
        u2, s2 = update2(grads_fn(p2), s2, p2)
        p1, p2 = jaxnn.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    assert_trees_close(p1, p2)


def test_sgd_validation():
    with pytest.raises(ValueError, match="momentum must be in"):
        jaxnn.sgd(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        jaxnn.sgd(0.1, nesterov=True)


def test_no_retrace_on_second_update():
    tree = random_tree(7)
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.sgd(0.1, 0.9))

    @counting_jit
    def step(g, state):
        return tx.update(g, state)

    state = tx.init(tree)
    for _ in range(3):
        _, state = step(tree, state)
    assert step.traces == 1


@pytest.mark.parametrize("magnitude", [1e-30, 1e-20, 1e20, 1e30])
def test_global_norm_is_exact_where_squares_over_or_underflow(magnitude, maybe_jit):
    tree = {"a": jnp.full((3,), magnitude), "b": [jnp.full((2, 2), -2 * magnitude)]}
    expected = _np_global_norm(tree)
    np.testing.assert_allclose(
        maybe_jit(jaxnn.global_norm)(tree), expected, **TOL["roundings"]
    )


def _np_norm(x, axis=None):
    return np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=axis))


def test_global_norm_with_leaves_of_very_different_magnitudes(maybe_jit):
    # One leaf overflows when squared, one underflows, one is ordinary: each leaf
    # gets its own power-of-two scale in the rescaled pass.
    tree = {
        "huge": jnp.array([3e30, -4e30], jnp.float32),
        "tiny": jnp.full((5,), 1e-30, jnp.float32),
        "plain": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3),
    }
    expected = _np_global_norm(tree)
    np.testing.assert_allclose(
        maybe_jit(jaxnn.global_norm)(tree), expected, **TOL["roundings"]
    )


def test_global_norm_when_only_the_total_overflows(maybe_jit):
    # Every element's square (1.44e38) and every leaf's sum is finite in float32;
    # only their total (4 x 2.9e38) is not.
    tree = [jnp.full((2,), 1.2e19, jnp.float32) for _ in range(4)]
    assert all(np.isfinite(np.sum(np.asarray(x) ** 2)) for x in tree)
    expected = _np_global_norm(tree)
    np.testing.assert_allclose(
        maybe_jit(jaxnn.global_norm)(tree), expected, **TOL["roundings"]
    )


@pytest.mark.parametrize("scale", [2.0**-52, 2.0**-51, 2.0**-50, 1e-18, 1e-37])
def test_global_norm_on_both_sides_of_the_rescale_threshold(scale, maybe_jit):
    # The second pass starts when the sum of squares is below ~2^-102: just below
    # and just above it, the two paths agree with float64.
    x = jnp.asarray(np.linspace(0.5, 1.0, 7) * scale, jnp.float32)
    np.testing.assert_allclose(
        maybe_jit(jaxnn.global_norm)({"x": x}), _np_norm(x), **TOL["roundings"]
    )


def test_l2_norm_rescales_each_unit_on_its_own(maybe_jit):
    x = jnp.array([[3e30, 4e30], [3.0, 4.0], [3e-30, 4e-30], [0.0, 0.0]], jnp.float32)
    np.testing.assert_allclose(
        maybe_jit(lambda v: l2_norm(v, axis=1))(x),
        [5e30, 5.0, 5e-30, 0.0],
        **TOL["roundings"],
    )
    keep = l2_norm(x, axis=1, keepdims=True)
    assert keep.shape == (4, 1)
    # The gradient of each unit's norm is x/||x|| on every non-zero row.
    grad = jax.grad(lambda v: jnp.sum(l2_norm(v, axis=1)))(x)
    np.testing.assert_allclose(
        grad[:3], np.tile([0.6, 0.8], (3, 1)), **TOL["roundings"]
    )


def test_global_norm_gradient_is_x_over_norm_on_both_paths():
    # d||x||/dx = x/||x||, whether the plain or the rescaled pass computed ||x||.
    for magnitude in (1.0, 1e30, 1e-30):
        tree = {"a": jnp.array([3.0, -4.0]) * magnitude, "b": jnp.array([12.0])}
        tree["b"] = tree["b"] * magnitude
        grad = jax.grad(jaxnn.global_norm)(tree)
        norm = _np_global_norm(tree)
        for g, x in zip(jax.tree.leaves(grad), jax.tree.leaves(tree), strict=True):
            np.testing.assert_allclose(
                g, np.asarray(x, np.float64) / norm, **TOL["roundings"]
            )


def test_global_norm_of_infinite_or_nan_input():
    assert np.isinf(jaxnn.global_norm({"a": jnp.array([1.0, jnp.inf])}))
    assert np.isnan(jaxnn.global_norm({"a": jnp.array([1.0, jnp.nan])}))
    assert float(jaxnn.global_norm({"a": jnp.zeros(3), "e": jnp.zeros((0, 2))})) == 0.0


def test_with_extra_args_support_forwards_keywords_only_where_accepted():
    seen = []

    def plain_update(updates, state, params=None):
        return updates, state

    def kw_update(updates, state, params=None, **extra_args):
        seen.append(extra_args)
        return updates, state

    tree = {"a": jnp.ones(2)}
    plain = jaxnn.with_extra_args_support(
        optax.GradientTransformation(lambda p: (), plain_update)
    )
    out, state = plain.update(tree, (), None, loss=1.0)  # the keyword is dropped
    assert out is tree and state == ()
    kw = jaxnn.with_extra_args_support(
        jaxnn.GradientTransformation(lambda p: (), kw_update)
    )
    assert kw.update is kw_update  # already accepts **kwargs: unchanged
    kw.update(tree, (), None, loss=1.0)
    assert seen == [{"loss": 1.0}]
